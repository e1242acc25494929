"""Variant "ours": the largest sound box around ``x0`` (flood fill, exact choice, faces).

Objective: the largest axis-aligned box ``[lower, upper]`` containing ``x0`` on which
the score stays ``>= threshold`` -- *at the resolution tested*: no point the search
scored inside the returned box is below the threshold (``RegionResult.worst_score``),
and the tested points are at most ``RegionResult.resolution`` apart per dim.

Three steps, every round of each sent to ``score_fn`` in ONE batched call, every
point cached (2^-40 grid of the domain width) so nothing is scored twice:

1. **Flood fill** on a lattice anchored at ``x0`` (spacing ``h`` = domain width /
   ``lattice`` per dim; the domain edges are lattice nodes too).  Breadth-first from
   ``x0``: each round scores the unscored neighbours of the nodes found good in the
   previous round, so the whole ``>= threshold`` component containing ``x0`` and its
   boundary get scored -- however rugged, whatever its shape.  ``lattice`` default:
   about ``(max_evals / 3) ** (1/n)`` cells per dim, capped to [8, 48] (2-D: 31 cells,
   e.g. 11.6 x 3.2 degrees on azimuth x elevation).  Where the best box spans fewer
   than 16 nodes in a dim (4 in 3-D, 3 above) the step there is halved and the
   flood repeated (cached nodes are free), or only a window around the candidate
   boxes when the whole component would be too dear: the resolution adapts to the
   box size, down to 8 ``xtol``.
2. **Choice of the box** (1-D and 2-D: a rectilinear grid, `rectilinear`).  The
   lattice becomes a grid whose lines are refined only where it matters.  Every round
   ranks *all* boxes of good nodes containing ``x0`` exactly (the Pareto front of
   widths, `rectilinear.maximal_boxes`) by their expected size (half-way to the next
   line out), then splits the face brackets of the best sound box and of the boxes
   expected to beat it by more than 5% (up to ``alternatives`` of other shapes: a
   flat band against a tall strip) and scores, in one call, the unscored nodes of
   those boxes grown by one line.  It stops when no such box is left and the best
   box's brackets are below 2% of its size.  So the box is the best one on a grid
   fine where boxes compete, not the first locally maximal one met by growing faces.
   **Certification**: the best box's cells are then checked with a local Lipschitz
   bound (lowest corner score minus the steepest nearby slope times half the cell);
   an unsure cell is split in its dominant dim, down to 8 ``xtol``, and the search
   goes on with what the new nodes show.  Smooth confident interiors cost nothing;
   rugged scores get a fine grid.  Certifying stops before it would eat the budget
   the last step needs (``info["certified"]`` says whether it finished).
   3-D and more: the exact largest box on the lattice (`ground_truth.largest_box_mask`,
   periodic dims wrap) and ``alternatives`` runner-ups (a face layer left out, or one
   node thick in a dim), each refined as below, the largest kept.
3. **Face refinement.**  Each of the 2n faces lies on a good line, and the next line
   out holds a bad node.  Each face bisects its bracket to ``xtol`` x domain width
   with cheap tests (face corners; plus the face centre for oir_b / oir_w), one dim
   per round so a move is tested over exactly the box it bounds.  Then every moved
   face is tested densely at its final position *and at every line it crossed*, all
   in one call: the lines crossing it and its corners (naive), plus the centres of
   its cells (oir_b / oir_w).  A face failing that goes back and bisects with dense
   tests.  So the box is covered by scored points at most ``resolution`` apart per
   dim (the largest step between tested lines inside it).

Then **volume trades**, for every method: at the most constraining tested point of
each face the search takes the score gradient (central differences with step
``fd_step`` x width, one batched call; oir_w uses ``grad_fn`` when given), ranks the
dims by score cost per unit of log-width (``|df/dx_i| * width_i``, equal on all
active dims at the optimum), shrinks the most expensive dim by ``trade_frac`` of its
width, lets the other faces regrow (doubling steps, then bisection, then the dense
check), then regrows the shrunk dim; a trade is kept only if the volume grows.
``trades`` trials at most (default 1; oir_w 2(n-1)), and none that the remaining
budget could not pay twice; trades may spend 80% of the budget left, and one that
would pass that is undone (the converged box is kept).  ``alternatives``: default 3
in 1-D / 2-D, 1 in 3-D, 0 above.

The methods keep their flavour: naive tests face corners (bisection) and corners plus
lattice lines (verification); oir_b adds the face centre and the face cell centres;
oir_w adds gradient-guided trades (``grad_fn``) and more of them.

Budget: ``max_evals`` (default ``750 * 2**n``: 1500 in 1-D, 3000 in 2-D, 6000 in 3-D,
12000 in 4-D) bounds the evaluations exactly (a flood round is cut to the nodes
nearest ``x0``; unscored nodes count as bad).  When it runs out the result says
``converged=False, stop_reason="budget"`` and is still sound: only verified moves are
kept.  ``max_iter`` bounds the number of ``score_fn`` calls the same way.  A final
guard shrinks the box away from any scored point below the threshold that lies
inside it (only a non-deterministic score can cause one), so the box is sound by
construction and by check.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from dataclasses import asdict
from typing import Any

import numpy as np

from robustlens.regions.evaluator import BudgetExhausted, Evaluator
from robustlens.regions.grid_stage import GridStage
from robustlens.regions.ground_truth import largest_box_mask
from robustlens.regions.params import OursParams
from robustlens.regions.rectilinear import GridAxis, box_front, cartesian
from robustlens.regions.result import TraceStep, box_volume

__all__ = ["OURS_DEFAULTS", "SEARCH_REVISION", "default_max_evals", "run_ours"]

#: bumped whenever the search can return a different box for the same input: a study's
#: regions steps are keyed by it, so they are recomputed (and its maps are not)
SEARCH_REVISION = 3

#: variant "ours"'s defaults (described in `robustlens.regions.params.OursParams`)
OURS_DEFAULTS: dict[str, Any] = asdict(OursParams())

_FLOOD_SHARE = 0.45  # the flood fill may spend at most this share of the budget ...
_MIN_CELLS, _MAX_CELLS = 8, 48
# refine the lattice where the box spans fewer nodes than this (by dimension: in 3-D
# and more every halving multiplies the flood cost by 2 per halved dim)
_MIN_NODES = {1: 16, 2: 16, 3: 8}
_MIN_NODES_HIGH = 3
_TRADE_GAIN = 1.001
# n >= 3: lines per dim of the grid that certifies the final box, and rounds at most
_CERT_LINES = {3: 6, 4: 5}
_CERT_LINES_HIGH = 4
_CERT_ROUNDS = 4
_TRADE_SHARE = 0.8  # volume trades may spend this share of the budget left at most



def default_max_evals(n: int) -> int:
    """Default evaluation budget of an n-D search: ``750 * 2**n``."""
    return 750 * 2**n


def default_trades(n: int, method: str) -> int:
    """Volume trades at most: 1-D / 2-D 1 (oir_w 2(n-1)); 3-D and more ``2n``, because the
    choice of the box on the lattice is coarse there and the trades set its shape."""
    if n >= 3:
        return 2 * n
    return 2 * (n - 1) if method == "oir_w" else 1


def default_lattice(n: int, max_evals: int) -> int:
    """Cells per dim such that the full lattice is about a third of the budget."""
    return int(np.clip(math.floor((max_evals / 3.0) ** (1.0 / n)), _MIN_CELLS, _MAX_CELLS))



class _Search:
    def __init__(
        self,
        ev: Evaluator,
        x0: np.ndarray,
        lower: np.ndarray,
        upper: np.ndarray,
        periodic: np.ndarray,
        method: str,
        hyper: dict[str, Any],
    ) -> None:
        self.ev = ev
        self.x0 = x0
        self.dlo, self.dhi = lower, upper
        self.width = upper - lower
        self.periodic = periodic
        self.method = method
        self.n = n = x0.shape[0]
        self.t = float(hyper["threshold"])
        me = hyper["max_evals"]
        self.max_evals = default_max_evals(n) if me is None else int(me)
        self.max_iter = int(hyper["max_iter"])
        lat = hyper["lattice"]
        if lat is None:
            cells = np.full(n, default_lattice(n, self.max_evals))
        else:
            cells = np.broadcast_to(np.asarray(lat, dtype=np.int64), (n,)).copy()
        self.cells = cells
        self.h = self.width / cells  # lattice spacing per dim
        self.tol = float(hyper["xtol"]) * self.width
        self.fd = float(hyper["fd_step"]) * self.width
        tr = hyper["trades"]
        self.trades = default_trades(n, method) if tr is None else int(tr)
        self.trade_frac = float(hyper["trade_frac"])
        self.fine_faces = method != "naive"
        self.lo = x0.copy()
        self.hi = x0.copy()
        self.trace: list[TraceStep] = []
        self.pts: list[np.ndarray] = []  # every point sent, unwrapped
        self.vals: list[np.ndarray] = []
        self.axes: list[np.ndarray] = []  # lattice node coordinates per dim (non-periodic)
        self.n_trades = 0
        self.n_trades_accepted = 0
        self.flood_cut = False
        self.rounds = 0
        self.n_alternatives = 0
        self.grid_used = False
        self.certified = False
        # volume trades may spend this many evaluations at most (set by `polish`): a
        # trade that would pass it is undone, and the box stays the converged one
        self.trade_limit: int | None = None
        alt = hyper["alternatives"]
        self.alternatives = (3 if n <= 2 else 1 if n == 3 else 0) if alt is None else int(alt)

    # ------------------------------------------------------------------ evaluation
    def remaining(self) -> int:
        return self.max_evals - self.ev.n_evaluations

    def score(self, x: np.ndarray, grad_x: np.ndarray | None = None) -> tuple[np.ndarray, Any]:
        """One batched call (at most); raises `BudgetExhausted` if it would not fit."""
        # rounds count even when every point is cached: a hard bound on the loops
        if self.rounds >= self.max_iter:
            raise BudgetExhausted("max_iter")
        self.rounds += 1
        g_cost = 0 if grad_x is None else len(grad_x) * self.n
        room = self.remaining()
        if self.trade_limit is not None:
            room = min(room, self.trade_limit - self.ev.n_evaluations)
        if len(x) + g_cost > room and self.ev.count_new(x) + g_cost > room:
            raise BudgetExhausted("budget" if room == self.remaining() else "trade_allotment")
        vals, g = self.ev.evaluate(x, grad_x)
        if len(x):
            self.pts.append(np.asarray(x, dtype=np.float64))
            self.vals.append(vals)
        return vals, g

    # --------------------------------------------------------------------- helpers
    def volume_ratio(self, lo: np.ndarray | None = None, hi: np.ndarray | None = None) -> float:
        lo = self.lo if lo is None else lo
        hi = self.hi if hi is None else hi
        v = box_volume(lo, hi, self.dlo, self.dhi, self.periodic)
        return v / float(np.prod(self.width))

    def log_trace(self) -> None:
        self.trace.append((self.lo.copy(), self.hi.copy(), -self.volume_ratio()))

    def full_circle(self, i: int, lo: np.ndarray, hi: np.ndarray) -> bool:
        return bool(self.periodic[i] and hi[i] - lo[i] >= self.width[i] * (1 - 1e-12))

    # ---------------------------------------------------------------- 1. flood fill
    def build_lattice(self) -> tuple[list[np.ndarray], list[int]]:
        coords, start = [], []
        for i in range(self.n):
            h, x0 = float(self.h[i]), float(self.x0[i])
            if self.periodic[i]:
                m = int(self.cells[i])
                coords.append(x0 + h * np.arange(m))
                start.append(0)
                continue
            lo, hi, w = float(self.dlo[i]), float(self.dhi[i]), float(self.width[i])
            kneg = math.floor((x0 - lo) / h + 1e-9)
            kpos = math.floor((hi - x0) / h + 1e-9)
            c = x0 + h * np.arange(-kneg, kpos + 1)
            s = kneg
            # the domain edges are nodes: a box can reach them exactly
            if c[0] - lo > 1e-6 * w:
                c = np.r_[lo, c]
                s += 1
            else:
                c[0] = lo if kneg > 0 else c[0]
            if hi - c[-1] > 1e-6 * w:
                c = np.r_[c, hi]
            elif kpos > 0:
                c[-1] = hi
            coords.append(c)
            start.append(s)
        return coords, start

    def coord(self, i: int, k: int) -> float:
        """Coordinate of lattice index k of dim i (unwrapped on periodic dims)."""
        if self.periodic[i]:
            return float(self.x0[i] + k * self.h[i])
        return float(self.axes[i][k])

    def flood(
        self, window: tuple[np.ndarray, np.ndarray] | None = None
    ) -> tuple[np.ndarray, list[int]]:
        """Breadth-first flood fill of the good nodes connected to x0 (inside
        ``window`` = (lower, upper) coordinates, unwrapped, if given)."""
        coords, start = self.build_lattice()
        self.axes = coords
        shape = tuple(len(c) for c in coords)
        state = np.zeros(shape, np.int8)  # 0 unscored, 1 good, -1 bad
        st = tuple(start)
        inside = np.ones(shape, bool)
        if window is not None:
            for i, c in enumerate(coords):
                wl, wh = window[0][i], window[1][i]
                if self.periodic[i]:
                    ok = wl + np.mod(c - wl, self.width[i]) <= wh
                else:
                    ok = (c >= wl) & (c <= wh)
                sh = [1] * self.n
                sh[i] = -1
                inside &= ok.reshape(sh)
        frontier = np.zeros(shape, bool)
        frontier[st] = True
        cap = int(_FLOOD_SHARE * self.max_evals)
        while frontier.any():
            idx = np.argwhere(frontier)
            spent = self.ev.n_evaluations
            room = min(cap - spent, self.remaining())
            if len(idx) > room:
                self.flood_cut = True
                if room <= 0:
                    break
                # nearest nodes to x0 first (in units of the lattice step)
                d = np.abs(idx - np.asarray(start))
                if self.periodic.any():
                    m = np.asarray(shape)
                    d = np.where(self.periodic, np.minimum(d, m - d), d)
                idx = idx[np.argsort((d**2).sum(axis=1), kind="stable")[:room]]
            x = np.stack([coords[i][idx[:, i]] for i in range(self.n)], axis=1)
            try:
                vals, _ = self.score(x)
            except BudgetExhausted:
                self.flood_cut = True
                break
            good = vals >= self.t
            state[tuple(idx.T)] = np.where(good, 1, -1)
            if state[st] != 1:
                return state, start
            newly = np.zeros(shape, bool)
            newly[tuple(idx[good].T)] = True
            frontier = self._neighbours(newly) & (state == 0) & inside
        return state, start

    def refine_lattice(self, state: np.ndarray, start: list[int]) -> tuple[np.ndarray, list[int]]:
        """Halve the lattice step in the dims where the largest box spans fewer than
        ``_MIN_NODES`` nodes (16 in 1-D / 2-D, 4 in 3-D, 3 above) and flood again (cached nodes are not rescored), while the
        projected cost fits the flood share of the budget and the step stays above
        4 ``xtol``.  A thin region (a ridge, a small island) is thus found at a
        resolution adapted to its size.  A level whose flood the budget cuts short is
        dropped (the previous, complete one is kept)."""
        for _ in range(8):
            lo_k, hi_k = largest_box_mask(state == 1, start, self.periodic)
            counts = np.asarray(hi_k) - np.asarray(lo_k) + 1
            full = self.periodic & (counts >= np.asarray(state.shape))
            k_min = _MIN_NODES.get(self.n, _MIN_NODES_HIGH)
            thin = (counts < k_min) & ~full & (self.h / 2 >= 4 * self.tol)
            if not thin.any():
                break
            room = _FLOOD_SHARE * self.max_evals - self.ev.n_evaluations
            factor = 1.5 * 2 ** int(thin.sum())
            window = None
            if factor * int((state != 0).sum()) > room:
                # the whole component is too dear at the finer step: flood a window of
                # the candidate boxes (best and runners-up) plus two steps on every side
                cands = self.candidate_boxes(state, start, self.alternatives)
                lo_k = [min(c[0][i] for c in cands) for i in range(self.n)]
                hi_k = [max(c[1][i] for c in cands) for i in range(self.n)]
                span = np.asarray(hi_k) - np.asarray(lo_k) + 1
                full = full | (self.periodic & (span >= np.asarray(state.shape)))
                if factor * float(np.prod(np.minimum(span + 4, state.shape))) > room:
                    break
                wlo, whi = self.dlo.copy(), self.dhi.copy()
                for i in range(self.n):
                    if full[i]:
                        continue
                    if self.periodic[i]:
                        wlo[i], whi[i] = self.coord(i, lo_k[i] - 2), self.coord(i, hi_k[i] + 2)
                    else:
                        last = len(self.axes[i]) - 1
                        wlo[i] = self.coord(i, max(lo_k[i] - 2, 0))
                        whi[i] = self.coord(i, min(hi_k[i] + 2, last))
                window = (wlo, whi)
            saved = (self.cells.copy(), self.h.copy(), self.axes, self.flood_cut)
            self.cells = np.where(thin, 2 * self.cells, self.cells)
            self.h = self.width / self.cells
            new_state, new_start = self.flood(window)
            if self.flood_cut:
                self.cells, self.h, self.axes, self.flood_cut = saved
                break
            state, start = new_state, new_start
        return state, start

    def grid_resolution(self) -> np.ndarray:
        """Per dim, the largest step between the scored lines inside the box."""
        res = np.zeros(self.n)
        for i in range(self.n):
            c = self.lines(i, float(self.lo[i]), float(self.hi[i]))
            c = np.unique(np.r_[self.lo[i], c, self.hi[i]])
            res[i] = float(np.diff(c).max()) if c.size > 1 else 0.0
        return res

    def _neighbours(self, mask: np.ndarray) -> np.ndarray:
        out = np.zeros_like(mask)
        for ax in range(self.n):
            if self.periodic[ax]:
                out |= np.roll(mask, 1, axis=ax) | np.roll(mask, -1, axis=ax)
                continue
            sl_a = [slice(None)] * self.n
            sl_b = [slice(None)] * self.n
            sl_a[ax], sl_b[ax] = slice(1, None), slice(None, -1)
            out[tuple(sl_a)] |= mask[tuple(sl_b)]
            out[tuple(sl_b)] |= mask[tuple(sl_a)]
        return out

    # ------------------------------------------------------------ 2. lattice box
    def candidate_boxes(
        self, state: np.ndarray, start: list[int], k: int
    ) -> list[tuple[list[int], list[int]]]:
        """The exact largest lattice box, then up to ``k`` runners-up: for each face of
        the best box, the largest box that leaves that face's node layer out (a
        volume trade on the lattice, solved exactly), and for each dim the largest box
        one node thick in it, largest first.  Several boxes can
        be nearly as large at the lattice resolution; refining each tells them apart."""
        good = state == 1
        lo_k, hi_k = largest_box_mask(good, start, self.periodic)
        out = [(lo_k, hi_k)]
        if k <= 0:
            return out
        alts: list[tuple[Any, Any, int]] = []
        for i in range(self.n):
            m = state.shape[i]
            if self.periodic[i] and hi_k[i] - lo_k[i] + 1 >= m:
                continue
            for layer in (lo_k[i], hi_k[i]):
                if layer == start[i]:
                    continue
                g = good.copy()
                idx: list[Any] = [slice(None)] * self.n
                idx[i] = layer % m if self.periodic[i] else layer
                g[tuple(idx)] = False
                a, b = largest_box_mask(g, start, self.periodic)
                cnt = int(np.prod(np.asarray(b) - np.asarray(a) + 1))
                if cnt > 0 and (a, b) not in [o[:2] for o in alts]:
                    alts.append((a, b, cnt))
        # boxes one node thick in dim i (the layer through x0): a ridge or a flat band
        # whose thickness the lattice cannot see; ranked as if refinement gave them
        # two nodes of thickness (the most it can add is just under 2 steps)
        for i in range(self.n):
            if hi_k[i] == lo_k[i]:
                continue
            g = np.zeros_like(good)
            idx2: list[Any] = [slice(None)] * self.n
            idx2[i] = start[i]
            g[tuple(idx2)] = good[tuple(idx2)]
            a, b = largest_box_mask(g, start, self.periodic)
            cnt = 2 * int(np.prod(np.asarray(b) - np.asarray(a) + 1))
            if (a, b) not in [o[:2] for o in alts] and (a, b) != (lo_k, hi_k):
                alts.append((a, b, cnt))
        alts.sort(key=lambda t: -t[2])
        return out + [(a, b) for a, b, _ in alts[:k]]

    def lattice_box(
        self, box: tuple[list[int], list[int]], shape: tuple[int, ...],
        coord: Callable[[int, int], float] | None = None,
    ) -> list[dict[str, Any] | None]:
        """Set the box to a lattice box; returns the 2n face brackets (each reaching to
        the next line out; None on a domain edge or a full circle).  ``coord(i, k)``:
        the coordinate of line k of dim i (default: the uniform flood lattice)."""
        coord = self.coord if coord is None else coord
        lo_k, hi_k = box
        faces: list[dict[str, Any] | None] = []
        for i in range(self.n):
            m = shape[i]
            full = self.periodic[i] and hi_k[i] - lo_k[i] + 1 >= m
            if full:
                self.lo[i], self.hi[i] = self.dlo[i], self.dhi[i]
                faces += [None, None]
                continue
            self.lo[i], self.hi[i] = coord(i, lo_k[i]), coord(i, hi_k[i])
            for side, k in ((-1, lo_k[i] - 1), (1, hi_k[i] + 1)):
                if not self.periodic[i] and not 0 <= k < m:
                    faces.append(None)  # at the domain edge
                else:
                    faces.append({"dim": i, "side": side, "bad": coord(i, k), "step": None})
        return faces

    # ------------------------------------------------------------- 3. face tests
    def axis_samples(self, j: int, a: float, b: float) -> np.ndarray:
        """Test coordinates on [a, b] along dim j: both ends and the lattice lines inside."""
        inner = self.lines(j, a, b)
        return np.unique(np.r_[a, inner[(inner > a) & (inner < b)], b])

    def lines(self, j: int, a: float, b: float) -> np.ndarray:
        """Lattice / grid line coordinates of dim j in [a, b] (unwrapped on periodic dims,
        whose lines are stored in [x0, x0 + period))."""
        c = np.asarray(self.axes[j], dtype=np.float64)
        if self.periodic[j]:
            w = float(self.width[j])
            k0, k1 = math.floor((a - c[0]) / w) - 1, math.floor((b - c[0]) / w) + 1
            c = np.concatenate([c + k * w for k in range(k0, k1 + 1)])
        return c[(c >= a) & (c <= b)]

    def face_points(self, i: int, q: float, dense: bool) -> np.ndarray:
        """Test points of the face of dim i at offset q spanning the current box.

        Cheap (bisection): the face corners, plus the face centre for oir_b / oir_w.
        Dense (verification): the lattice lines crossing the face and its corners,
        plus (oir_b / oir_w) the centres of the face's lattice cells.
        """
        other = [j for j in range(self.n) if j != i]
        if dense:
            axes = [self.axis_samples(j, self.lo[j], self.hi[j]) for j in other]
        else:
            axes = [np.unique(np.r_[self.lo[j], self.hi[j]]) for j in other]
        blocks = [cartesian(axes)]
        if self.fine_faces and other:
            mids = [0.5 * (a[:-1] + a[1:]) if len(a) > 1 else a for a in axes]
            blocks.append(cartesian(mids))
        pts = np.concatenate(blocks)
        out = np.empty((len(pts), self.n))
        out[:, other] = pts
        out[:, i] = q
        return out

    def slab_points(self, i: int, p: float, q: float) -> np.ndarray:
        """Dense test points of a face moved from ``p`` to ``q`` in dim i: the face at
        ``q`` and at every lattice line strictly between (so no hole of the slab between
        two lines is skipped: the box stays sound at the lattice step)."""
        crossed = self.lines(i, min(p, q), max(p, q))
        crossed = crossed[(crossed != p) & (crossed != q)]
        return np.concatenate([self.face_points(i, c, dense=True) for c in (*crossed, q)])

    def proposals(self, faces: list[dict[str, Any] | None], dim: int) -> dict[int, float]:
        """Outward offset to test for every face of ``dim`` still moving (drops finished
        faces: sets them to None)."""
        props: dict[int, float] = {}
        for fi, f in enumerate(faces):
            if f is None or f["dim"] != dim:
                continue
            i, side = f["dim"], f["side"]
            p = self.lo[i] if side < 0 else self.hi[i]
            if self.full_circle(i, self.lo, self.hi):
                faces[fi] = None
                continue
            if f["bad"] is not None:
                gap = abs(f["bad"] - p)
                if gap <= self.tol[i]:
                    faces[fi] = None
                    continue
                c = gap / 2
            else:
                c = f["step"]
            if not self.periodic[i]:
                room = (p - self.dlo[i]) if side < 0 else (self.dhi[i] - p)
                if room <= 1e-12 * self.width[i]:
                    faces[fi] = None
                    continue
                c = min(c, float(room))
            if not c > 1e-12 * self.width[i]:
                faces[fi] = None
                continue
            props[fi] = c
        if self.periodic[dim] and props:
            # the two faces of a periodic dim must not overlap: share the gap left
            i = dim
            pair = list(props)
            room = float(self.width[i] - (self.hi[i] - self.lo[i]))
            tot = sum(props[fi] for fi in pair)
            if tot > room:
                for fi in pair:
                    props[fi] *= room / tot
        return props

    def move_round(self, faces: list[dict[str, Any] | None], dense: bool, dim: int) -> bool:
        """One batched round: the moving faces of ``dim`` (at most two, which do not touch)
        test their candidates over the current box, so an accepted move is tested over
        exactly the box it bounds.  Returns False when no face of ``dim`` is left to move.
        """
        props = self.proposals(faces, dim)
        if not props:
            return False
        blocks, spans, start = [], [], 0
        for fi, c in props.items():
            f = faces[fi]
            assert f is not None
            i = f["dim"]
            p = self.lo[i] if f["side"] < 0 else self.hi[i]
            q = p - c if f["side"] < 0 else p + c
            x = self.slab_points(i, p, q) if dense else self.face_points(i, q, dense)
            blocks.append(x)
            spans.append((fi, q, slice(start, start + len(x))))
            start += len(x)
        vals, _ = self.score(np.concatenate(blocks))
        for fi, q, sl in spans:
            f = faces[fi]
            assert f is not None
            i = f["dim"]
            if vals[sl].min() >= self.t:
                if f["side"] < 0:
                    self.lo[i] = q
                else:
                    self.hi[i] = q
                if f["bad"] is None:
                    f["step"] *= 2
            else:
                f["bad"] = q
        for i in np.flatnonzero(self.periodic).tolist():
            if self.full_circle(i, self.lo, self.hi):
                self.lo[i], self.hi[i] = self.dlo[i], self.dhi[i]
        self.log_trace()
        return True

    def refine(self, faces: list[dict[str, Any] | None], log_entry: bool = False,
               verify: bool = True) -> None:
        """`_refine`; if the budget runs out midway the box goes back to its entry
        state (sound at the lattice resolution) before `BudgetExhausted` propagates."""
        entry = (self.lo.copy(), self.hi.copy())
        if log_entry:
            self.log_trace()
        try:
            self._refine(faces, verify)
        except BudgetExhausted:
            self.lo, self.hi = entry
            self.log_trace()
            raise

    def _refine(self, faces: list[dict[str, Any] | None], verify: bool = True) -> None:
        """Move faces out until every bracket is below tolerance (raises `BudgetExhausted`).

        A face with ``bad`` set bisects; one without grows by doubling ``step``.  The
        box at entry is sound at the lattice resolution.  Phase A moves the faces
        with cheap tests, one dim per round (so a move is tested over exactly the box
        it bounds, corners included); phase B tests every moved face densely at its
        final position over the final box (one call); a face that fails goes back to
        its entry position and bisects with dense tests (phase C).
        """
        entry = (self.lo.copy(), self.hi.copy())
        self.sweep(faces, dense=False)
        if verify:
            self.verify_since(entry)

    def verify_since(self, entry: tuple[np.ndarray, np.ndarray]) -> None:
        """Dense check of every face that moved since the sound box ``entry``: the face
        and every line it crossed, over the current box (one call); a face failing it
        goes back to its entry position and bisects with dense tests."""
        # only faces that moved out need a check: a face that moved in shrank the box
        moved = [(i, s) for i in range(self.n) for s in (-1, 1)
                 if not self.full_circle(i, self.lo, self.hi)
                 and (self.lo[i] < entry[0][i] if s < 0 else self.hi[i] > entry[1][i])]
        if not moved:
            return
        blocks, spans, start = [], [], 0
        for i, s in moved:
            # the final face and every lattice line it crossed: a face that moved by
            # more than a step (a regrown trade) must not skip a hole of the slab
            q, q0 = (self.lo[i], entry[0][i]) if s < 0 else (self.hi[i], entry[1][i])
            x = self.slab_points(i, q0, q)
            blocks.append(x)
            spans.append((i, s, slice(start, start + len(x))))
            start += len(x)
        vals, _ = self.score(np.concatenate(blocks))
        retry: list[dict[str, Any] | None] = []
        for i, s, sl in spans:
            if vals[sl].min() >= self.t:
                continue
            if s < 0:
                bad, self.lo[i] = self.lo[i], entry[0][i]
            else:
                bad, self.hi[i] = self.hi[i], entry[1][i]
            retry.append({"dim": i, "side": s, "bad": bad, "step": None})
        if not retry:
            return
        self.log_trace()
        self.sweep(retry, dense=True)

    def best_of(self, boxes: list[tuple[list[int], list[int]]], shape: tuple[int, ...]) -> None:
        """Refine each candidate lattice box; keep the largest result.  A runner-up is
        refined only while the budget leaves room for it (twice the first one's cost)."""
        best: tuple[np.ndarray, np.ndarray] | None = None
        cost = 0
        for k, box in enumerate(boxes):
            if k > 0 and 2 * cost > self.remaining():
                break
            spent = self.ev.n_evaluations
            self.lo, self.hi = self.x0.copy(), self.x0.copy()
            self.refine(self.lattice_box(box, shape), log_entry=True)
            cost = max(cost, self.ev.n_evaluations - spent)
            if best is None or self.volume_ratio() > self.volume_ratio(*best):
                best = (self.lo.copy(), self.hi.copy())
            if k > 0:
                self.n_alternatives += 1
        assert best is not None
        self.lo, self.hi = best
        self.log_trace()

    def sweep(self, faces: list[dict[str, Any] | None], dense: bool) -> None:
        """Rounds over the dims in turn until no face moves."""
        active = True
        while active:
            active = False
            for d in range(self.n):
                active |= self.move_round(faces, dense, d)

    # ------------------------------------------------------------------- trades
    def binding_points(self) -> list[np.ndarray]:
        """Per dim, the lowest-scoring tested point on the box boundary of that dim."""
        pts, vals = np.concatenate(self.pts), np.concatenate(self.vals)
        inside = self.inside(pts, self.lo, self.hi)
        out = []
        for i in range(self.n):
            on = inside & (
                (np.abs(pts[:, i] - self.lo[i]) <= 1e-9 * self.width[i])
                | (np.abs(pts[:, i] - self.hi[i]) <= 1e-9 * self.width[i])
            )
            out.append(pts[np.flatnonzero(on)[np.argmin(vals[on])]] if on.any() else self.x0)
        return out

    def costs(self) -> np.ndarray:
        """Score cost per unit log-width of each dim at its binding point."""
        b = np.stack(self.binding_points())
        if self.ev.grad_fn is not None and self.method == "oir_w":  # naive / oir_b: black box
            _, g = self.score(np.zeros((0, self.n)), b)
            grad = np.asarray(g)
        else:
            eye = np.eye(self.n) * self.fd
            xp = b[:, None, :] + eye[None]
            xm = b[:, None, :] - eye[None]
            vals, _ = self.score(np.concatenate([xp.reshape(-1, self.n), xm.reshape(-1, self.n)]))
            k = self.n * self.n
            grad = (vals[:k] - vals[k:]).reshape(self.n, self.n) / (2 * self.fd)
        diag = np.abs(np.diag(grad))
        return diag * (self.hi - self.lo)

    def polish(self) -> None:
        """Volume trades (see the module docstring).  They may spend ``_TRADE_SHARE`` of
        the budget left: a trade that would pass that is undone and trading stops, so
        the last converged box is kept (and the budget is not exhausted)."""
        self.trade_limit = self.ev.n_evaluations + int(_TRADE_SHARE * self.remaining())
        entry = (self.lo.copy(), self.hi.copy())
        try:
            self._polish()
        finally:
            self.trade_limit = None
        # from 3-D on trades move faces with cheap tests: one dense check of the final
        # box; if the budget cannot pay it, the converged box before the trades stays
        try:
            self.verify_since(entry)
        except BudgetExhausted:
            self.lo, self.hi = entry
            self.log_trace()

    def _polish(self) -> None:
        tried: set[int] = set()
        frac = self.trade_frac
        trade_cost = 0
        while self.n_trades < self.trades:
            movable = [i for i in range(self.n) if not self.full_circle(i, self.lo, self.hi)]
            cost = self.costs()
            if cost.max() <= 0:
                return
            order = [int(i) for i in np.argsort(-cost, kind="stable")]
            order = [i for i in order if i in movable and i not in tried]
            if len(movable) < 2 or not order:
                return
            i = order[0]
            if 2 * trade_cost > self.remaining():
                return  # keep the budget's last share: stop trading, still converged
            spent = self.ev.n_evaluations
            tried.add(i)
            self.n_trades += 1
            snap = self.lo.copy(), self.hi.copy()
            before = self.volume_ratio()
            d = frac * float(self.hi[i] - self.lo[i]) / 2
            try:
                self.lo[i] = min(self.lo[i] + d, self.x0[i])
                self.hi[i] = max(self.hi[i] - d, self.x0[i])
                step = np.maximum((frac / 2) * (self.hi - self.lo), 2 * self.tol)
                grow = [{"dim": j, "side": s, "bad": None, "step": float(step[j])}
                        for j in range(self.n) for s in (-1, 1) if j != i]
                self.refine(grow, verify=self.n <= 2)  # type: ignore[arg-type]
                back = [{"dim": i, "side": s, "bad": None, "step": max(d / 2, 2 * self.tol[i])}
                        for s in (-1, 1)]
                self.refine(back, verify=self.n <= 2)  # type: ignore[arg-type]
            except BudgetExhausted as b:
                self.lo, self.hi = snap
                self.log_trace()
                if b.reason == "trade_allotment":
                    return
                raise
            trade_cost = max(trade_cost, self.ev.n_evaluations - spent)
            if self.volume_ratio() > before * _TRADE_GAIN:
                self.n_trades_accepted += 1
                tried = {i}
            else:
                self.lo, self.hi = snap
                self.log_trace()
                if len(tried) >= len(movable):
                    tried = set()
                    frac /= 2

    # ------------------------------------------------------ n-D: certify the box
    def certify_grid(self) -> None:
        """From 3-D on: score a grid of at least ``_CERT_LINES[n]`` lines per dim inside
        the box (so the resolution the box is sound at adapts to its size, as the 1-D /
        2-D grid stage's ``_MIN_LINES`` does); where a node is below the threshold, the
        box becomes the largest box of good nodes containing x0 on that grid
        (`rectilinear.box_front`) and its faces are bisected again towards the bad lines.
        Repeated while nodes come out bad (at most ``_CERT_ROUNDS`` times) and the
        budget pays; ``certified`` says whether the last grid was all good."""
        k = _CERT_LINES.get(self.n, _CERT_LINES_HIGH)
        for _ in range(_CERT_ROUNDS):
            axes, starts = [], []
            for i in range(self.n):
                lo, hi, x0 = float(self.lo[i]), float(self.hi[i]), float(self.x0[i])
                # the lattice lines inside the box (their nodes are mostly scored already),
                # plus k evenly spaced ones where the lattice is coarser than that
                c = np.unique(np.r_[lo, self.lines(i, lo, hi), hi, x0])
                if hi > lo and np.diff(c).max() > 1.01 * (hi - lo) / (k - 1):
                    c = np.unique(np.r_[c, np.linspace(lo, hi, k)])
                if hi <= lo:
                    c = np.array([x0])
                axes.append(c)
                starts.append(int(np.searchsorted(c, x0)))
            pts = cartesian(axes)
            # the face refinement checked the faces densely: score the inside
            on_face = np.zeros(len(pts), bool)
            for i in range(self.n):
                if self.hi[i] > self.lo[i]:
                    on_face |= (pts[:, i] <= self.lo[i]) | (pts[:, i] >= self.hi[i])
            inner = pts[~on_face]
            if self.ev.count_new(inner) > self.remaining():
                return  # cannot pay: the box stays sound at the resolution tested
            try:
                vals, _ = self.score(inner)
            except BudgetExhausted:
                return
            flat = np.ones(len(pts), bool)
            flat[~on_face] = vals >= self.t
            good = flat.reshape([len(a) for a in axes])
            if good.all():
                self.certified = True
                return
            g = tuple(GridAxis(a, s0) for a, s0 in zip(axes, starts, strict=True))
            front = box_front(good, g, "span", best_only=True)
            if len(front) == 0:  # x0 itself scored low (non-deterministic score)
                return
            blo, bhi = front.box(int(np.argmax(front.volume("span"))))
            faces: list[dict[str, Any] | None] = []
            for i in range(self.n):
                c = axes[i]
                self.lo[i], self.hi[i] = c[blo[i]], c[bhi[i]]
                for side, kk in ((-1, blo[i] - 1), (1, bhi[i] + 1)):
                    faces.append({"dim": i, "side": side, "bad": float(c[kk]), "step": None}
                                 if 0 <= kk < len(c) else None)
            self.log_trace()
            try:
                self.refine(faces)
            except BudgetExhausted:
                return

    # -------------------------------------------------------------------- guard
    def inside(self, pts: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        p = pts.copy()
        per = self.periodic
        if per.any():
            p[:, per] = lo[per] + np.mod(p[:, per] - lo[per], self.width[per])
        eps = 1e-12 * self.width
        return ((p >= lo - eps) & (p <= hi + eps)).all(axis=1)

    def guard(self) -> None:
        """Shrink the box away from any scored point below threshold inside it."""
        if not self.pts:
            return
        pts, vals = np.concatenate(self.pts), np.concatenate(self.vals)
        bad_pts = pts[vals < self.t]
        for _ in range(len(bad_pts) + 1):
            inside = self.inside(bad_pts, self.lo, self.hi)
            if not inside.any():
                return
            p = bad_pts[np.flatnonzero(inside)[0]].copy()
            per = self.periodic
            p[per] = self.lo[per] + np.mod(p[per] - self.lo[per], self.width[per])
            best, best_v = None, -1.0
            for i in range(self.n):
                lo, hi = self.lo.copy(), self.hi.copy()
                gap = 1e-9 * self.width[i]
                if p[i] > self.x0[i]:
                    hi[i] = p[i] - gap
                elif p[i] < self.x0[i]:
                    lo[i] = p[i] + gap
                else:
                    continue
                v = self.volume_ratio(lo, hi)
                if v > best_v:
                    best, best_v = (lo, hi), v
            if best is None:  # the start point itself scored low once: give up
                self.lo, self.hi = self.x0.copy(), self.x0.copy()
                return
            self.lo, self.hi = best

    def worst_inside(self) -> float:
        pts, vals = np.concatenate(self.pts), np.concatenate(self.vals)
        inside = self.inside(pts, self.lo, self.hi)
        return float(vals[inside].min()) if inside.any() else float("nan")

    # ---------------------------------------------------------------------- run
    def run(self) -> dict[str, Any]:
        stop = "converged"
        try:
            state, start = self.flood()
            if state[tuple(start)] != 1:
                stop = "not_robust"
            else:
                state, start = self.refine_lattice(state, start)
                if self.n <= 2:
                    GridStage(self).run(state)
                else:
                    self.best_of(
                        self.candidate_boxes(state, start, self.alternatives), state.shape)
                if self.trades > 0 and self.n > 1:
                    self.polish()
                if self.n >= 3:
                    self.certify_grid()
        except BudgetExhausted as b:
            stop = b.reason
        if stop == "converged" and self.flood_cut:
            stop = "budget"
        if stop == "not_robust":
            self.lo, self.hi = self.x0.copy(), self.x0.copy()
        self.guard()
        lo, hi = self.lo.copy(), self.hi.copy()
        for i in np.flatnonzero(self.periodic).tolist():
            if hi[i] - lo[i] >= self.width[i] * (1 - 1e-12):
                lo[i], hi[i] = self.dlo[i], self.dhi[i]
        if not self.trace or not (
            np.array_equal(self.trace[-1][0], lo) and np.array_equal(self.trace[-1][1], hi)
        ):
            self.lo, self.hi = lo, hi
            self.log_trace()
        wrapped = self.periodic & ((lo < self.dlo) | (hi > self.dhi))
        worst = self.worst_inside() if self.pts else float("nan")
        res = self.grid_resolution() if self.grid_used else self.h
        resolution = np.where(stop == "not_robust", 0.0, res)
        return {
            "lower": lo,
            "upper": hi,
            "trace": self.trace,
            "converged": stop in ("converged", "not_robust"),
            "stop_reason": stop,
            "wrapped": wrapped,
            "resolution": np.asarray(resolution, dtype=np.float64),
            "worst_score": worst,
            "n_trades": self.n_trades,
            "n_trades_accepted": self.n_trades_accepted,
            "n_alternatives": self.n_alternatives,
            "certified": self.certified,
            "max_evals": self.max_evals,
            "lattice": [int(c) for c in self.cells],
        }


def run_ours(
    ev: Evaluator,
    x0: np.ndarray,
    lower: np.ndarray,
    upper: np.ndarray,
    periodic: np.ndarray,
    method: str,
    hyper: dict[str, Any],
) -> dict[str, Any]:
    """Run the search; returns the raw pieces of a `RegionResult`."""
    return _Search(ev, x0, lower, upper, periodic, method, hyper).run()
