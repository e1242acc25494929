"""Errors that robustlens reports to a person in one line.

`BadInput` is raised for anything the *user* got wrong (a file, an argument, a
model that does not fit the contract).  The CLI turns it into ``error: <msg>``
on stderr and exit code 2, with no traceback.  Anything else is a bug (exit 1).

The rule: library code raises ``BadInput(message, param=<its own parameter name>)`` and never
spells a front end's name for it (no CLI flag, no config field).  A message that mentions
*another* parameter does so with :func:`ref` (``f"...; use {ref('runtime')} torch"``).  Each
front end renders the names its own way with :meth:`BadInput.render`: the CLI by its flag
table (``robustlens.cli.params.cli_name``: ``batch_size`` -> ``--batch-size``), ``robustlens
run`` by the config field map (``robustlens.study.config.CONFIG_FIELDS``), Python callers
read ``str(exc)``, which uses the library's names.
"""

from __future__ import annotations

import re
from collections.abc import Callable

#: a parameter mentioned inside a message (see :func:`ref`); control characters that no
#: user-given text (a file name, a spec) can contain in a one-line message
_REF_OPEN, _REF_CLOSE = "\x1e", "\x1f"
_REF = re.compile(f"{_REF_OPEN}([^{_REF_OPEN}{_REF_CLOSE}]*){_REF_CLOSE}")


def ref(param: str) -> str:
    """Mention the library parameter ``param`` inside a BadInput message; each front end
    writes it its own way (``runtime`` in Python, ``--runtime`` in the CLI, the config
    field in ``robustlens run``)."""
    return f"{_REF_OPEN}{param}{_REF_CLOSE}"


def _same(name: str) -> str:
    return name


class BadInput(ValueError):
    """The user's input is wrong; the message names the culprit and what was expected.

    ``param`` names the offending parameter the way the library spells it (``batch_size``);
    the message then leaves the name out (``"0: expected a positive integer"``) and each
    front end names it its own way (like click's ``param_hint``): ``str(exc)`` reads
    ``batch_size 0: ...``, the CLI says ``--batch-size 0: ...``, the study config loader
    ``semantic.batch_size 0: ...``.  Without ``param`` the message is whole.  Other
    parameters mentioned in the message are written with :func:`ref`.

    ``value`` (optional) is the offending value, written after the name:
    ``BadInput("file not found", param="map", value=path)`` reads ``map PATH: file not
    found``.  ``message`` is the message with the library's names, without the parameter and
    the value (what a report shows next to the thing it is about); ``template`` keeps the
    :func:`ref` marks.
    """

    def __init__(self, message: str, param: str | None = None, value: object = None) -> None:
        self.template = message
        self.param = param
        self.value = None if value is None else str(value)
        self.message = _REF.sub(lambda m: m.group(1), message)
        super().__init__(self.render())

    def __reduce__(self) -> tuple[object, ...]:  # keep param across pickling (Ray tasks)
        return (type(self), (self.template, self.param, self.value))

    def render(self, name: Callable[[str], str] | None = None, lead: str | None = None) -> str:
        """The one-line message with every parameter written by ``name`` (the library's
        names when None), e.g. by a CLI flag table; ``lead``, when given, is the name put
        before the message instead of ``name(param)``."""
        name = name or _same
        text = _REF.sub(lambda m: name(m.group(1)), self.template)
        if lead is None:
            lead = name(self.param) if self.param else ""
        if self.value is not None:
            lead = f"{lead} {self.value}:" if lead else f"{self.value}:"
        if not lead:
            return text
        sep = "" if not text or text.startswith((":", ",", ";", " ")) else " "
        return f"{lead}{sep}{text}"

    def named(self, name: str | None) -> str:
        """The one-line message with the parameter called ``name`` (other parameters
        mentioned keep the library's names); just the message when ``name`` is empty."""
        return self.render(lead=name) if name else self.message


def cli_flag(param: str) -> str:
    """The CLI name of a library parameter (kept for callers of the first version; the
    table lives in :mod:`robustlens.cli.params`)."""
    from .cli.params import cli_name

    return cli_name(param)


def bad(msg: str, param: str | None = None) -> BadInput:
    """Shorthand: ``raise bad(": stop must be > start", param="grid")``."""
    return BadInput(msg, param)


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (or its type name), for one-line errors."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:limit]


def printable(text: str) -> str:
    """``text`` with bytes that were not UTF-8 (a latin-1 file name arrives as surrogate
    escapes) shown as ``\\xe9``: safe to write into UTF-8 files, NetCDF attributes and logs."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
