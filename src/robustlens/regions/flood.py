"""Step 1 of variant "ours": flood fill on a lattice anchored at ``x0``.

Breadth-first from ``x0``: each round scores (one batched call) the unscored neighbours of
the nodes found good in the previous round, so the whole ``>= threshold`` component
around ``x0`` and its boundary get scored, however rugged.  `refine_lattice` then halves
the step where the best lattice box spans too few nodes (a thin region is found at a
resolution adapted to its size).  From 3-D on `zoom` floods again, finer, around a box
whose certification found holes (the lattice was too coarse there).
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np

from robustlens.regions.choose import candidate_boxes
from robustlens.regions.evaluator import BudgetExhausted
from robustlens.regions.rectilinear import largest_box_mask
from robustlens.regions.state import SearchState

__all__ = ["FloodResult", "build_lattice", "flood", "flood_finer", "neighbours",
           "refine_lattice", "run_flood", "zoom"]

#: tuned (2-D: held-out plateaus and Lite0 maps; 3-D: the 3-D plateaus' evaluation target
#: and the lite0 mug / lite1 soccer / lite0 basket 3-D maps): refine the lattice where the
#: best box spans fewer nodes than this.  In 3-D and more every halving multiplies the
#: flood cost by 2 per halved dim, so from 3-D on the thinnest dims are halved first.
MIN_NODES = {1: 16, 2: 16, 3: 4}
MIN_NODES_HIGH = 3
#: principled: `zoom` halves the dims whose step (relative to the domain) is within this
#: factor of the coarsest
ZOOM_SPREAD = 1.5


@dataclass(frozen=True)
class FloodResult:
    """The lattice after the flood: node states (1 good, -1 bad, 0 not scored) and the
    start node's index; ``robust`` is False when ``x0`` itself scored below threshold."""

    state: np.ndarray
    start: list[int]

    @property
    def robust(self) -> bool:
        return bool(self.state[tuple(self.start)] == 1)


def run_flood(s: SearchState) -> FloodResult:
    """Flood, then refine the lattice where the box is thin (sets ``s.axes``/``s.cells``)."""
    state, start = flood(s)
    if state[tuple(start)] != 1:
        return FloodResult(state, start)
    return FloodResult(*refine_lattice(s, state, start))


def build_lattice(s: SearchState) -> tuple[list[np.ndarray], list[int]]:
    coords, start = [], []
    for i in range(s.n):
        h, x0 = float(s.h[i]), float(s.x0[i])
        if s.periodic[i]:
            m = int(s.cells[i])
            coords.append(x0 + h * np.arange(m))
            start.append(0)
            continue
        lo, hi, w = float(s.dlo[i]), float(s.dhi[i]), float(s.width[i])
        kneg = math.floor((x0 - lo) / h + 1e-9)
        kpos = math.floor((hi - x0) / h + 1e-9)
        c = x0 + h * np.arange(-kneg, kpos + 1)
        s0 = kneg
        # the domain edges are nodes: a box can reach them exactly
        if c[0] - lo > 1e-6 * w:
            c = np.r_[lo, c]
            s0 += 1
        else:
            c[0] = lo if kneg > 0 else c[0]
        if hi - c[-1] > 1e-6 * w:
            c = np.r_[c, hi]
        elif kpos > 0:
            c[-1] = hi
        coords.append(c)
        start.append(s0)
    return coords, start


