"""Parameter grids: ``name=start:stop:step`` (stop exclusive, like ``numpy.arange``) or
``name=v1,v2,...`` (explicit values)."""

from __future__ import annotations

import math
from collections.abc import Iterator, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np

from ..errors import BadInput, ref
from ..render.scene import check_values, get_parameter

#: at most this many values on one grid axis (a step this fine is always a typo)
MAX_AXIS_VALUES = 10_000_000
#: maps with more poses than this are refused unless confirmed (the CLI's yes flag,
#: semantic.max_poses in a study)
MAX_POSES = 1_000_000
#: poses per second of a map with the default model on a shared 2-core CPU (measured: 240
#: poses of EfficientNet-Lite0 in 28 s, about 8.5/s, with other jobs running; README);
#: used only to tell the user how long a very large map would take
POSES_PER_SECOND = 10.0
#: never more than this, confirmed or not (score + top-1 arrays of 8 bytes per pose)
HARD_MAX_POSES = 500_000_000


@dataclass(frozen=True)
class SweepAxis:
    """The values one scene parameter takes in a sweep."""

    name: str
    values: np.ndarray

    @property
    def start(self) -> float:
        return float(self.values[0])

    @property
    def stop(self) -> float:
        """Exclusive upper end (last value + step for a regular grid)."""
        if len(self.values) > 1:
            return float(self.values[-1] + (self.values[-1] - self.values[-2]))
        return float(self.values[-1])


def parse_grid(text: str, param: str = "grid") -> SweepAxis:
    """Parse one ``NAME=START:STOP:STEP`` / ``NAME=V1,V2,...`` value; raises BadInput with
    ``param`` (the caller's name for it) saying what was expected."""
    name, sep, spec = text.partition("=")
    name = name.strip()
    if not sep or not spec.strip():
        raise BadInput(f"{text!r}: expected NAME=START:STOP:STEP or NAME=V1,V2,...", param=param)
    get_parameter(name, param)
    numbers = spec.split(":") if ":" in spec else spec.split(",")
    try:
        parts = [float(x) for x in numbers]
    except ValueError:
        raise BadInput(f"{text!r}: expected NAME=START:STOP:STEP or NAME=V1,V2,... "
                       f"with numbers", param=param) from None
    if ":" in spec:
        if len(parts) != 3:
            raise BadInput(f"{text!r}: expected NAME=START:STOP:STEP (three numbers)", param=param)
        start, stop, step = parts
        for what, v in (("START", start), ("STOP", stop), ("STEP", step)):
            if not math.isfinite(v):
                raise BadInput(f"{text!r}: {what} of {name} must be a finite number", param=param)
        if step <= 0:
            raise BadInput(f"{text!r}: step must be > 0", param=param)
        if stop <= start:
            raise BadInput(f"{text!r}: empty or reversed grid (stop must be > start; "
                           f"stop is exclusive like numpy.arange)", param=param)
        count = (stop - start) / step
        if not math.isfinite(count) or count > MAX_AXIS_VALUES:
            raise BadInput(f"{text!r}: step {step:g} of {name} is too small (more than "
                           f"{MAX_AXIS_VALUES:,} values on one axis)", param=param)
        # tolerate float round-off at the exclusive end
        n = int(np.ceil(count - 1e-9))
        values = start + step * np.arange(n, dtype=np.float64)
    else:
        if len(parts) > MAX_AXIS_VALUES:
            raise BadInput(f"{name}: more than {MAX_AXIS_VALUES:,} values on one axis", param=param)
        if not all(math.isfinite(v) for v in parts):
            raise BadInput(f"{text!r}: values of {name} must be finite numbers", param=param)
        values = np.array(parts, dtype=np.float64)
        if np.any(np.diff(values) <= 0):
            raise BadInput(f"{text!r}: explicit values must be strictly increasing", param=param)
    if len(values) == 0:
        raise BadInput(f"{text!r}: the grid is empty", param=param)
    check_values(name, values, param)
    return SweepAxis(name, values)


def parse_grids(texts: list[str] | tuple[str, ...], param: str = "grid") -> list[SweepAxis]:
    """Parse several :func:`parse_grid` values; each parameter may appear once."""
    if not texts:
        raise BadInput(f": give at least one, e.g. {ref(param)} azimuth=0:360:3", param=param)
    axes = [parse_grid(t, param) for t in texts]
    names = [a.name for a in axes]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise BadInput(f": parameter {sorted(dup)[0]!r} given more than once", param=param)
    return axes


