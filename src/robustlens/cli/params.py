"""The CLI's side of the error rule: library parameter names -> flags, and click types for
the ``NAME=VALUE`` and ``NAME=START:STOP:STEP`` grammars.

The library raises ``BadInput(message, param=<its parameter name>)`` and never spells a
flag (see :mod:`robustlens.errors`); :func:`cli_name` is the one table that turns those names
into the flags a user typed, and :func:`cli_message` renders a whole error with it.

The parameter types are generic so any command can use them (``regions``/``srvr``'s
``--domain NAME=LOW:HIGH`` and ``--set`` included)::

    @click.option("--set", "sets", multiple=True, type=Assignment(float, lib_param="fixed"))
    @click.option("--domain", "domains", multiple=True,
                  type=NamedRange(parts=2, lib_param="domain"))
    @click.option("--grid", "grids", multiple=True, type=GridAxisType())

Each type raises :class:`~robustlens.errors.BadInput` with ``param=lib_param`` (so the
message goes through the same table and says the flag, exit code 2, one line), not click's
``Invalid value for ...``.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import Any, NamedTuple

import click

from ..errors import BadInput

#: library parameter -> the CLI flag that sets it, where the flag is not simply the name
#: with dashes (``batch_size`` -> ``--batch-size`` needs no entry)
FLAGS: dict[str, str] = {
    "spec": "--model",
    "labels_file": "--labels",
    "out_dir": "--out",
    "axes": "--grid",
    "grids": "--grid",
    "fixed": "--set",
    "sets": "--set",
    "class_id": "--class",
    "class_": "--class",
    "mesh_spec": "--mesh",
    "dataset": "--data",
    "cams": "--cam",
    "map_path": "--map",
    "params": "--param",
    "domains": "--domain",
    "starts": "--start",
    "confirm": "--yes",
    "names": "--param",
    "methods": "--method",
    "classifier": "--model",
}


def cli_name(param: str) -> str:
    """The flag a CLI user types for the library parameter ``param``: the :data:`FLAGS`
    entry, else ``--`` and the name with dashes when some command has that flag. Any other
    name (a config field such as ``semantic.curve.grid``, a positional ``DIR``, a parameter
    only the Python API has, such as ``points``) is kept as it is."""
    if param in FLAGS:
        return FLAGS[param]
    flag = "--" + param.replace("_", "-")
    return flag if param.isidentifier() and flag in known_flags() else param


_KNOWN: set[str] = set()


def known_flags() -> set[str]:
    """Every long option of every ``robustlens`` command (collected once)."""
    if not _KNOWN:
        from . import cli

        for cmd in [cli, *cli.commands.values()]:
            for p in cmd.params:
                _KNOWN.update(o for o in p.opts if o.startswith("--"))
    return _KNOWN


def cli_message(exc: BadInput) -> str:
    """``exc`` as the CLI says it: every parameter named by its flag."""
    return exc.render(cli_name)


def _lib_param(param: click.Parameter | None, lib_param: str | None) -> str:
    """The library name the type reports errors under: ``lib_param``, else the click
    parameter's own name (its destination, e.g. ``sets``), mapped by :data:`FLAGS`."""
    if lib_param:
        return lib_param
    return (param.name or "value") if param is not None else "value"


class Assignment(click.ParamType):
    """``NAME=VALUE`` -> ``(name, value)``; ``convert`` turns the value text into the value
    (``float``, or any callable raising ValueError / BadInput), ``names`` (optional) lists
    the allowed names. Errors are BadInput with ``param=lib_param``."""

    name = "NAME=VALUE"

    def __init__(self, convert: Callable[[str], Any] = str, names: Any = None,
                 lib_param: str | None = None, metavar: str = "NAME=VALUE") -> None:
        self.value_convert = convert
        self.names = names
        self.lib_param = lib_param
        self.metavar = metavar

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return self.metavar

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> Any:
        if isinstance(value, tuple):  # already converted (a default)
            return value
        lp = _lib_param(param, self.lib_param)
        text = str(value)
        key, sep, rest = text.partition("=")
        key = key.strip()
        if not sep or not key:
            raise BadInput(f"{text!r}: expected {self.metavar}", param=lp)
        if self.names is not None and key not in self.names:
            raise BadInput(f"{text!r}: unknown name {key!r}; expected one of "
                           f"{', '.join(self.names)}", param=lp)
        try:
            return key, self.value_convert(rest.strip())
        except ValueError as exc:
            if isinstance(exc, BadInput):
                raise BadInput(exc.message, param=lp) from None
            raise BadInput(f"{text!r}: expected {self.metavar} ({exc})", param=lp) from None


