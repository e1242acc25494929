"""Step 3 of variant "ours" from 3-D on: certify the box with a grid and random probes.

From 3-D on the candidate boxes' faces move with cheap tests (their corners; plus the
face centre for oir_b / oir_w), so a hole of the score inside the box or on a face can
hide.  Each round scores, in one call,

* a grid of ``CERT_LINES[n]`` lines per dim from face to face (faces included): no
  hole wider than its step in every dim is missed, and ``RegionResult.resolution`` is
  its step;
* ``PROBES`` points drawn uniformly in the box, fresh each round: if 2% of the box's
  volume scored below the threshold, all of them miss it with probability
  ``0.98 ** 150 < 5%``.

A clean round certifies the box.  Otherwise the box becomes the largest box of good
nodes containing x0 on the grid with a line through each bad probe
(`rectilinear.box_front`); the cut faces bisect again towards the bad lines and the
others may grow back, and the next round checks the result.  (`ours` first tries a
finer flood around a box with holes, `flood.zoom`, and asks for no cut then.)  1-D /
2-D certify cell by cell with a local Lipschitz bound inside the grid stage
(`grid_stage.GridStage.certify_proposals`).
"""

from __future__ import annotations

import numpy as np

from robustlens.regions.evaluator import BudgetExhausted
from robustlens.regions.faces import refine
from robustlens.regions.rectilinear import GridAxis, box_front, cartesian
from robustlens.regions.state import (
    CERT_LINES,
    CERT_LINES_HIGH,
    PROBES,
    CertifyResult,
    Face,
    SearchState,
)

__all__ = ["CERT_LINES", "PROBES", "certify_grid"]

#: tuned (3-D: the lite0 mug / lite1 soccer-ball maps): rounds at most
CERT_ROUNDS = 4
#: principled (keeps the cut's grid small): bad probes, nearest x0 first, the box is cut
#: away from per round; the next round's probes find the others
PROBE_CUTS = 16


def _grid(s: SearchState, k: int) -> tuple[list[np.ndarray], list[int]]:
    """Lines per dim inside the box: ``k`` evenly spaced ones from face to face, each
    moved to the nearest lattice line within a quarter step (its nodes are mostly scored
    already), and ``x0`` (the start's index is returned per dim)."""
    axes, starts = [], []
    for i in range(s.n):
        lo, hi, x0 = float(s.lo[i]), float(s.hi[i]), float(s.x0[i])
        if hi <= lo:
            axes.append(np.array([x0]))
            starts.append(0)
            continue
        c = np.linspace(lo, hi, k)
        lat = s.lines(i, lo, hi)
        if lat.size:
            near = lat[np.abs(lat[None, :] - c[1:-1, None]).argmin(axis=1)]
            snap = np.abs(near - c[1:-1]) <= 0.25 * (hi - lo) / (k - 1)
            c[1:-1] = np.where(snap, near, c[1:-1])
        c = np.unique(np.r_[c, x0])
        axes.append(c)
        starts.append(int(np.searchsorted(c, x0)))
    return axes, starts


def _with_probes(s: SearchState, axes: list[np.ndarray], good: np.ndarray, bad: np.ndarray
) -> tuple[list[np.ndarray], np.ndarray]:
    """The grid with a line through each bad probe (the ``PROBE_CUTS`` nearest x0, in units
    of the box's widths) and its nodes: the grid's scored ones, False at the bad probes,
    True elsewhere (the new nodes lie between good ones)."""
    w = np.where(s.hi > s.lo, s.hi - s.lo, 1.0)
    bad = bad[np.argsort((((bad - s.x0) / w) ** 2).sum(axis=1), kind="stable")[:PROBE_CUTS]]
    aug = [np.unique(np.r_[c, bad[:, i]]) if s.hi[i] > s.lo[i] else c
           for i, c in enumerate(axes)]
    out = np.ones([len(a) for a in aug], bool)
    out[np.ix_(*[np.searchsorted(a, c) for a, c in zip(aug, axes, strict=True)])] = good
    idx = tuple(np.searchsorted(a, bad[:, i]) if s.hi[i] > s.lo[i] else np.zeros(len(bad), int)
                for i, a in enumerate(aug))
    out[idx] = False
    return aug, out


def certify_grid(s: SearchState, cut: bool = True) -> CertifyResult:
    """Certify the box (see the module docstring): rounds of grid + probes, each cutting
    the box away from what it found below the threshold, until one is clean (at most
    ``CERT_ROUNDS``, while the budget pays; a round the budget cannot pay sets
    ``s.cut_short``).  ``cut=False``: one round, the box left as it is.  ``certified``
    says whether the last round was clean."""
    k = CERT_LINES.get(s.n, CERT_LINES_HIGH)
    rounds = 0
    res: np.ndarray | None = None

    def done() -> CertifyResult:
        if s.certified and res is not None:
            s.resolution = res
        return CertifyResult(s.lo.copy(), s.hi.copy(), s.certified, rounds, res)

    rng = np.random.default_rng(0)  # the search stays deterministic
    for _ in range(CERT_ROUNDS):
        rounds += 1
        axes, starts = _grid(s, k)
        res = np.array([float(np.diff(c).max()) if c.size > 1 else 0.0 for c in axes])
        pts = cartesian(axes)  # faces included: they moved with cheap tests
        # fresh probes each round: the box was cut away from the earlier rounds' bad
        # ones, so their good ones say nothing about it
        probes = s.lo + rng.random((PROBES, s.n)) * (s.hi - s.lo)
        batch = np.concatenate([pts, probes])
        if s.ev.count_new(batch) > s.budget.remaining():
            s.cut_short = True
            return done()  # cannot pay: the box stays sound at the resolution tested
        try:
            vals, _ = s.score(batch)
        except BudgetExhausted:
            s.cut_short = True
            return done()
        good = (vals[: len(pts)] >= s.t).reshape([len(a) for a in axes])
        bad = probes[vals[len(pts):] < s.t]
        if good.all() and not len(bad):
            s.certified = True
            return done()
        if not cut:  # the caller looks at the holes another way (`flood.zoom`)
            return done()
        if len(bad):
            axes, good = _with_probes(s, axes, good, bad)
            starts = [int(np.searchsorted(c, s.x0[i])) for i, c in enumerate(axes)]
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
            refine(s, faces, verify=False)
        except BudgetExhausted:
            s.cut_short = True
            return done()
    return done()
