"""Step 2 of variant "ours" in 1-D and 2-D: choose the box on a grid refined where boxes
compete, then certify it (see `ours` for the whole search).

The flood fill leaves a lattice of scored nodes.  `GridStage` turns it into a
rectilinear grid whose lines are refined only where it matters:

* every round ranks *all* boxes of good nodes around ``x0`` exactly
  (`rectilinear.maximal_boxes`) by their expected size (half-way to the next line out);
* it splits the face brackets of the best sound box and of the boxes expected to beat
  it by more than ``_ALT_GAIN`` (boxes of another shape: a flat band against a tall
  strip), and scores the new nodes of those boxes, grown by one line, in one call;
* when no such box is left, the best box's cells are certified with a local Lipschitz
  bound and unsure cells are split (``certify_proposals``), until none is left, the
  step reaches ``_CERT_FLOOR`` ``xtol`` or the budget the last step needs is reached.

The best box of scored good nodes is then handed to the face bisection (`ours`).
"""

from __future__ import annotations

import math

import numpy as np
from scipy.ndimage import maximum_filter

from robustlens.regions.evaluator import BudgetExhausted
from robustlens.regions.faces import lattice_box, refine
from robustlens.regions.rectilinear import GridAxis, box_front, cartesian
from robustlens.regions.state import ChoiceResult, Face, SearchState

__all__ = ["GridStage"]

Box = tuple[list[int], list[int]]

_MIN_LINES = 8  # grid stage: lines per dim inside the leading boxes, at least
_FACE_REL = 0.02  # grid stage: face brackets are split down to this share of the box
_CERT_FLOOR = 8  # grid stage: certification splits cells down to this many xtol
_CERT_SHARE = 0.25  # boxes of other shapes are explored only while this share is left
_ALT_GAIN = 0.05  # grid stage: an alternative box must be able to beat the best by this


