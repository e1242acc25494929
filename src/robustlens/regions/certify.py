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

A clean round certifies the box.  Otherwise the box is cut (`_cut`) to the largest box
containing x0 of good grid nodes that holds no point known to be bad -- this round's
and every earlier one's: lattice nodes, face tests, probes (a line through each,
`rectilinear.box_front`).  A cut face bisects again towards the line that cut it, and
each of its tests also scores the bad points of that line moved onto it (a hole the
face's corners miss stopped it once, and would again); the other faces may grow back,
but only up to the nearest known bad point in their way (`bracket`), so a box never
grows back over a hole already found.  The next round checks the result.  Measured on
the 9 tuning maps of tests/data/maps3d (naive and oir_b): cutting at this round's bad
probes only, with faces growing back freely, left 6 of 336 runs below 0.7 of the exact
box; remembering every bad point left 4; with the bad points tested again by the cut
faces, one zoom and two runners-up, 0 of 656 (40 starts per map).  (`ours` first tries
a finer flood around a box with holes, `flood.zoom`, and asks for no cut then.)  1-D /
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

__all__ = ["CERT_LINES", "PROBES", "bracket", "certify_grid", "exclude_known_bad", "known_bad"]

#: tuned (3-D: the lite0 mug / lite1 soccer-ball maps; checked again with the cuts that
#: remember, on the 9 tuning maps of tests/data/maps3d: 6 or 8 rounds did no better):
#: rounds at most
CERT_ROUNDS = 4
#: principled (keeps the cut's grid small): bad probes, nearest x0 first, the box is cut
#: away from per round; the next round's probes find the others
PROBE_CUTS = 16
#: principled (a bound on the loop): passes of `PROBE_CUTS` points each
CUT_PASSES = 8


def _grid(s: SearchState, k: int) -> list[np.ndarray]:
    """Lines per dim inside the box: ``k`` evenly spaced ones from face to face, each
    moved to the nearest lattice line within a quarter step (its nodes are mostly scored
    already), and ``x0``."""
    axes = []
    for i in range(s.n):
        lo, hi, x0 = float(s.lo[i]), float(s.hi[i]), float(s.x0[i])
        if hi <= lo:
            axes.append(np.array([x0]))
            continue
        c = np.linspace(lo, hi, k)
        lat = s.lines(i, lo, hi)
        if lat.size:
            near = lat[np.abs(lat[None, :] - c[1:-1, None]).argmin(axis=1)]
            snap = np.abs(near - c[1:-1]) <= 0.25 * (hi - lo) / (k - 1)
            c[1:-1] = np.where(snap, near, c[1:-1])
        axes.append(np.unique(np.r_[c, x0]))
    return axes


def _with_probes(s: SearchState, axes: list[np.ndarray], good: np.ndarray, bad: np.ndarray,
                 gap: float = 0.0) -> tuple[list[np.ndarray], np.ndarray]:
    """The grid with a line through each bad point (the ``PROBE_CUTS`` nearest x0, in units
    of the box's widths) and its nodes: the grid's scored ones, False at the bad points,
    True elsewhere (the new nodes lie between good ones).  ``gap`` > 0 (a share of each
    dim's width): lines that close on both sides of each bad point too, so a box can end
    just short of it."""
    w = np.where(s.hi > s.lo, s.hi - s.lo, 1.0)
    bad = bad[np.argsort((((bad - s.x0) / w) ** 2).sum(axis=1), kind="stable")[:PROBE_CUTS]]
    # (inside the box up to rounding: onto its faces)
    bad = np.clip(bad, [c[0] for c in axes], [c[-1] for c in axes])
    aug = [np.unique(np.clip(np.r_[c, bad[:, i], bad[:, i] - gap * s.width[i],
                                   bad[:, i] + gap * s.width[i]], c[0], c[-1])
                     if gap > 0 else np.r_[c, bad[:, i]]) if s.hi[i] > s.lo[i] else c
           for i, c in enumerate(axes)]
    out = np.ones([len(a) for a in aug], bool)
    out[np.ix_(*[np.searchsorted(a, c) for a, c in zip(aug, axes, strict=True)])] = good
    idx = tuple(np.searchsorted(a, bad[:, i]) if s.hi[i] > s.lo[i] else np.zeros(len(bad), int)
                for i, a in enumerate(aug))
    out[idx] = False
    return aug, out


def known_bad(s: SearchState) -> np.ndarray:
    """(K, n) every point scored below the threshold so far (unwrapped as sent)."""
    if not s.pts:
        return np.zeros((0, s.n))
    pts, vals = np.concatenate(s.pts), np.concatenate(s.vals)
    return pts[vals < s.t]


def bracket(s: SearchState, known: np.ndarray, i: int, side: int) -> Face:
    """Face ``(i, side)`` free to move out: bisect towards the nearest point known to be
    bad beyond it inside the box's cross-section (the other dims), else grow."""
    other = np.arange(s.n) != i
    lo, hi = s.lo.copy(), s.hi.copy()
    if s.periodic[i]:
        lo[i], hi[i] = s.dlo[i], s.dlo[i] + s.width[i]  # any coordinate of dim i
    else:
        lo[i], hi[i] = s.dlo[i], s.dhi[i]
    cand = known[s.inside(known, lo, hi)] if len(known) else known
    if other.all() or not len(cand):
        return Face(i, side, None, float(2 * s.tol[i]))
    if s.periodic[i]:
        w = float(s.width[i])
        d = np.mod(cand[:, i] - s.hi[i], w) if side > 0 else np.mod(s.lo[i] - cand[:, i], w)
        room = w - float(s.hi[i] - s.lo[i])
        d = d[(d > 0) & (d < room)]
    else:
        d = cand[:, i] - s.hi[i] if side > 0 else s.lo[i] - cand[:, i]
        d = d[d > 0]
    if not len(d):
        return Face(i, side, None, float(2 * s.tol[i]))
    edge = s.hi[i] if side > 0 else s.lo[i]
    return Face(i, side, float(edge + side * d.min()), None)


def _largest_good_box(s: SearchState, axes: list[np.ndarray], good: np.ndarray
                      ) -> tuple[list[int], list[int]] | None:
    """Index bounds of the largest box of ``good`` nodes of the grid ``axes`` containing
    x0 (`rectilinear.box_front`); None when x0's node is not good."""
    starts = [int(np.searchsorted(c, s.x0[i])) for i, c in enumerate(axes)]
    g = tuple(GridAxis(a, s0) for a, s0 in zip(axes, starts, strict=True))
    front = box_front(good, g, "span", best_only=True)
    if len(front) == 0:
        return None
    return front.box(int(np.argmax(front.volume("span"))))


def _cut(s: SearchState, axes: list[np.ndarray], good: np.ndarray) -> list[Face | None] | None:
    """Cut the box to the largest box containing x0 of good nodes of the grid ``axes``
    (``good``: its nodes) holding no point known to be bad (`_with_probes`, in passes of
    ``PROBE_CUTS`` points until none is left inside).  Returns the 2n faces to refine:
    a cut face bisects towards the line that cut it, the others may grow back up to the
    nearest known bad point in their way (`bracket`); None when x0 itself is bad."""
    known = known_bad(s)
    cut: dict[tuple[int, int], float] = {}
    seen = known[s.inside(known, s.lo, s.hi)]
    seen = s.unwrap(seen, s.lo) if len(seen) else seen
    for _ in range(CUT_PASSES):
        inside = known[s.inside(known, s.lo, s.hi)]
        if len(inside):
            axes, good = _with_probes(s, axes, good, s.unwrap(inside, s.lo))
        elif good.all():
            break
        box = _largest_good_box(s, axes, good)
        if box is None:
            return None
        blo, bhi = box
        for i in range(s.n):
            c = axes[i]
            s.lo[i], s.hi[i] = c[blo[i]], c[bhi[i]]
            if blo[i] > 0:
                cut[(i, -1)] = float(c[blo[i] - 1])
            if bhi[i] < len(c) - 1:
                cut[(i, 1)] = float(c[bhi[i] + 1])
        # the next pass works inside the cut box
        axes = [c[blo[i]:bhi[i] + 1] for i, c in enumerate(axes)]
        good = good[tuple(slice(blo[i], bhi[i] + 1) for i in range(s.n))]
    faces: list[Face | None] = []
    for i in range(s.n):
        for side in (-1, 1):
            if (i, side) in cut:
                # bisect towards the line that cut it, testing again the bad points on
                # that line inside the box's cross-section
                line = cut[(i, side)]
                on = seen[np.abs(seen[:, i] - line) <= 1e-12 * s.width[i]] if len(seen) else seen
                if len(on):
                    lo, hi = s.lo.copy(), s.hi.copy()
                    lo[i], hi[i] = -np.inf, np.inf
                    on = on[np.all((on >= lo - 1e-12 * s.width) & (on <= hi + 1e-12 * s.width),
                                   axis=1)][:PROBE_CUTS]
                faces.append(Face(i, side, line, None, on if len(on) else None))
            elif not s.full_circle(i, s.lo, s.hi):
                # a face the cut did not move may move out again (a box shrunk in one
                # dim can often grow in another), up to the nearest point known to be
                # bad in its way
                faces.append(bracket(s, known, i, side))
            else:
                faces.append(None)
    return faces


def _empty_box(s: SearchState, known: np.ndarray) -> bool:
    """One pass of `exclude_known_bad`: the box cut to the largest box inside it
    containing x0 that holds none of the (``PROBE_CUTS`` nearest) ``known`` points inside
    it; False when x0 is one of them."""
    inside = known[s.inside(known, s.lo, s.hi)]
    axes = [np.unique(np.r_[s.lo[i], s.x0[i], s.hi[i]]) for i in range(s.n)]
    good = np.ones([len(a) for a in axes], bool)
    axes, good = _with_probes(s, axes, good, s.unwrap(inside, s.lo), gap=1e-9)
    box = _largest_good_box(s, axes, good)
    if box is None:
        return False
    blo, bhi = box
    s.lo = np.array([axes[i][blo[i]] for i in range(s.n)])
    s.hi = np.array([axes[i][bhi[i]] for i in range(s.n)])
    return True


def exclude_known_bad(s: SearchState) -> bool:
    """Shrink the box to the largest box inside it containing x0 that holds no point
    scored below the threshold, its faces just short of them (exact, on the lines of
    those points; no evaluation).  The final guard of every search: a box kept from
    before (a certified one a runner-up did not beat) may hold points scored since.
    A start scored below the threshold (a non-deterministic score) leaves the box x0.
    Returns whether the box changed."""
    before = (s.lo.copy(), s.hi.copy())
    _exclude(s)
    return not (np.array_equal(before[0], s.lo) and np.array_equal(before[1], s.hi))


def _exclude(s: SearchState) -> None:
    """`exclude_known_bad`, in place."""
    if not s.pts:
        return
    known = known_bad(s)
    for _ in range(4 * CUT_PASSES):
        inside = known[s.inside(known, s.lo, s.hi)]
        if not len(inside):
            return
        entry = (s.lo.copy(), s.hi.copy())
        if not _empty_box(s, known):
            s.lo, s.hi = s.x0.copy(), s.x0.copy()
            return
        circles = [i for i in range(s.n) if s.full_circle(i, *entry)
                   and not s.full_circle(i, s.lo, s.hi)]
        if not circles:
            continue
        # a full circle the cut opened is best opened at a point: at the one inside
        # farthest from x0 around the circle
        first = (s.lo.copy(), s.hi.copy())
        s.lo, s.hi = entry[0].copy(), entry[1].copy()
        for i in circles:
            w = float(s.width[i])
            far = inside[np.argmax(np.abs(np.mod(inside[:, i] - s.x0[i] + w / 2, w) - w / 2)), i]
            s.lo[i] = s.x0[i] - np.mod(s.x0[i] - far, w)
            s.hi[i] = s.lo[i] + w * (1 - 1e-9)  # (its copy a period on is out too)
        if not _empty_box(s, known) or s.volume_ratio() <= s.volume_ratio(*first):
            s.lo, s.hi = first
    s.lo, s.hi = s.x0.copy(), s.x0.copy()  # (not reached: each pass removes points)


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
        axes = _grid(s, k)
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
        faces = _cut(s, axes, good)
        if faces is None:  # x0 itself scored low (non-deterministic score)
            return done()
        s.log_trace()
        try:
            refine(s, faces, verify=False)
        except BudgetExhausted:
            s.cut_short = True
            return done()
    return done()