class Span(NamedTuple):
    """A parsed ``NAME=START:STOP[:STEP]``; ``step`` is None for two parts."""

    name: str
    start: float
    stop: float
    step: float | None


class NamedRange(click.ParamType):
    """``NAME=START:STOP:STEP`` (``parts=3``) or ``NAME=LOW:HIGH`` (``parts=2``) ->
    :class:`Span` of finite numbers with ``stop > start`` and ``step > 0``. Errors are BadInput
    with ``param=lib_param``."""

    def __init__(self, parts: int = 3, lib_param: str | None = None) -> None:
        if parts not in (2, 3):
            raise ValueError("parts: 2 or 3")
        self.parts = parts
        self.lib_param = lib_param
        self.name = "NAME=START:STOP:STEP" if parts == 3 else "NAME=LOW:HIGH"

    def get_metavar(self, param: click.Parameter, ctx: click.Context | None = None) -> str:
        return self.name

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> Any:
        if isinstance(value, Span):
            return value
        lp = _lib_param(param, self.lib_param)
        text = str(value)
        key, sep, rest = text.partition("=")
        key = key.strip()
        pieces = rest.split(":")
        if not sep or not key or len(pieces) != self.parts:
            raise BadInput(f"{text!r}: expected {self.name}", param=lp)
        try:
            nums = [float(x) for x in pieces]
        except ValueError:
            raise BadInput(f"{text!r}: expected {self.name} with numbers", param=lp) from None
        if not all(math.isfinite(x) for x in nums):
            raise BadInput(f"{text!r}: the numbers must be finite", param=lp)
        start, stop = nums[0], nums[1]
        step = nums[2] if self.parts == 3 else None
        if step is not None and step <= 0:
            raise BadInput(f"{text!r}: step must be > 0", param=lp)
        if stop <= start:
            raise BadInput(f"{text!r}: empty or reversed range (stop must be > start)",
                           param=lp)
        return Span(key, start, stop, step)


class GridAxisType(click.ParamType):
    """A map axis ``NAME=START:STOP:STEP`` or ``NAME=V1,V2,...`` of a registered scene
    parameter -> :class:`robustlens.semantic.grid.SweepAxis` (parsed by the library's
    :func:`~robustlens.semantic.grid.parse_grid`, so the CLI, the study config and Python
    accept the same grammar)."""

    name = "NAME=START:STOP:STEP"

    def __init__(self, lib_param: str = "grid") -> None:
        self.lib_param = lib_param

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> Any:
        from ..semantic.grid import SweepAxis, parse_grid

        if isinstance(value, SweepAxis):
            return value
        return parse_grid(str(value), self.lib_param)


class SceneAssignment(click.ParamType):
    """A fixed scene parameter ``NAME=VALUE`` (or a colour group ``object_color=R,G,B``) ->
    ``{name: value}``, checked against the parameter's range by the library's
    :func:`~robustlens.render.scene.parse_assignments`; merge the dicts of a repeated option
    with :func:`merge_assignments`."""

    name = "NAME=VALUE"

    def __init__(self, lib_param: str = "fixed") -> None:
        self.lib_param = lib_param

    def convert(self, value: Any, param: click.Parameter | None, ctx: click.Context | None
                ) -> Any:
        from ..render.scene import parse_assignments

        if isinstance(value, dict):
            return value
        return parse_assignments([str(value)], self.lib_param)


def merge_assignments(items: tuple[dict[str, float], ...] | list[dict[str, float]]
                      ) -> dict[str, float]:
    """One dict from the values of a repeated :class:`SceneAssignment` option (later wins,
    as with the library's ``parse_assignments``)."""
    out: dict[str, float] = {}
    for d in items:
        out.update(d)
    return out
