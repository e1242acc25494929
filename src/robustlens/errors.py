"""Errors that robustlens reports to a person in one line.

`BadInput` is raised for anything the *user* got wrong (a file, an argument, a
model that does not fit the contract).  The CLI turns it into ``error: <msg>``
on stderr and exit code 2, with no traceback.  Anything else is a bug (exit 1).
"""

from __future__ import annotations


class BadInput(ValueError):
    """The user's input is wrong; the message names the culprit and what was expected.

    ``param`` names the offending parameter the way the library spells it (``batch_size``);
    the message then leaves the name out (``"0: expected a positive integer"``) and each
    front end names it its own way (like click's ``param_hint``): ``str(exc)`` reads
    ``batch_size 0: ...``, the CLI says ``--batch-size 0: ...`` (:func:`cli_flag`), the study
    config loader ``semantic.batch_size 0: ...``.  Without ``param`` the message is whole.
    """

    def __init__(self, message: str, param: str | None = None) -> None:
        self.message = message
        self.param = param
        super().__init__(self.named(param) if param else message)

    def named(self, name: str | None) -> str:
        """The one-line message with the parameter called ``name``."""
        if not name:
            return self.message
        sep = "" if self.message.startswith((":", ",", ";", " ")) else " "
        return f"{name}{sep}{self.message}"


def cli_flag(param: str) -> str:
    """The CLI flag of a library parameter: ``batch_size`` -> ``--batch-size``."""
    return "--" + param.replace("_", "-")


def bad(msg: str) -> BadInput:
    """Shorthand: ``raise bad("--grid azimuth: stop must be > start")``."""
    return BadInput(msg)


def first_line(exc: BaseException, limit: int = 200) -> str:
    """The first line of an exception's message (or its type name), for one-line errors."""
    lines = str(exc).strip().splitlines()
    return (lines[0] if lines else type(exc).__name__)[:limit]


def printable(text: str) -> str:
    """``text`` with bytes that were not UTF-8 (a latin-1 file name arrives as surrogate
    escapes) shown as ``\\xe9``: safe to write into UTF-8 files, NetCDF attributes and logs."""
    return text.encode("utf-8", "surrogateescape").decode("utf-8", "backslashreplace")
