"""Step 3 of variant "ours" from 3-D on: certify the box on a grid inside it.

(1-D / 2-D certify cell by cell with a local Lipschitz bound inside the grid stage,
`grid_stage.GridStage.certify_proposals`.)
"""

from __future__ import annotations

import numpy as np

from robustlens.regions.evaluator import BudgetExhausted
from robustlens.regions.faces import refine
from robustlens.regions.rectilinear import GridAxis, box_front, cartesian
from robustlens.regions.state import CertifyResult, Face, SearchState

__all__ = ["CERT_LINES", "certify_grid"]

#: tuned (3-D: the lite0 mug and lite1 soccer-ball 3-D maps, 10-degree cells; and the 3-D
#: plateaus' evaluation target): lines per dim of the grid that certifies the final box
#: (its resolution adapts to the box's size), and rounds at most
CERT_LINES = {3: 6, 4: 5}
CERT_LINES_HIGH = 4
CERT_ROUNDS = 4


def _grid(s: SearchState, k: int) -> tuple[list[np.ndarray], list[int]]:
    """Lines per dim inside the box: the lattice lines there (their nodes are mostly
    scored already), plus ``k`` evenly spaced ones where the lattice is coarser than
    that, and ``x0`` (the start's index is returned per dim)."""
    axes, starts = [], []
    for i in range(s.n):
        lo, hi, x0 = float(s.lo[i]), float(s.hi[i]), float(s.x0[i])
        if hi <= lo:
            axes.append(np.array([x0]))
            starts.append(0)
            continue
        c = np.unique(np.r_[lo, s.lines(i, lo, hi), hi, x0])
        if np.diff(c).max() > 1.01 * (hi - lo) / (k - 1):
            c = np.unique(np.r_[c, np.linspace(lo, hi, k)])
        axes.append(c)
        starts.append(int(np.searchsorted(c, x0)))
    return axes, starts


def _inside(s: SearchState, pts: np.ndarray) -> np.ndarray:
    """(N,) bool: the points of ``pts`` strictly inside the box (not on a face)."""
    on_face = np.zeros(len(pts), bool)
    for i in range(s.n):
        if s.hi[i] > s.lo[i]:
            on_face |= (pts[:, i] <= s.lo[i]) | (pts[:, i] >= s.hi[i])
    return ~on_face


def certify_grid(s: SearchState) -> CertifyResult:
    """From 3-D on: score a grid of at least ``CERT_LINES[n]`` lines per dim inside
    the box (so the resolution the box is sound at adapts to its size, as the 1-D /
    2-D grid stage's ``MIN_LINES`` does); where a node is below the threshold, the
    box becomes the largest box of good nodes containing x0 on that grid
    (`rectilinear.box_front`), its cut faces are bisected again towards the bad lines and
    the others may grow again.
    Repeated while nodes come out bad (at most ``CERT_ROUNDS`` times) and the
    budget pays; ``certified`` says whether the last grid was all good."""
    k = CERT_LINES.get(s.n, CERT_LINES_HIGH)
    rounds = 0
    res: np.ndarray | None = None

    def done() -> CertifyResult:
        if s.certified and res is not None:
            s.resolution = res
        return CertifyResult(s.lo.copy(), s.hi.copy(), s.certified, rounds, res)

    for _ in range(CERT_ROUNDS):
        rounds += 1
        axes, starts = _grid(s, k)
        res = np.array([float(np.diff(c).max()) if c.size > 1 else 0.0 for c in axes])
        pts = cartesian(axes)
        inside = _inside(s, pts)  # the face refinement checked the faces densely
        inner = pts[inside]
        if s.ev.count_new(inner) > s.budget.remaining():
            return done()  # cannot pay: the box stays sound at the resolution tested
        try:
            vals, _ = s.score(inner)
        except BudgetExhausted:
            return done()
        flat = np.ones(len(pts), bool)
        flat[inside] = vals >= s.t
        good = flat.reshape([len(a) for a in axes])
        if good.all():
            s.certified = True
            return done()
        g = tuple(GridAxis(a, s0) for a, s0 in zip(axes, starts, strict=True))
        front = box_front(good, g, "span", best_only=True)
        if len(front) == 0:  # x0 itself scored low (non-deterministic score)
            return done()
        blo, bhi = front.box(int(np.argmax(front.volume("span"))))
        faces: list[Face | None] = []
        for i in range(s.n):
            c = axes[i]
            s.lo[i], s.hi[i] = c[blo[i]], c[bhi[i]]
            for side, kk in ((-1, blo[i] - 1), (1, bhi[i] + 1)):
                if 0 <= kk < len(c) and (blo[i] > 0 if side < 0 else bhi[i] < len(c) - 1):
                    faces.append(Face(i, side, float(c[kk]), None))  # bisect towards it
                elif not s.full_circle(i, s.lo, s.hi):
                    # a face the bad node did not cut may move out again (a box shrunk in
                    # one dim can often grow in another)
                    faces.append(Face(i, side, None, float(2 * s.tol[i])))
                else:
                    faces.append(None)
        s.log_trace()
        try:
            refine(s, faces)
        except BudgetExhausted:
            return done()
    return done()