def as_axes(axes: Mapping[str, Any] | Sequence[SweepAxis | str]) -> list[SweepAxis]:
    """Grid axes from what a Python user has at hand: a mapping ``{"azimuth": values}``
    (an array of strictly increasing values, or a ``"START:STOP:STEP"`` / ``"V1,V2"`` string),
    or a sequence of :class:`SweepAxis` / ``"NAME=..."`` strings (the CLI's form)."""
    if isinstance(axes, Mapping):
        out = []
        for name, vals in axes.items():
            if isinstance(vals, str):
                out.append(parse_grid(f"{name}={vals}", "axes"))
                continue
            get_parameter(str(name), "axes")
            try:
                v = np.asarray(vals, dtype=np.float64).reshape(-1)
            except (TypeError, ValueError):
                raise BadInput(f"[{name!r}]: expected numbers, got {type(vals).__name__}",
                               param="axes") from None
            if v.size == 0 or v.size > MAX_AXIS_VALUES:
                raise BadInput(f"[{name!r}]: expected 1..{MAX_AXIS_VALUES:,} values, got "
                               f"{v.size}", param="axes")
            if not np.all(np.isfinite(v)) or np.any(np.diff(v) <= 0):
                raise BadInput(f"[{name!r}]: values must be finite and strictly increasing",
                               param="axes")
            check_values(str(name), v, "axes")
            out.append(SweepAxis(str(name), v))
        names = [a.name for a in out]
    else:
        out = [a if isinstance(a, SweepAxis) else parse_grid(str(a), "axes") for a in axes]
        names = [a.name for a in out]
        dup = {n for n in names if names.count(n) > 1}
        if dup:
            raise BadInput(f": parameter {sorted(dup)[0]!r} given more than once", param="axes")
    return out


def n_poses(axes: Sequence[SweepAxis]) -> int:
    """The number of grid points (exact integer, no overflow)."""
    return math.prod(len(a.values) for a in axes)


def duration_text(seconds: float) -> str:
    """``"3.2 h"``-style rough duration."""
    for unit, size in (("days", 86400.0), ("h", 3600.0), ("min", 60.0)):
        if seconds >= size:
            return f"{seconds / size:,.1f} {unit}"
    return f"{seconds:.0f} s"


def check_pose_count(n: int, limit: int | None, param: str = "grid",
                     confirm: str | None = None) -> None:
    """Refuse a map of ``n`` poses beyond ``limit`` (None = MAX_POSES), telling the
    estimated time at :data:`POSES_PER_SECOND` and how to confirm (``confirm``, default:
    pass the ``confirm`` parameter); BadInput with ``param``."""
    if confirm is None:
        confirm = f"pass {ref('confirm')}"
    limit = MAX_POSES if limit is None else limit
    if n > HARD_MAX_POSES:
        raise BadInput(f": {n:,} poses would take about "
                       f"{duration_text(n / POSES_PER_SECOND)} at ~{POSES_PER_SECOND:g} poses/s "
                       f"and {n * 8 / 2**30:,.0f} GiB; at most {HARD_MAX_POSES:,} even when "
                       f"confirmed: use a coarser grid or {ref('samples')}", param=param)
    if n > limit:
        eta = duration_text(n / POSES_PER_SECOND)
        raise BadInput(f": {n:,} poses would take about {eta} at ~{POSES_PER_SECOND:g} "
                       f"poses/s (CPU); more than the limit of {limit:,}: use a coarser grid or "
                       f"{ref('samples')}, or {confirm}", param=param)


def grid_chunks(axes: Sequence[SweepAxis], batch: int) -> Iterator[np.ndarray]:
    """The grid's points in C order, ``(<=batch, n)`` at a time, computed from the flat index
    (the full ``(N, n)`` array is never built: memory is one batch however large the grid)."""
    shape = tuple(len(a.values) for a in axes)
    total = math.prod(shape)
    for start in range(0, total, batch):
        idx = np.unravel_index(np.arange(start, min(start + batch, total)), shape)
        yield np.stack([a.values[i] for a, i in zip(axes, idx, strict=True)], axis=1)