def flood(s: SearchState, window: tuple[np.ndarray, np.ndarray] | None = None,
          cap: int | None = None) -> tuple[np.ndarray, list[int]]:
    """Breadth-first flood fill of the good nodes connected to x0 (inside
    ``window`` = (lower, upper) coordinates, unwrapped, if given), while the evaluation
    count stays below ``cap`` (default: the flood's share, `Budget.flood_cap`)."""
    coords, start = build_lattice(s)
    s.axes = coords
    shape = tuple(len(c) for c in coords)
    state = np.zeros(shape, np.int8)  # 0 unscored, 1 good, -1 bad
    st = tuple(start)
    inside = np.ones(shape, bool) if window is None else window_mask(s, coords, window)
    frontier = np.zeros(shape, bool)
    frontier[st] = True
    cap = s.budget.flood_cap() if cap is None else cap
    while frontier.any():
        idx = np.argwhere(frontier)
        spent = s.ev.n_evaluations
        room = min(cap - spent, s.budget.remaining())
        if len(idx) > room:
            s.flood_cut = True
            if room <= 0:
                break
            # nearest nodes to x0 first (in units of the lattice step)
            d = np.abs(idx - np.asarray(start))
            if s.periodic.any():
                m = np.asarray(shape)
                d = np.where(s.periodic, np.minimum(d, m - d), d)
            idx = idx[np.argsort((d**2).sum(axis=1), kind="stable")[:room]]
        x = np.stack([coords[i][idx[:, i]] for i in range(s.n)], axis=1)
        try:
            vals, _ = s.score(x)
        except BudgetExhausted:
            s.flood_cut = True
            break
        good = vals >= s.t
        state[tuple(idx.T)] = np.where(good, 1, -1)
        if state[st] != 1:
            return state, start
        newly = np.zeros(shape, bool)
        newly[tuple(idx[good].T)] = True
        frontier = neighbours(s, newly) & (state == 0) & inside
    return state, start