class GridStage:
    """The grid stage of one search (`SearchState`): reads and sets its box, budget and lines."""

    def __init__(self, search: SearchState) -> None:
        self.s = search

    def axes_of(self, axes: list[np.ndarray]) -> tuple[GridAxis, ...]:
        out = []
        for i, c in enumerate(axes):
            s = 0 if self.s.periodic[i] else int(np.searchsorted(c, self.s.x0[i]))
            out.append(GridAxis(c, s, bool(self.s.periodic[i]), float(self.s.width[i])))
        if self.s.n == 1:
            out.append(GridAxis(np.zeros(1), 0, dummy=True))
        return tuple(out)

    def window(
        self, box: Box, g: tuple[GridAxis, ...]
    ) -> tuple[np.ndarray, np.ndarray]:
        """Coordinates (unwrapped) of a box grown by one line on every side."""
        lo = np.array([float(g[i].x(box[0][i] - 1)) for i in range(self.s.n)])
        hi = np.array([float(g[i].x(box[1][i] + 1)) for i in range(self.s.n)])
        return lo, hi

    def in_window(self, axes: list[np.ndarray], win: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
        """Bool mask over the grid: nodes inside the (unwrapped) coordinate window."""
        mask = np.ones([len(a) for a in axes], bool)
        for i, c in enumerate(axes):
            wl, wh = float(win[0][i]), float(win[1][i])
            eps = 1e-9 * float(self.s.width[i])
            if self.s.periodic[i]:
                ok = (wh - wl >= self.s.width[i] - eps) | (
                    wl + np.mod(c - wl, self.s.width[i]) <= wh + eps)
            else:
                ok = (c >= wl - eps) & (c <= wh + eps)
            sh = [1] * len(axes)
            sh[i] = -1
            mask &= np.asarray(ok).reshape(sh)
        return mask

    def optimistic(self, st: np.ndarray) -> np.ndarray:
        """Good nodes, plus unscored ones lying between two good scored nodes along a dim
        (around the circle on a periodic dim).  Used to *rank* boxes only: what is
        returned is made of scored nodes."""
        out = st == 1
        unk = st == 0
        for ax in range(st.ndim):
            m = st.shape[ax]
            if m < 3:
                continue
            wrap = ax < self.s.n and bool(self.s.periodic[ax])
            t = np.concatenate([st, st, st], axis=ax) if wrap else st
            mt = t.shape[ax]
            idx = np.arange(mt).reshape([-1 if a == ax else 1 for a in range(st.ndim)])
            known = t != 0
            fwd = np.maximum.accumulate(np.where(known, idx, 0), axis=ax)
            bwd = np.flip(np.minimum.accumulate(
                np.flip(np.where(known, idx, mt - 1), axis=ax), axis=ax), axis=ax)
            both = (np.take_along_axis(t, fwd, axis=ax) == 1) & (
                np.take_along_axis(t, bwd, axis=ax) == 1)
            if wrap:
                both = np.take(both, np.arange(m, 2 * m), axis=ax)
            out |= unk & both
        return out

    def candidates(
        self, st: np.ndarray, g: tuple[GridAxis, ...]
    ) -> tuple[list[Box], Box]:
        """Boxes whose faces the next round refines, and the best sound box.

        The best sound box ("span" on scored good nodes) comes first.  Then, ranked by
        the "middle" measure on the optimistic mask, the boxes expected to beat it by
        more than ``_ALT_GAIN``: the first of them, and up to ``alternatives`` more of
        a different shape (IoU <= 0.5 with every box chosen).  When none is left, only
        the best sound box's faces are refined: the search has settled.
        """
        sure = box_front(st == 1, g, "span", best_only=True)
        span = sure.volume("span")
        best_sound = sure.box(int(np.argmax(span)))
        bar = float(span.max()) * (1 + _ALT_GAIN)
        opt = box_front(self.optimistic(st), g, "middle", floor=bar)
        mid = opt.volume("middle")
        order = np.argsort(-mid, kind="stable")
        chosen = [best_sound]
        for f in order[:500].tolist():
            if len(chosen) >= 2 + self.s.alternatives or mid[f] <= bar:
                break
            box = opt.box(f)
            if len(chosen) == 1 or all(self.box_iou(box, c, g) <= 0.5 for c in chosen):
                if box != best_sound:
                    chosen.append(box)
        return chosen, best_sound

    def box_iou(self, a: Box, b: Box, g: tuple[GridAxis, ...]) -> float:
        """IoU of two boxes under the "middle" measure (the overlap of their spans plus
        the smaller of their half-gap margins, per dim): a shape-diversity test."""
        inter = va = vb = 1.0
        for i in range(self.s.n):
            ea = g[i].extent(np.array(a[0][i]), np.array(a[1][i]), "middle")
            eb = g[i].extent(np.array(b[0][i]), np.array(b[1][i]), "middle")
            la, lb = float(g[i].x(a[0][i])), float(g[i].x(b[0][i]))
            ha, hb = float(g[i].x(a[1][i])), float(g[i].x(b[1][i]))
            ov = max(0.0, min(ha, hb) - max(la, lb)) + min(float(ea) - (ha - la),
                                                           float(eb) - (hb - lb))
            inter *= min(max(ov, 0.0), float(ea), float(eb))
            va *= float(ea)
            vb *= float(eb)
        return inter / (va + vb - inter) if va + vb - inter > 0 else 1.0

    def face_proposals(
        self, boxes: list[Box], g: tuple[GridAxis, ...]
    ) -> list[set[float]]:
        """New lines per dim: the middle of every face bracket wider than ``xtol`` and
        ``_FACE_REL`` of the box, and lines that give the two leading boxes at least
        ``_MIN_LINES`` lines per dim."""
        props: list[set[float]] = [set() for _ in range(self.s.n)]
        for lo, hi in boxes:
            for i in range(self.s.n):
                ax = g[i]
                if ax.periodic and hi[i] - lo[i] + 1 >= ax.m:
                    continue
                for face, out in ((lo[i], lo[i] - 1), (hi[i], hi[i] + 1)):
                    if not ax.periodic and not 0 <= out < ax.m:
                        continue  # the face is on the domain edge
                    xf, xo = float(ax.x(face)), float(ax.x(out))
                    ext = float(ax.extent(np.array(lo[i]), np.array(hi[i]), "middle"))
                    if abs(xo - xf) <= max(self.s.tol[i], _FACE_REL * ext, 1e-9 * self.s.width[i]):
                        continue  # the last step to xtol is a cheap bisection (refine)
                    q = 0.5 * (xf + xo)
                    if ax.periodic:
                        q = self.wrap_line(i, q)
                    props[i].add(q)
        for i, extra in enumerate(self.min_lines(boxes[:2], g, _MIN_LINES)):
            props[i] |= extra
        return props

    def min_lines(self, boxes: list[Box], g: tuple[GridAxis, ...], k_min: int
                  ) -> list[set[float]]:
        """Lines that give each box at least ``k_min`` lines per dim (splitting its widest
        gaps), down to 8 ``xtol``: the resolution a box is sound at adapts to its size."""
        props: list[set[float]] = [set() for _ in range(self.s.n)]
        for lo, hi in boxes:
            for i in range(self.s.n):
                ax = g[i]
                if ax.periodic and hi[i] - lo[i] + 1 >= ax.m:
                    continue
                c = ax.x(np.arange(lo[i], hi[i] + 1))
                if len(c) >= k_min or c[-1] - c[0] <= 0:
                    continue
                gaps = np.diff(c)
                split = gaps > max((c[-1] - c[0]) / (k_min - 1), 8 * self.s.tol[i])
                for q in 0.5 * (c[:-1] + c[1:])[split]:
                    if ax.periodic:
                        q = self.wrap_line(i, q)
                    props[i].add(float(q))
        return props

    def best_sound(self, st: np.ndarray, g: tuple[GridAxis, ...]) -> Box:
        """The largest box of scored good nodes ("span" measure)."""
        sure = box_front(st == 1, g, "span", best_only=True)
        return sure.box(int(np.argmax(sure.volume("span"))))

    def run(self, state: np.ndarray) -> ChoiceResult:
        """n <= 2: choose the box on a grid refined at the candidates' faces, exactly.

        Each round ranks every box of the grid (`rectilinear.maximal_boxes`), inserts a
        line in the middle of each candidate's face brackets (wider than ``xtol`` and
        than ``_FACE_REL`` of the box) and scores, in one call, the unscored nodes of
        the candidates grown by one line -- until no bracket is left to split.  The
        best box of scored good nodes ("span") is sound at the grid's step inside it;
        its faces are then bisected to ``xtol`` (`refine`).  Unlike growing one box's
        faces greedily, the choice between boxes of different shapes (a flat band or
        a tall strip) is made on the refined grid every round.  When the choice has
        settled, the box's cells are certified (`certify_proposals`).  A round the
        budget cannot pay is not started: the last complete grid is kept.
        """
        axes = [np.asarray(a, dtype=np.float64).copy() for a in self.s.axes]
        dummy = [1] if self.s.n == 1 else []
        shape = [len(a) for a in axes] + dummy
        # scores at the nodes (NaN: not scored); the coarser flood levels' nodes are
        # nodes of this lattice too, so every score the flood paid for is used
        sv = self.s.ev.lookup(cartesian(axes)).reshape(shape)
        st = self.node_state(sv)
        stop: BudgetExhausted | None = None
        self.s.certified = False
        pending: list[set[float]] = [set() for _ in range(self.s.n)]
        try:
            for _ in range(10_000):
                g = self.axes_of(axes)
                cands, best = self.candidates(st, g)
                self.set_box(best, g)
                self.s.log_trace()
                wins = [self.window(c, g) for c in cands]
                props = self.face_proposals(cands, g)
                for i in range(self.s.n):  # lines through the bad probes of last round
                    props[i] |= pending[i]
                    pending[i] = set()
                certify = not any(props) and len(cands) == 1
                probes = np.zeros((0, self.s.n))
                if certify:
                    props, probes = self.certify_proposals(best, g, sv)
                new_axes, grown = axes, sv
                if any(props):
                    new_axes = [np.unique(np.r_[a, sorted(p)]) for a, p in zip(axes, props, strict=True)]
                    pos = [np.searchsorted(na, a) for na, a in zip(new_axes, axes, strict=True)]
                    grown = np.full([len(a) for a in new_axes] + dummy, np.nan)
                    grown[np.ix_(*pos, *([[0]] if self.s.n == 1 else []))] = sv
                todo = None
                for k in (len(wins), 1):  # all candidates; if too dear, the first only
                    need = np.zeros(grown.shape[: self.s.n], bool)
                    for w in wins[:k]:
                        need |= self.in_window(new_axes, w)
                    need &= np.isnan(grown.reshape(need.shape))
                    pts = np.concatenate([self.node_points(new_axes, need), probes])
                    # certifying leaves a reserve for the faces' final bisection, and
                    # exploring other shapes leaves a share for certifying
                    room = self.s.budget.remaining() - (self.refine_estimate(best, g) if certify else 0)
                    if k > 1:
                        room -= int(_CERT_SHARE * self.s.budget.max_evals)
                    n_new = self.s.ev.count_new(pts)
                    if n_new <= room:
                        todo = need
                        break
                if todo is None:
                    if certify:
                        break  # the box is settled; it stays sound at the grid's step
                    raise BudgetExhausted("budget")  # the grid stays as it was (sound)
                if len(pts):
                    vals, _ = self.s.score(pts)
                    k_nodes = int(todo.sum())
                    grown.reshape(todo.shape)[todo] = vals[:k_nodes]
                    for p in probes[vals[k_nodes:] < self.s.t]:
                        for i in range(self.s.n):  # a bad probe becomes a node
                            q = float(p[i])
                            if self.s.periodic[i]:
                                q = self.wrap_line(i, q)
                            pending[i].add(q)
                axes, sv = new_axes, grown
                st = self.node_state(sv)
                if certify and not any(props) and not any(pending):
                    self.s.certified = True
                    break
                if not any(props) and n_new == 0 and not any(pending):
                    break
        except BudgetExhausted as b:
            stop = b
        g = self.axes_of(axes)
        best = self.best_sound(st, g)
        faces = self.set_box(best, g)
        self.s.axes = axes
        self.s.grid_used = True
        self.s.log_trace()
        if stop is not None:
            raise stop
        refine(self.s, faces)
        return ChoiceResult(self.s.lo.copy(), self.s.hi.copy(), self.s.n_alternatives)

    def refine_estimate(self, box: Box, g: tuple[GridAxis, ...]) -> int:
        """Evaluations the final face bisection of ``box`` may need (what certifying
        leaves): `state.Budget.refine_estimate` with the box's lines and the cheap
        bisection rounds from a bracket of ``_FACE_REL`` of the box down to ``xtol``."""
        lines = [min(box[1][i] - box[0][i] + 1, g[i].m) + 1 for i in range(self.s.n)]
        steps = []
        for i in range(self.s.n):
            ext = float(g[i].extent(np.array(box[0][i]), np.array(box[1][i]), "middle"))
            steps.append(math.log2(max(_FACE_REL * ext / float(self.s.tol[i]), 2.0)))
        return self.s.budget.refine_estimate(lines, steps, self.s.fine_faces)

    def node_state(self, sv: np.ndarray) -> np.ndarray:
        """1 good, -1 bad, 0 not scored."""
        with np.errstate(invalid="ignore"):
            return np.where(np.isnan(sv), 0, np.where(sv >= self.s.t, 1, -1)).astype(np.int8)

    def certify_proposals(
        self, box: Box, g: tuple[GridAxis, ...], sv: np.ndarray
    ) -> tuple[list[set[float]], np.ndarray]:
        """Lines that split the cells of ``box`` where a hole below the threshold could
        hide between the scored nodes, and probe points (cell centres) for such cells
        that are already at the floor.

        A cell is certain when the lowest of its corner scores minus the steepest slope
        seen on its edges and its neighbours' edges, times half the cell's step (summed
        over dims), stays at or above the threshold -- a local Lipschitz bound.  An
        unsure cell is split in the dim whose term of that bound is largest.  Smooth,
        confident interiors are certain at once; near a face, or on a rugged score,
        cells are split (their step halved) down to ``_CERT_FLOOR xtol``; an unsure
        cell at that floor gets its centre scored instead (one point, not a line).
        """
        props: list[set[float]] = [set() for _ in range(self.s.n)]
        ks = [np.arange(box[0][i], box[1][i] + 1) for i in range(self.s.n)]
        if any(len(k) < 2 for k in ks):
            return props, np.zeros((0, self.s.n))
        sub = sv[np.ix_(*[np.mod(k, g[i].m) for i, k in enumerate(ks)])]
        if self.s.n == 1:
            sub = sub[:, 0]
        xs = [g[i].x(k) for i, k in enumerate(ks)]
        gaps = [np.diff(x) for x in xs]
        lo_corner = sub
        slope_sum = np.zeros([len(gp) for gp in gaps])
        terms: list[np.ndarray] = []
        for i in range(self.s.n):
            sh = [1] * self.s.n
            sh[i] = -1
            # slope along dim i: the steepest edge of the cell and of its neighbours
            d = maximum_filter(np.abs(np.diff(sub, axis=i)) / gaps[i].reshape(sh), size=3,
                               mode="nearest")
            for j in range(self.s.n):
                a, b = [slice(None)] * self.s.n, [slice(None)] * self.s.n
                a[j], b[j] = slice(None, -1), slice(1, None)
                if j != i:
                    d = np.maximum(d[tuple(a)], d[tuple(b)])
                if j == i:
                    lo_corner = np.minimum(lo_corner[tuple(a)], lo_corner[tuple(b)])
            term = d * gaps[i].reshape(sh) / 2
            # a dim whose step is at the floor cannot be split: its term does not compete
            terms.append(np.where(gaps[i].reshape(sh) > _CERT_FLOOR * self.s.tol[i], term, -1.0))
            slope_sum = slope_sum + term
        unsure = lo_corner - slope_sum < self.s.t
        # an unsure cell is split in the dim that contributes most to its bound
        pick = np.argmax(np.stack(np.broadcast_arrays(*terms)), axis=0)
        top = np.max(np.stack(np.broadcast_arrays(*terms)), axis=0)
        for i in range(self.s.n):
            other = tuple(j for j in range(self.s.n) if j != i)
            mine = unsure & (pick == i) & (top > 0)
            split = mine.any(axis=other) if other else mine
            for q in (0.5 * (xs[i][:-1] + xs[i][1:]))[split]:
                if g[i].periodic:
                    q = self.wrap_line(i, q)
                props[i].add(float(q))
        mids = [0.5 * (x[:-1] + x[1:]) for x in xs]
        idx = np.argwhere(unsure & (top <= 0))
        probes = np.stack([mids[i][idx[:, i]] for i in range(self.s.n)], axis=1)
        return props, probes

    @staticmethod
    def node_points(axes: list[np.ndarray], mask: np.ndarray) -> np.ndarray:
        idx = np.argwhere(mask)
        return np.stack([axes[i][idx[:, i]] for i in range(len(axes))], axis=1)

    def set_box(self, box: Box, g: tuple[GridAxis, ...]) -> list[Face | None]:
        """Set the search's box to grid box ``box``; returns its 2n face brackets."""
        shape = tuple(g[i].m for i in range(self.s.n))
        return lattice_box(self.s, box, shape, lambda i, k: float(g[i].x(k)))

    def wrap_line(self, i: int, q: float) -> float:
        """A line coordinate of periodic dim i, stored in [x0, x0 + period)."""
        return float(self.s.x0[i] + np.mod(q - self.s.x0[i], self.s.width[i]))
