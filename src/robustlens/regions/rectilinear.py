"""Largest boxes of good nodes on a rectilinear (non-uniformly spaced) grid, in any dimension.

Variant "ours" refines its lattice only where it matters: it inserts grid lines in the
bracket of each candidate box's faces, so the grid ends up with different steps in
different places.  This module finds boxes on such a grid.

A box is an inclusive index range ``[a_i, b_i]`` per dim that contains the start node
and whose nodes are all good.  How large it is depends on the *measure* of its extent
in each dim (``C`` = the dim's sorted line coordinates):

* ``"span"``: ``C[b] - C[a]``, the box whose faces are its outermost good lines -- the
  box one may return (every node in it was scored good);
* ``"middle"``: half-way to the next line outward on each side -- the estimate used to
  rank boxes (on a uniform lattice it ranks boxes by node count, like
  `ground_truth.largest_box_mask`);
* ``"outer"``: up to the next line outward -- an upper bound of what refining the
  box's faces can reach when those lines hold a bad node.

On a domain edge there is no line outward: every measure stops at the edge.  Periodic
dims have their lines in ``[x0, x0 + period)`` with the start at index 0; box indices
are unwrapped around it (coordinate of index ``k``: ``C[k mod m] + (k div m) * period``)
and a box covering all ``m`` lines is the full circle (extent = period).

`maximal_boxes` lists, for every reach ``(u, d)`` of dim 0 around the start, the widest
box in dim 1 (the Pareto front of 2-D boxes containing the start); every largest box,
under any measure, is among them.  O(m0 * m1 + m0^2).  `box_front` does the same in
n-D (branch and bound over the outer dims' reaches).  `best_box` / `largest_box_mask`:
the exact largest box of cells on a unit lattice (ground truth, and the flood lattice's
box in the search).
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from dataclasses import dataclass

import numpy as np

__all__ = ["BoxFront", "GridAxis", "MaximalBoxes", "best_box", "box_front", "cartesian",
           "largest_box_mask", "line_runs", "maximal_boxes", "slab_reaches"]

MEASURES = ("span", "middle", "outer", "cells")


def line_runs(line: np.ndarray, s: int, periodic: bool) -> tuple[float, float]:
    """Good cells left / right of ``s`` (not counting it); inf when the circle is all good."""
    m = line.shape[0]
    if not line[s]:
        return -1.0, -1.0
    if periodic:
        rolled = np.roll(line, -s)
        bads = np.flatnonzero(~rolled)
        if bads.size == 0:
            return np.inf, np.inf
        return float(m - 1 - bads[-1]), float(bads[0] - 1)
    left_bad = np.flatnonzero(~line[:s])
    right_bad = np.flatnonzero(~line[s + 1 :])
    left = s - 1 - left_bad[-1] if left_bad.size else s
    right = right_bad[0] if right_bad.size else m - 1 - s
    return float(left), float(right)


def cartesian(axes: list[np.ndarray]) -> np.ndarray:
    """Cartesian product (N, len(axes)) of coordinate arrays, first axis slowest."""
    if not axes:
        return np.zeros((1, 0))
    grid = np.meshgrid(*axes, indexing="ij")
    return np.stack([g.ravel() for g in grid], axis=1)


@dataclass
class GridAxis:
    """The lines of one dim: sorted ``coords`` (start at index ``start``)."""

    coords: np.ndarray
    start: int
    periodic: bool = False
    period: float = 0.0
    dummy: bool = False  # the second axis of a 1-D problem: extent 1, whatever the measure

    @property
    def m(self) -> int:
        return int(self.coords.shape[0])

    def x(self, k: np.ndarray | int) -> np.ndarray:
        """Unwrapped coordinate of (unwrapped) index ``k``; clipped to the lines when
        the dim is not periodic (a domain edge has no line outward)."""
        k = np.asarray(k, dtype=np.int64)
        if self.periodic:
            return self.coords[np.mod(k, self.m)] + np.floor_divide(k, self.m) * self.period
        return self.coords[np.clip(k, 0, self.m - 1)]

    def extent(self, a: np.ndarray | int, b: np.ndarray | int, measure: str) -> np.ndarray:
        """Extent of the index ranges ``[a, b]`` (arrays, inclusive) under ``measure``."""
        a = np.asarray(a, dtype=np.int64)
        b = np.asarray(b, dtype=np.int64)
        if self.dummy:
            return np.ones(np.broadcast(a, b).shape)
        if measure == "span":
            e = self.x(b) - self.x(a)
        elif measure == "outer":
            e = self.x(b + 1) - self.x(a - 1)
        elif measure == "middle":
            e = 0.5 * (self.x(b) + self.x(b + 1)) - 0.5 * (self.x(a - 1) + self.x(a))
        elif measure == "cells":
            e = (b - a + 1).astype(np.float64)
        else:
            raise ValueError(f"measure: expected one of {MEASURES}, got {measure!r}")
        if self.periodic:
            e = np.where(b - a + 1 >= self.m, self.period, np.minimum(e, self.period))
        return np.asarray(e, dtype=np.float64)


@dataclass
class MaximalBoxes:
    """Boxes widest in dim 1 for each dim-0 reach ``(u, d)``: rows ``s0-u .. s0+d``,
    columns ``s1-left .. s1+right`` (``left``/``right`` are -1 where invalid, and
    ``m1`` where the whole circle is good)."""

    axes: tuple[GridAxis, GridAxis]
    left: np.ndarray  # (U, D) int
    right: np.ndarray  # (U, D) int
    valid: np.ndarray  # (U, D) bool

    def bounds(self) -> tuple[np.ndarray, np.ndarray, np.ndarray, np.ndarray]:
        """Inclusive index bounds ``(a0, b0, a1, b1)``, each (U, D)."""
        a0s, a1s = self.axes
        u = np.arange(self.valid.shape[0])[:, None]
        d = np.arange(self.valid.shape[1])[None, :]
        a0 = np.broadcast_to(a0s.start - u, self.valid.shape)
        b0 = np.broadcast_to(a0s.start + d, self.valid.shape)
        full = self.right >= a1s.m
        a1 = np.where(full, 0, a1s.start - self.left)
        b1 = np.where(full, a1s.m - 1, a1s.start + self.right)
        return a0, b0, a1, b1

    def volume(self, measure: str) -> np.ndarray:
        """(U, D) volumes under ``measure``; -1 where invalid."""
        a0, b0, a1, b1 = self.bounds()
        v = self.axes[0].extent(a0, b0, measure) * self.axes[1].extent(a1, b1, measure)
        return np.where(self.valid, v, -1.0)

    def box(self, flat: int) -> tuple[list[int], list[int]]:
        """Index box ``(lo, hi)`` of entry ``flat`` (row-major index into (U, D))."""
        a0, b0, a1, b1 = (np.ravel(v)[flat] for v in self.bounds())
        return [int(a0), int(a1)], [int(b0), int(b1)]


def maximal_boxes(good: np.ndarray, axes: tuple[GridAxis, GridAxis]) -> MaximalBoxes:
    """`MaximalBoxes` of the (m0, m1) bool array ``good`` (the start node must be good)."""
    ax0, ax1 = axes
    m0, m1 = good.shape
    s0, s1 = ax0.start, ax1.start
    runs = np.array([line_runs(good[r], s1, ax1.periodic) for r in range(m0)])  # (m0, 2)
    runs = np.where(np.isinf(runs), m1, runs)  # whole circle good
    max_up, max_dn = (m0 - 1, m0 - 1) if ax0.periodic else (s0, m0 - 1 - s0)
    up = [(s0 - u) % m0 for u in range(max_up + 1)]
    dn = [(s0 + d) % m0 for d in range(max_dn + 1)]
    lu, ru = np.minimum.accumulate(runs[up, 0]), np.minimum.accumulate(runs[up, 1])
    ld, rd = np.minimum.accumulate(runs[dn, 0]), np.minimum.accumulate(runs[dn, 1])
    left = np.minimum(lu[:, None], ld[None, :]).astype(np.int64)
    right = np.minimum(ru[:, None], rd[None, :]).astype(np.int64)
    valid = (left >= 0) & (right >= 0)
    if ax0.periodic:
        valid &= (np.arange(max_up + 1)[:, None] + np.arange(max_dn + 1)[None, :] + 1) <= m0
    return MaximalBoxes(axes=(ax0, ax1), left=left, right=right, valid=valid)


@dataclass
class BoxFront:
    """Boxes of good nodes containing the start in n-D: inclusive index bounds
    ``lo``/``hi`` of shape (K, n), unwrapped on periodic dims (see `MaximalBoxes`)."""

    axes: tuple[GridAxis, ...]
    lo: np.ndarray  # (K, n) int
    hi: np.ndarray  # (K, n) int

    def __len__(self) -> int:
        return int(self.lo.shape[0])

    def volume(self, measure: str) -> np.ndarray:
        """(K,) volumes under ``measure``."""
        v = np.ones(len(self))
        for i, ax in enumerate(self.axes):
            v = v * ax.extent(self.lo[:, i], self.hi[:, i], measure)
        return v

    def box(self, k: int) -> tuple[list[int], list[int]]:
        return [int(v) for v in self.lo[k]], [int(v) for v in self.hi[k]]


def _front_2d(good: np.ndarray, axes: tuple[GridAxis, ...]) -> tuple[np.ndarray, np.ndarray]:
    mb = maximal_boxes(good, (axes[0], axes[1]))
    a0, b0, a1, b1 = mb.bounds()
    v = mb.valid
    return (np.stack([a0[v], a1[v]], axis=1).astype(np.int64),
            np.stack([b0[v], b1[v]], axis=1).astype(np.int64))


def slab_reaches(good: np.ndarray, s0: int, rest: tuple[int, ...], periodic: bool
                 ) -> Iterator[tuple[int, int, np.ndarray]]:
    """Every reach ``(u, d)`` of dim 0 around ``s0`` (rows ``s0-u .. s0+d``, wrapping when
    ``periodic``) whose rows ANDed (the slab) keep the start ``rest`` good, u-major: yields
    ``(u, d, slab)``; ``slab`` is reused, so use it before the next step."""
    m0 = good.shape[0]
    max_up = m0 - 1 if periodic else s0
    max_dn = m0 - 1 if periodic else m0 - 1 - s0
    slab_up = np.ones(good.shape[1:], bool)
    for u in range(max_up + 1):
        slab_up &= good[(s0 - u) % m0]
        if not slab_up[rest]:
            return
        slab = slab_up.copy()
        for d in range(max_dn + 1):
            if periodic and u + d + 1 > m0:
                break
            if d > 0:
                slab &= good[(s0 + d) % m0]
            if not slab[rest]:
                break
            yield u, d, slab


def box_front(
    good: np.ndarray, axes: tuple[GridAxis, ...], measure: str = "span",
    floor: float = -np.inf, best_only: bool = False,
) -> BoxFront:
    """Boxes of ``good`` nodes containing the start whose ``measure`` volume exceeds
    ``floor``: in 2-D the whole front of `maximal_boxes`; in n-D, for every reach of
    dim 0 around the start (its good slabs ANDed), the front of the (n-1)-D problem on
    that slab.  Every largest box, under any measure, is among them.

    Branch and bound: a reach of dim 0 is skipped when its extent times the largest
    volume of the (n-1)-D front of the next smaller reach (which holds every box of
    this one) cannot pass ``floor``; with ``best_only`` the floor rises to the best
    volume found so far, so only the largest box (and ties) need be kept.
    """
    n = good.ndim
    if n <= 2:
        lo, hi = _front_2d(good, axes)
        front = BoxFront(axes, lo, hi)
        keep = front.volume(measure) > floor
        if best_only and keep.any():
            v = front.volume(measure)
            keep &= v >= v.max()
        return BoxFront(axes, lo[keep], hi[keep])
    ax0 = axes[0]
    s0 = ax0.start
    rest = tuple(a.start for a in axes[1:])
    los: list[np.ndarray] = []
    his: list[np.ndarray] = []
    best = [floor]
    rest_full = 1.0  # the largest extent of the other dims: all their lines (a full circle)
    for a in axes[1:]:
        rest_full *= float(a.extent(np.array(0), np.array(a.m - 1), measure))
    if not good[(s0, *rest)]:
        return BoxFront(axes, np.zeros((0, n), np.int64), np.zeros((0, n), np.int64))
    sub_max = rest_full
    for u, d, slab in slab_reaches(good, s0, rest, ax0.periodic):
        if d == 0:
            sub_max = rest_full  # a new upward reach: its slabs only shrink with d
        e0 = float(ax0.extent(np.array(s0 - u), np.array(s0 + d), measure))
        if e0 * sub_max <= best[0]:
            continue
        sub = box_front(slab, axes[1:], measure, best[0] / e0 if e0 > 0 else -np.inf,
                        best_only)
        if len(sub) == 0:
            continue
        vol = sub.volume(measure)
        sub_max = float(vol.max())
        k = len(sub)
        los.append(np.concatenate([np.full((k, 1), s0 - u), sub.lo], axis=1))
        his.append(np.concatenate([np.full((k, 1), s0 + d), sub.hi], axis=1))
        if best_only:
            best[0] = max(best[0], e0 * sub_max * (1 - 1e-12))
    if not los:
        return BoxFront(axes, np.zeros((0, n), np.int64), np.zeros((0, n), np.int64))
    front = BoxFront(axes, np.concatenate(los), np.concatenate(his))
    v = front.volume(measure)
    keep = v > floor
    if best_only:
        keep &= v >= v.max() * (1 - 1e-9)
    return BoxFront(axes, front.lo[keep], front.hi[keep])


# ------------------------------------------------ exact largest box on a unit lattice
def _span(s: int, left: float, right: float, m: int) -> tuple[int, int, int]:
    """(lo, hi, count) of the run ``s-left .. s+right`` (all-good circle -> 0..m-1)."""
    if np.isinf(left) or np.isinf(right):
        return 0, m - 1, m
    lo, hi = s - int(left), s + int(right)
    return lo, hi, hi - lo + 1


def _best_1d(good: np.ndarray, s: int, periodic: bool) -> tuple[int, list[int], list[int]]:
    left, right = line_runs(good, s, periodic)
    if left < 0:
        return 0, [s], [s - 1]
    lo, hi, cnt = _span(s, left, right, good.shape[0])
    return cnt, [lo], [hi]


def _best_2d(
    good: np.ndarray, start: Sequence[int], periodic: np.ndarray
) -> tuple[int, list[int], list[int]]:
    nr, nc = good.shape
    sr, sc = int(start[0]), int(start[1])
    if not good[sr, sc]:
        return 0, [sr, sc], [sr - 1, sc - 1]
    # unit-spaced lines: the "cells" measure counts cells; the largest box is among the
    # Pareto front of widths (for each reach in rows, the widest run of columns)
    axes = (GridAxis(np.arange(nr, dtype=np.float64), sr, bool(periodic[0]), float(nr)),
            GridAxis(np.arange(nc, dtype=np.float64), sc, bool(periodic[1]), float(nc)))
    front = maximal_boxes(good, axes)
    cells = front.volume("cells")
    lo, hi = front.box(int(np.argmax(cells)))
    if periodic[0] and hi[0] - lo[0] + 1 >= nr:
        lo[0], hi[0] = 0, nr - 1
    return int(cells.max()), lo, hi


def best_box(
    good: np.ndarray, start: Sequence[int], periodic: np.ndarray
) -> tuple[int, list[int], list[int]]:
    if good.ndim == 1:
        return _best_1d(good, int(start[0]), bool(periodic[0]))
    if good.ndim == 2:
        return _best_2d(good, start, periodic)
    m0, s0 = good.shape[0], int(start[0])
    rest = tuple(int(v) for v in start[1:])
    empty = (0, list(map(int, start)), [int(v) - 1 for v in start])
    if not good[(s0, *rest)]:
        return empty
    rest_cells = int(np.prod(good.shape[1:]))
    best: tuple[int, list[int], list[int]] = empty
    for u, d, slab in slab_reaches(good, s0, rest, bool(periodic[0])):
        if (u + d + 1) * rest_cells <= best[0]:
            continue
        cnt, lo, hi = best_box(slab, rest, periodic[1:])
        total = (u + d + 1) * cnt
        if total > best[0]:
            lo0, hi0 = s0 - u, s0 + d
            if periodic[0] and hi0 - lo0 + 1 >= m0:
                lo0, hi0 = 0, m0 - 1
            best = (total, [lo0, *lo], [hi0, *hi])
    return best


def largest_box_mask(
    good: np.ndarray, start: Sequence[int], periodic: np.ndarray
) -> tuple[list[int], list[int]]:
    """`largest_box` on a bool array (no validation): inclusive ``(lo, hi)`` index lists.

    Non-periodic axes are first cropped to the bounding box of the good cells, which
    keeps the exhaustive n-D search cheap when the good cells are a small part of a
    large lattice (a flood-filled component).
    """
    per = np.asarray(periodic, bool)
    offs = []
    sl = []
    for ax in range(good.ndim):
        if per[ax]:
            offs.append(0)
            sl.append(slice(None))
            continue
        other = tuple(a for a in range(good.ndim) if a != ax)
        hit = np.flatnonzero(good.any(axis=other)) if good.ndim > 1 else np.flatnonzero(good)
        a, b = (int(hit[0]), int(hit[-1])) if hit.size else (int(start[ax]), int(start[ax]))
        a, b = min(a, int(start[ax])), max(b, int(start[ax]))
        offs.append(a)
        sl.append(slice(a, b + 1))
    sub = good[tuple(sl)]
    st = [int(s) - o for s, o in zip(start, offs, strict=True)]
    _, lo, hi = best_box(sub, st, per)
    return [v + o for v, o in zip(lo, offs, strict=True)], [v + o for v, o in zip(hi, offs, strict=True)]
