"""Ground-truth robust regions from dense semantic maps.

* `largest_box`: the maximum-cell box (hyper-rectangle of grid cells) that contains
  the start cell and has every cell ``>= threshold``; exact in any dimension.
  1-D: run lengths, O(m).  2-D: per-row left/right run lengths around the start
  column plus cumulative minima over the rows above / below the start row
  (`rectilinear.maximal_boxes` on unit-spaced lines, counting cells), O(n*m + n^2).  n-D (n >= 3): exhaustive over the range of dim 0 (slabs ANDed
  incrementally) with the (n-1)-D problem solved exactly on each slab, i.e.
  O(m_0^2 * cost(n-1)) -- fine for the small grids one can afford in 3-D+.
  Ties (equal cell counts) go to the first box found (smallest extent towards
  lower indices in the outermost dims first); the result is deterministic.
* `ground_truth_box`: the same on an ``xarray.DataArray`` map, in parameter units.
* `iou`: intersection over union of axis-aligned boxes (periodic dims supported).
* `map_score_fn` / `map_domain`: turn a map into a cheap ``score_fn`` (multilinear
  interpolation) and its domain, so region methods can run on real maps.

Index convention: bounds are *inclusive* cell indices ``lo..hi``.  On periodic
axes they are unwrapped around the start cell (they may be negative or
``>= size``; take them modulo the size) and the width is at most the size; an axis
that is entirely good is reported as ``0..size-1``.  An empty box (start cell below
threshold or NaN) has ``hi = lo - 1`` in every dim.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import Any

import numpy as np
from scipy.interpolate import RegularGridInterpolator

from robustlens.errors import BadInput
from robustlens.regions.rectilinear import best_box

__all__ = [
    "bad_cell_share",
    "ground_truth_box",
    "iou",
    "largest_box",
    "map_domain",
    "map_grid",
    "map_score_fn",
]


# ----------------------------------------------------------------------------- helpers
def _periodic_mask(periodic: Any, ndim: int, names: Sequence[str] | None = None) -> np.ndarray:
    if periodic is None:
        return np.zeros(ndim, bool)
    if isinstance(periodic, (str, int, np.integer)):
        periodic = [periodic]
    arr = list(periodic) if not isinstance(periodic, np.ndarray) else periodic.tolist()
    if len(arr) == ndim and all(isinstance(v, (bool, np.bool_)) for v in arr):
        return np.asarray(arr, bool)
    mask = np.zeros(ndim, bool)
    for v in arr:
        if isinstance(v, str):
            if names is None or v not in names:
                raise BadInput(f"periodic: unknown dim {v!r}; map dims are {list(names or [])}")
            mask[list(names).index(v)] = True
        elif isinstance(v, (int, np.integer)) and not isinstance(v, (bool, np.bool_)):
            if not -ndim <= int(v) < ndim:
                raise BadInput(f"periodic: axis {v} out of range for {ndim} dims")
            mask[int(v)] = True
        else:
            raise BadInput(f"periodic: expected axis indices, dim names or a bool mask, got {v!r}")
    return mask


def largest_box(
    scores: np.ndarray,
    start_index: Sequence[int] | int,
    threshold: float = 0.5,
    periodic: Any = None,
) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """The largest box of cells ``>= threshold`` containing ``start_index``.

    Returns inclusive ``(lo_idx, hi_idx)`` tuples (see the module docstring for
    periodic axes and the empty box).  NaN cells count as below threshold.
    ``periodic``: None, a bool mask or a list of axis indices.
    """
    arr = np.asarray(scores, dtype=np.float64)
    if arr.ndim == 0 or arr.size == 0:
        raise BadInput(f"scores: expected a non-empty n-D array, got shape {arr.shape}")
    idx = (start_index,) if isinstance(start_index, (int, np.integer)) else tuple(start_index)
    if len(idx) != arr.ndim:
        raise BadInput(f"start_index: has {len(idx)} entries but scores has {arr.ndim} dims")
    for i, (v, m) in enumerate(zip(idx, arr.shape, strict=True)):
        if not 0 <= int(v) < m:
            raise BadInput(f"start_index: index {v} out of range for axis {i} of size {m}")
    with np.errstate(invalid="ignore"):
        good = arr >= threshold  # NaN -> False
    per = _periodic_mask(periodic, arr.ndim)
    _, lo, hi = best_box(good, [int(v) for v in idx], per)
    return tuple(int(v) for v in lo), tuple(int(v) for v in hi)


# ---------------------------------------------------------------------- xarray maps
def map_grid(map_da: Any) -> tuple[list[str], list[np.ndarray], np.ndarray]:
    """(dims, ascending coordinate arrays, values) of a map; checks uniform steps."""
    try:
        dims = [str(d) for d in map_da.dims]
        values = np.asarray(map_da.values, dtype=np.float64)
    except AttributeError as exc:
        raise BadInput(
            f"map_da: expected an xarray.DataArray, got {type(map_da).__name__}"
        ) from exc
    coords: list[np.ndarray] = []
    for ax, d in enumerate(dims):
        if d not in map_da.coords:
            raise BadInput(f"map_da: dim {d!r} has no coordinate values")
        c = np.asarray(map_da.coords[d].values, dtype=np.float64)
        if c.size < 2:
            raise BadInput(f"map_da: dim {d!r} needs at least 2 grid values, got {c.size}")
        if c[0] > c[-1]:
            c = c[::-1]
            values = np.flip(values, axis=ax)
        steps = np.diff(c)
        if not (steps > 0).all() or not np.allclose(steps, steps[0], rtol=1e-6, atol=0):
            raise BadInput(f"map_da: coordinate {d!r} must be uniformly spaced and monotonic")
        coords.append(c)
    return dims, coords, values


def map_domain(map_da: Any, periodic: Any = None) -> tuple[np.ndarray, np.ndarray]:
    """(lower, upper) of a map: its coordinate span; ``[c0, c0 + size*step]`` on periodic dims.

    A periodic axis must not repeat its first value at the end (0..357 for a 3-degree
    azimuth grid, not 0..360).
    """
    dims, coords, _ = map_grid(map_da)
    per = _periodic_mask(periodic, len(dims), dims)
    lower = np.array([c[0] for c in coords])
    upper = np.array(
        [c[0] + c.size * (c[1] - c[0]) if p else c[-1] for c, p in zip(coords, per, strict=True)]
    )
    return lower, upper


def bad_cell_share(map_da: Any, lower: Any, upper: Any, threshold: float = 0.5,
                   periodic: Any = None) -> float:
    """Share of the map cells whose centre lies in the box ``[lower, upper]`` (closed, 1e-9
    slack) that score below ``threshold``; 0 for a box holding no cell centre.  How sound
    a region is against a dense map.  On ``periodic`` dims the box may run past the map's
    edge (a full circle is ``c0 + size * step``)."""
    dims, coords, values = map_grid(map_da)
    per = _periodic_mask(periodic, len(dims), dims)
    lo = np.asarray(lower, dtype=np.float64).reshape(-1)
    hi = np.asarray(upper, dtype=np.float64).reshape(-1)
    for name, v in (("lower", lo), ("upper", hi)):
        if v.shape != (len(dims),):
            raise BadInput(f": expected {len(dims)} values, one per map dim {dims}; got "
                           f"{v.size}", param=name)
    masks = []
    for i, (c, p) in enumerate(zip(coords, per, strict=True)):
        if p:
            period = c.size * (c[1] - c[0])
            masks.append(lo[i] + np.mod(c - lo[i], period) <= hi[i] + 1e-9)
        else:
            masks.append((c >= lo[i] - 1e-9) & (c <= hi[i] + 1e-9))
    v = values[np.ix_(*masks)]
    return float((v < threshold).mean()) if v.size else 0.0


def _x0_vector(x0: Any, dims: Sequence[str]) -> np.ndarray:
    if isinstance(x0, Mapping):
        missing = [d for d in dims if d not in x0]
        if missing:
            raise BadInput(f"x0: missing value(s) for dim(s) {missing}")
        x0 = [x0[d] for d in dims]
    arr = np.atleast_1d(np.asarray(x0, dtype=np.float64))
    if arr.shape != (len(dims),):
        raise BadInput(f"x0: has {arr.size} values but the map has dims {list(dims)}")
    if not np.isfinite(arr).all():
        raise BadInput(f"x0: non-finite value(s) {arr.tolist()}")
    return arr


def ground_truth_box(
    map_da: Any, x0: Any, threshold: float = 0.5, periodic: Any = None
) -> tuple[np.ndarray, np.ndarray]:
    """The largest box of map cells ``>= threshold`` containing ``x0``, in parameter units.

    ``map_da``: DataArray (named ``score``) whose dims are semantic parameters with
    uniformly spaced coordinates.  ``x0``: values in dim order (or a mapping dim ->
    value).  Bounds extend half a step around the outer cell centres and are clipped
    to the coordinate span (not on periodic dims, where they may wrap past the
    edge; a full circle is ``[c0, c0 + period]``).  If the start cell is below
    threshold the box is empty: ``lower == upper == x0``.
    """
    dims, coords, values = map_grid(map_da)
    x = _x0_vector(x0, dims)
    per = _periodic_mask(periodic, len(dims), dims)
    start = []
    for d, c, v, p in zip(dims, coords, x, per, strict=True):
        step = c[1] - c[0]
        if p:
            v = c[0] + np.mod(v - c[0] + step / 2, c.size * step) - step / 2
        elif not c[0] - step / 2 <= v <= c[-1] + step / 2:
            raise BadInput(f"x0: {d}={v} is outside the map's range [{c[0]}, {c[-1]}]")
        start.append(int(np.clip(np.rint((v - c[0]) / step), 0, c.size - 1)))
    lo, hi = largest_box(values, start, threshold, per)
    if any(b < a for a, b in zip(lo, hi, strict=True)):
        return x.copy(), x.copy()
    lower = np.empty(len(dims))
    upper = np.empty(len(dims))
    for i, (c, p) in enumerate(zip(coords, per, strict=True)):
        step = c[1] - c[0]
        lower[i] = c[0] + lo[i] * step - step / 2
        upper[i] = c[0] + hi[i] * step + step / 2
        if p:
            if hi[i] - lo[i] + 1 >= c.size:
                lower[i], upper[i] = c[0], c[0] + c.size * step
        else:
            lower[i], upper[i] = max(lower[i], c[0]), min(upper[i], c[-1])
    return lower, upper


def iou(box_a: Any, box_b: Any, period: Any = None) -> float:
    """Intersection over union of two axis-aligned boxes ``(lower, upper)`` in n-D.

    ``period``: optional per-dim periods (None / NaN / 0 for non-periodic dims);
    periodic intervals are compared on the circle (widths capped at the period).
    Two zero-volume boxes give 1.0 if identical, else 0.0.
    """
    la, ua = (np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in box_a)
    lb, ub = (np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in box_b)
    if not la.shape == ua.shape == lb.shape == ub.shape:
        raise BadInput(f"iou: boxes have different dimensions ({la.size} vs {lb.size})")
    n = la.size
    per = (
        np.zeros(n)
        if period is None
        else np.asarray(
            [
                0.0 if v is None else float(v)
                for v in np.atleast_1d(np.asarray(period, dtype=object))
            ]
        )
    )
    if per.shape != (n,):
        raise BadInput(f"iou: period has {per.size} entries for {n}-D boxes")
    per = np.where(np.isfinite(per) & (per > 0), per, 0.0)
    wa = np.maximum(ua - la, 0.0)
    wb = np.maximum(ub - lb, 0.0)
    inter = np.empty(n)
    for i in range(n):
        if per[i] > 0:
            p = per[i]
            wa[i], wb[i] = min(wa[i], p), min(wb[i], p)
            if wa[i] >= p or wb[i] >= p:
                inter[i] = min(wa[i], wb[i])
                continue
            lb_i = lb[i] + np.round((la[i] - lb[i]) / p) * p  # same turn as box a
            tot = 0.0
            for k in (-1, 0, 1):
                tot += max(0.0, min(la[i] + wa[i], lb_i + wb[i] + k * p) - max(la[i], lb_i + k * p))
            inter[i] = min(tot, wa[i], wb[i])
        else:
            inter[i] = max(0.0, min(ua[i], ub[i]) - max(la[i], lb[i]))
    vi = float(np.prod(inter))
    union = float(np.prod(wa)) + float(np.prod(wb)) - vi
    if union <= 0:
        same = np.allclose(la, lb) and np.allclose(ua, ub)
        return 1.0 if same else 0.0
    return vi / union


def map_score_fn(
    map_da: Any, periodic: Any = None, method: str = "linear"
) -> Callable[[np.ndarray], np.ndarray]:
    """A batched ``score_fn`` (N, n) -> (N,) interpolating the map (multilinear by default).

    Points outside the grid are clamped to it on non-periodic dims (the reference
    OIR_B rules evaluate outer corners past the domain edge) and wrapped on periodic
    dims (the grid is closed with a copy of its first slice at ``c0 + period``).
    The callable carries ``.domain = map_domain(map_da, periodic)`` and ``.dims``.
    """
    dims, coords, values = map_grid(map_da)
    per = _periodic_mask(periodic, len(dims), dims)
    if np.isnan(values).any():
        raise BadInput(f"map_da: contains {int(np.isnan(values).sum())} NaN score(s)")
    grid = []
    for ax, (c, p) in enumerate(zip(coords, per, strict=True)):
        if p:
            step = c[1] - c[0]
            c = np.append(c, c[0] + c.size * step)
            values = np.concatenate([values, np.take(values, [0], axis=ax)], axis=ax)
        grid.append(c)
    interp = RegularGridInterpolator(tuple(grid), values, method=method)
    lo = np.array([g[0] for g in grid])
    hi = np.array([g[-1] for g in grid])
    n = len(dims)

    def score_fn(x: np.ndarray) -> np.ndarray:
        x = np.asarray(x, dtype=np.float64)
        if x.ndim != 2 or x.shape[1] != n:
            raise BadInput(f"score_fn: expected points of shape (N, {n}), got {x.shape}")
        y = x.copy()
        y[:, per] = lo[per] + np.mod(x[:, per] - lo[per], hi[per] - lo[per])
        y = np.clip(y, lo, hi)
        return np.asarray(interp(y), dtype=np.float64)

    score_fn.domain = map_domain(map_da, periodic)  # type: ignore[attr-defined]
    score_fn.dims = tuple(dims)  # type: ignore[attr-defined]
    return score_fn
