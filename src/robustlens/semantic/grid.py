"""Parameter grids: ``name=start:stop:step`` (stop exclusive, like ``numpy.arange``) or
``name=v1,v2,...`` (explicit values)."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import BadInput
from ..render.scene import check_values, get_parameter


@dataclass(frozen=True)
class GridAxis:
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


def parse_grid(text: str, flag: str = "--grid") -> GridAxis:
    """Parse one ``--grid`` value; raises BadInput naming the flag and what was expected."""
    name, sep, spec = text.partition("=")
    name = name.strip()
    if not sep or not spec.strip():
        raise BadInput(f"{flag} {text!r}: expected NAME=START:STOP:STEP or NAME=V1,V2,...")
    get_parameter(name, flag)
    numbers = spec.split(":") if ":" in spec else spec.split(",")
    try:
        parts = [float(x) for x in numbers]
    except ValueError:
        raise BadInput(f"{flag} {text!r}: expected NAME=START:STOP:STEP or NAME=V1,V2,... "
                       f"with numbers") from None
    if ":" in spec:
        if len(parts) != 3:
            raise BadInput(f"{flag} {text!r}: expected NAME=START:STOP:STEP (three numbers)")
        start, stop, step = parts
        if step <= 0:
            raise BadInput(f"{flag} {text!r}: step must be > 0")
        if stop <= start:
            raise BadInput(f"{flag} {text!r}: empty or reversed grid (stop must be > start; "
                           f"stop is exclusive like numpy.arange)")
        # tolerate float round-off at the exclusive end
        n = int(np.ceil((stop - start) / step - 1e-9))
        values = start + step * np.arange(n, dtype=np.float64)
    else:
        values = np.array(parts, dtype=np.float64)
        if np.any(np.diff(values) <= 0):
            raise BadInput(f"{flag} {text!r}: explicit values must be strictly increasing")
    if len(values) == 0:
        raise BadInput(f"{flag} {text!r}: the grid is empty")
    check_values(name, values, flag)
    return GridAxis(name, values)


def parse_grids(texts: list[str] | tuple[str, ...], flag: str = "--grid") -> list[GridAxis]:
    """Parse several ``--grid`` values; each parameter may appear once."""
    if not texts:
        raise BadInput(f"{flag}: give at least one, e.g. {flag} azimuth=0:360:3")
    axes = [parse_grid(t, flag) for t in texts]
    names = [a.name for a in axes]
    dup = {n for n in names if names.count(n) > 1}
    if dup:
        raise BadInput(f"{flag}: parameter {sorted(dup)[0]!r} given more than once")
    return axes