def window_mask(s: SearchState, coords: list[np.ndarray],
                window: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Which nodes of the lattice ``coords`` lie in ``window`` (periodic dims wrap)."""
    inside = np.ones(tuple(len(c) for c in coords), bool)
    for i, c in enumerate(coords):
        wl, wh = window[0][i], window[1][i]
        if s.periodic[i]:
            ok = wl + np.mod(c - wl, s.width[i]) <= wh
        else:
            ok = (c >= wl) & (c <= wh)
        sh = [1] * s.n
        sh[i] = -1
        inside &= ok.reshape(sh)
    return inside


def refine_lattice(s: SearchState, state: np.ndarray, start: list[int]) -> tuple[np.ndarray, list[int]]:
    """Halve the lattice step in the dims where the largest box spans fewer than
    ``MIN_NODES`` nodes (16 in 1-D / 2-D, 4 in 3-D, 3 above) and flood again (cached
    nodes are not rescored), while the projected cost fits the flood share of the budget
    and the step stays above 4 ``xtol``; from 3-D on, when halving every such dim does
    not fit, the thinnest ones are halved.  A thin region (a ridge, a small island) is
    thus found at a resolution adapted to its size.  A level whose flood the budget cuts
    short is dropped (the previous, complete one is kept)."""
    for _ in range(8):
        lo_k, hi_k = largest_box_mask(state == 1, start, s.periodic)
        counts = np.asarray(hi_k) - np.asarray(lo_k) + 1
        full = s.periodic & (counts >= np.asarray(state.shape))
        k_min = MIN_NODES.get(s.n, MIN_NODES_HIGH)
        thin = (counts < k_min) & ~full & (s.h / 2 >= 4 * s.tol)
        if not thin.any():
            break
        room = s.budget.flood_cap() - s.ev.n_evaluations
        # the thinnest dims first: when halving every thin dim is too dear, halve fewer
        order = sorted(np.flatnonzero(thin).tolist(), key=lambda i: (counts[i], i))
        window = None
        # (1-D / 2-D: all or nothing, as tuned there)
        for keep in range(len(order), 0 if s.n >= 3 else len(order) - 1, -1):
            thin = np.zeros(s.n, bool)
            thin[order[:keep]] = True
            window, fits = _refine_window(s, state, start, full, thin, room)
            if fits:
                break
        else:
            break
        finer = flood_finer(s, thin, window)
        if finer is None:
            break
        state, start = finer.state, finer.start
    return state, start


def flood_finer(s: SearchState, halve: np.ndarray,
                window: tuple[np.ndarray, np.ndarray] | None, cap: int | None = None
                ) -> FloodResult | None:
    """Halve the lattice step in the ``halve`` dims and flood again (in ``window``, up to
    ``cap``: see `flood`); None, with the lattice as it was, when the budget cut the
    flood short or the start did not stay good."""
    saved = (s.cells.copy(), s.h.copy(), s.axes, s.flood_cut)
    s.cells = np.where(halve, 2 * s.cells, s.cells)
    s.h = s.width / s.cells
    state, start = flood(s, window, cap)
    if s.flood_cut or state[tuple(start)] != 1:
        s.cells, s.h, s.axes, s.flood_cut = saved
        return None
    return FloodResult(state, start)


def zoom(s: SearchState, fl: FloodResult, box: tuple[np.ndarray, np.ndarray], reserve: int
) -> FloodResult | None:
    """From 3-D on, when the certification found holes in a box chosen on the lattice:
    the lattice was too coarse there.  Halve the step of the coarsest dims (relative to
    the domain; within 1.5x of the coarsest) and flood again in a window of the box plus
    two old steps on every side, if that fits the budget less ``reserve``.  None (the
    lattice unchanged) when it does not fit or no dim can be halved."""
    rel = s.h / s.width
    sel = (rel >= rel.max() / ZOOM_SPREAD) & (s.h / 2 >= 4 * s.tol)
    if not sel.any():
        return None
    wlo, whi = s.dlo.copy(), s.dhi.copy()
    for i in range(s.n):
        if s.full_circle(i, box[0], box[1]):
            continue
        a, b = float(box[0][i]) - 2 * s.h[i], float(box[1][i]) + 2 * s.h[i]
        if s.periodic[i]:
            wlo[i], whi[i] = a, b
        else:
            wlo[i], whi[i] = max(a, float(s.dlo[i])), min(b, float(s.dhi[i]))
    # the finer flood's new nodes: 2**k - 1 per node the old one scored in the window
    # (1.5: the boundary grows too); the coarsest dims first when all is too dear
    old = int(((fl.state != 0) & window_mask(s, s.axes, (wlo, whi))).sum())
    room = s.budget.remaining() - reserve
    order = [int(i) for i in np.argsort(-rel, kind="stable") if sel[i]]
    while order and 1.5 * (2 ** len(order) - 1) * old > room:
        order.pop()
    if not order:
        return None
    sel = np.zeros(s.n, bool)
    sel[order] = True
    return flood_finer(s, sel, (wlo, whi), cap=s.ev.n_evaluations + room)


def _refine_window(s: SearchState, state: np.ndarray, start: list[int], full: np.ndarray,
                   thin: np.ndarray, room: int
) -> tuple[tuple[np.ndarray, np.ndarray] | None, bool]:
    """Where to flood again with ``thin`` dims halved: everywhere (None) if the whole
    component fits ``room``, else a window of the candidate boxes (best and runners-up)
    plus two steps on every side; and whether that fits."""
    k = int(thin.sum())
    # cost of the finer flood per node scored now: 2**k new nodes, the old ones cached
    # (1-D / 2-D keep the estimate they were tuned with); 1.5: the boundary grows too
    factor = 1.5 * (2**k if s.n <= 2 else 2**k - 1)
    if factor * int((state != 0).sum()) <= room:
        return None, True
    cands = candidate_boxes(s, state, start, s.alternatives)
    lo_k = [min(c[0][i] for c in cands) for i in range(s.n)]
    hi_k = [max(c[1][i] for c in cands) for i in range(s.n)]
    span = np.asarray(hi_k) - np.asarray(lo_k) + 1
    full = full | (s.periodic & (span >= np.asarray(state.shape)))
    if factor * float(np.prod(np.minimum(span + 4, state.shape))) > room:
        return None, False
    wlo, whi = s.dlo.copy(), s.dhi.copy()
    for i in range(s.n):
        if full[i]:
            continue
        if s.periodic[i]:
            wlo[i], whi[i] = s.coord(i, lo_k[i] - 2), s.coord(i, hi_k[i] + 2)
        else:
            last = len(s.axes[i]) - 1
            wlo[i] = s.coord(i, max(lo_k[i] - 2, 0))
            whi[i] = s.coord(i, min(hi_k[i] + 2, last))
    return (wlo, whi), True


def neighbours(s: SearchState, mask: np.ndarray) -> np.ndarray:
    out = np.zeros_like(mask)
    for ax in range(s.n):
        if s.periodic[ax]:
            out |= np.roll(mask, 1, axis=ax) | np.roll(mask, -1, axis=ax)
            continue
        sl_a = [slice(None)] * s.n
        sl_b = [slice(None)] * s.n
        sl_a[ax], sl_b[ax] = slice(1, None), slice(None, -1)
        out[tuple(sl_a)] |= mask[tuple(sl_b)]
        out[tuple(sl_b)] |= mask[tuple(sl_a)]
    return out
