"""Variant "ours": the largest sound box around ``x0`` -- the steps, in order.

Objective: the largest axis-aligned box ``[lower, upper]`` containing ``x0`` on which
the score stays ``>= threshold`` -- *at the resolution tested*: no point the search
scored inside the returned box is below the threshold (``RegionResult.worst_score``),
and the tested points are at most ``RegionResult.resolution`` apart per dim.  Every
round of every step is ONE batched ``score_fn`` call, and every point is cached (2^-40
grid of the domain width), so nothing is scored twice.

The steps are functions of one `state.SearchState` (the box, the lattice, the scored
points, the `state.Budget`), each in its module and each returning a typed result:

1. **Flood fill** (`flood`): the whole ``>= threshold`` lattice component around ``x0``
   and its boundary; the lattice is refined where the best box is thin.
2. **Choice of the box**: 1-D / 2-D on a rectilinear grid refined where boxes compete,
   exactly (`grid_stage`, `rectilinear.box_front`); from 3-D on, the exact largest box on
   the lattice and two runners-up in 3-D (`choose`).
3. **Certification**: 1-D / 2-D cell by cell with a local Lipschitz bound inside the grid
   stage; from 3-D on with a grid of 6 lines per dim (4 above 3-D) and 150 uniform
   random probes in the box (`certify`).  Where it finds holes, the lattice was too
   coarse there: a finer flood around the box (`flood.zoom`, once) and a new choice;
   then the box is cut to the largest box holding no point known to be bad, and a
   runner-up (of any choice) larger than what is left is certified too.
4. **Face refinement** (`faces`): each face bisects its bracket to ``xtol`` with cheap
   tests; 1-D / 2-D then check every moved face densely (from 3-D on the certification
   checks the faces).
5. **Volume trades** (`trade`): shrink the dim with the highest score cost per
   log-width, regrow the others, keep the trade if the volume grew.  From 3-D on only
   where the first certification found no hole (in a rugged landscape slopes say
   nothing), and the traded box is certified again.  Then, from 3-D on, trades of shape
   (`shape_trades`: each face moved in by a quarter or a half of its width, the others
   regrown, then the moved face; the largest certified), and where the certification
   found holes slabs (`slab_trades`: the box collapsed to x0's line in one dim, the
   others regrown, then that dim; a box of another shape altogether).

Hyper-parameters: `params.OursParams` (the description of record).  Budget:
``max_evals`` (default `state.default_max_evals`: ``750 * 2**n``, at least 12000 from
3-D on) is never exceeded (`state.Budget.check`); when it
runs out the result says ``converged=False, stop_reason="budget"`` and is still sound.
A final guard (`certify.exclude_known_bad`) shrinks the box to the largest box inside
it that holds no scored point below the threshold (a certified box kept against a
runner-up may hold points the runner-up's certification scored; from 3-D on such a box
is no longer reported certified).  Tuned constants say what they were tuned on, in
their modules.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass
from typing import Any

import numpy as np

from robustlens.regions.certify import bracket, certify_grid, exclude_known_bad, known_bad
from robustlens.regions.choose import best_of, candidate_boxes
from robustlens.regions.evaluator import BudgetExhausted, Evaluator
from robustlens.regions.faces import refine
from robustlens.regions.flood import FloodResult, run_flood, zoom
from robustlens.regions.grid_stage import GridStage
from robustlens.regions.params import OursParams
from robustlens.regions.state import (
    SearchState,
    default_lattice,
    default_max_evals,
    default_trades,
)
from robustlens.regions.trade import polish

__all__ = ["OURS_DEFAULTS", "SEARCH_REVISION", "default_lattice", "default_max_evals",
           "default_trades", "run_ours"]

#: bumped whenever the search can return a different box for the same input: a study's
#: regions steps are keyed by it, so they are recomputed (and its maps are not)
SEARCH_REVISION = 6

#: tuned (3-D: the 9 tuning maps of tests/data/maps3d, 40 starts each; once the
#: certification's cuts kept every bad point found, one zoom left 1 run of 656 below 0.7
#: of the exact box, two left 5): finer floods around a box whose certification found
#: holes, at most
ZOOMS = 1

#: tuned (3-D: the 9 tuning maps of tests/data/maps3d and the test suite's starts; 0.25
#: and 0.33 did the same, 0.1 left no map cell of 10 degrees; adding 0.5 took the runs
#: below 0.7 of the exact box from 4 to 2 of 1544 on all 13 maps, 80 starts each): how
#: much of its width a shape trade takes from a face
SHAPE_STEPS = (0.25, 0.5)
#: principled (a trade that gains less is not worth a certification): the least gain
SHAPE_GAIN = 1.02

#: variant "ours"'s defaults (described in `robustlens.regions.params.OursParams`)
OURS_DEFAULTS: dict[str, Any] = asdict(OursParams())


def search(s: SearchState) -> str:
    """The steps, in order; returns the stop reason (the box is in ``s``)."""
    try:
        fl = run_flood(s)  # 1. flood fill (and lattice refinement)
        if not fl.robust:
            return "not_robust"
        if s.n <= 2:  # 2 + 3 + 4: choose on a refined grid, certify, refine faces
            GridStage(s).run(fl.state)
            if s.trades > 0 and s.n > 1:
                polish(s)  # 5. volume trades
        else:  # 2-4: choose on the lattice and certify (zooming where it found holes)
            runners_up, clean = choose_and_certify(s, fl)
            certify_runners_up(s, runners_up)
            if s.trades > 0 and clean:
                trade_and_certify(s)  # 5. volume trades
            if s.trades > 0 and s.certified:
                shape_trades(s)  # 5. trades of shape (near free where the box is right)
                if not clean:
                    slab_trades(s)  # where the score is rugged: slabs
        # (each step returns a typed result; the counters the result reports are in s)
    except BudgetExhausted as b:
        return b.reason
    return "budget" if s.flood_cut or s.cut_short else "converged"


def choose_and_certify(s: SearchState, fl: FloodResult
) -> tuple[tuple[tuple[np.ndarray, np.ndarray], ...], bool]:
    """From 3-D on: choose the box on the lattice, refining the faces of each candidate
    (`choose`), and certify it (`certify`).  Where the certification finds holes the
    lattice was too coarse: flood finer around the box (`flood.zoom`, at most ``ZOOMS``
    times) and choose again; then (or when the zoom does not fit the budget) the
    certification cuts the box away from the holes.  Returns the refined runners-up of
    every choice (a zoom's window can leave out a box of another shape that the coarse
    lattice saw) and whether the last certification was clean at its first round,
    without a cut (after a zoom that is the finer lattice's box)."""
    runners_up: tuple[tuple[np.ndarray, np.ndarray], ...] = ()
    for z in range(ZOOMS + 1):
        cands = candidate_boxes(s, fl.state, fl.start, s.alternatives)
        runners_up += best_of(s, cands, fl.state.shape).runners_up
        cert = certify_grid(s, cut=z == ZOOMS)
        if cert.certified:
            return runners_up, cert.rounds == 1
        if z == ZOOMS:
            break
        zf = zoom(s, fl, (s.lo.copy(), s.hi.copy()), s.budget.cert_estimate())
        if zf is None:
            certify_grid(s)
            break
        fl = zf
    return runners_up, False


def shape_trades(s: SearchState) -> None:
    """From 3-D on, after the volume trades (or instead of them, where the certification
    needed cuts: on a rugged score finite-difference slopes say nothing), trades of
    shape: for each face and each step of ``SHAPE_STEPS``, the box with that face moved
    in by the step times its width, the other faces growing back (cheap tests, up to
    known bad points: `certify.bracket`), then the moved face (`reshaped`), less the
    known bad points.  The largest, if 2% larger than the box, is certified and kept if larger
    (`keep_if_larger`); again from there, ``s.trades`` times at most, while the budget
    leaves a certification.  (A certified box 40 x 10 x 1.75 where the largest is
    30 x 20 x 1.75, say.)  A candidate that cannot gain 2% even if every face grew up to
    the known bad points in its way (`reach`) costs no evaluation: where the box is
    already the largest (a smooth plateau) that is most of them, and the 4-D naive
    plateaus went from 47.4% to 47.9% of the paper's evaluations (49.0% without it)."""
    for _ in range(s.trades):
        if s.budget.remaining() < s.budget.cert_estimate():
            return
        kept = Snapshot.of(s)
        best: tuple[np.ndarray, np.ndarray] | None = None
        for i, side, frac in [(i, sd, f) for i in range(s.n) for sd in (-1, 1)
                              for f in SHAPE_STEPS]:
            if (s.full_circle(i, kept.lo, kept.hi)
                    or s.budget.remaining() < s.budget.cert_estimate()):
                continue
            s.lo, s.hi = kept.lo.copy(), kept.hi.copy()
            step = frac * float(kept.hi[i] - kept.lo[i])
            if side < 0 and kept.lo[i] + step <= s.x0[i]:
                s.lo[i] += step
            elif side > 0 and kept.hi[i] - step >= s.x0[i]:
                s.hi[i] -= step
            else:
                continue
            try:
                box = reshaped(s, kept, {(i, side)})
            except BudgetExhausted:
                break
            if box is not None and (best is None or s.volume_ratio(*box) > s.volume_ratio(*best)):
                best = box
        kept.restore(s)
        if best is None:
            return
        s.lo, s.hi, s.certified = best[0], best[1], False
        s.log_trace()
        s.n_trades += 1
        certify_grid(s)
        keep_if_larger(s, kept)
        if np.array_equal(s.lo, kept.lo) and np.array_equal(s.hi, kept.hi):
            return
        s.n_trades_accepted += 1


def reach(s: SearchState) -> float:
    """An upper bound, without evaluations, on the volume (share of the domain) the box can
    regrow to: each face at most at the nearest point known to be bad in its way in the
    box's cross-section now (`certify.bracket`; the domain's edge if none).  Faces only
    grow while they regrow, so cross-sections only widen and hold more known bad points:
    the bound holds whatever the order."""
    known = known_bad(s)
    lo, hi = s.lo.copy(), s.hi.copy()
    for j in range(s.n):
        if s.full_circle(j, s.lo, s.hi):
            continue
        for sd in (-1, 1):
            f = bracket(s, known, j, sd)
            if f.bad is not None:
                edge = f.bad
            elif s.periodic[j]:
                edge = s.lo[j] + s.width[j] if sd > 0 else s.hi[j] - s.width[j]
            else:
                edge = s.dhi[j] if sd > 0 else s.dlo[j]
            if sd > 0:
                hi[j] = edge
            else:
                lo[j] = edge
        if s.periodic[j]:
            hi[j] = min(hi[j], lo[j] + s.width[j])
    return s.volume_ratio(lo, hi)


def reshaped(s: SearchState, kept: Snapshot, moved: set[tuple[int, int]]
             ) -> tuple[np.ndarray, np.ndarray] | None:
    """The box (``kept`` with the faces ``moved`` moved in, set by the caller) regrown
    (`regrow`): returned if ``SHAPE_GAIN`` times larger than ``kept``, else None, without
    an evaluation where `reach` says it cannot be.  Raises `BudgetExhausted` when the
    budget (less a certification's first round) ran out midway: the caller goes back to
    ``kept``."""
    gain = SHAPE_GAIN * s.volume_ratio(kept.lo, kept.hi)
    if reach(s) <= gain:
        return None
    regrow(s, moved)
    return (s.lo.copy(), s.hi.copy()) if s.volume_ratio() > gain else None


def regrow(s: SearchState, moved: set[tuple[int, int]]) -> None:
    """The faces not in ``moved`` grown out (cheap tests, up to known bad points:
    `certify.bracket`), then those in ``moved``, unless none of the others grew (the
    box, smaller than before the move, is then left as it is); the box less the known
    bad points.  Within a budget that keeps a certification's first round paid for:
    past it `BudgetExhausted` propagates."""
    with s.budget.allotment(s.budget.max_evals - s.budget.cert_estimate() // 2,
                            "cert_reserve"):
        for first in (False, True):
            known = known_bad(s)
            faces = [bracket(s, known, j, sd) if ((j, sd) in moved) == first
                     and not s.full_circle(j, s.lo, s.hi) else None
                     for j in range(s.n) for sd in (-1, 1)]
            entry = (s.lo.copy(), s.hi.copy())
            refine(s, faces, verify=False)
            if not first and np.array_equal(entry[0], s.lo) and np.array_equal(entry[1], s.hi):
                return  # nothing grew: the moved faces would only grow back
    exclude_known_bad(s)


def slab_trades(s: SearchState) -> None:
    """From 3-D on, after the trades of shape, with what budget is left: for each dim i,
    the box collapsed to x0's line in dim i, the other faces grown (cheap tests, up to
    known bad points: `certify.bracket`), then dim i's faces grown back, less the known
    bad points.  Those 2% larger than the box are certified, largest first, while larger
    than the box (`certify_runners_up`).  A box of another shape altogether (a slab
    350 x 10 where the search holds 30 x 75) is no chain of small trades away."""
    kept = Snapshot.of(s)
    slabs: list[tuple[np.ndarray, np.ndarray]] = []
    for i in range(s.n):
        if s.budget.remaining() < s.budget.cert_estimate():
            break
        s.lo, s.hi = kept.lo.copy(), kept.hi.copy()
        s.lo[i] = s.hi[i] = s.x0[i]
        try:
            box = reshaped(s, kept, {(i, -1), (i, 1)})
        except BudgetExhausted:
            break
        if box is not None:
            slabs.append(box)
    kept.restore(s)
    s.log_trace()
    certify_runners_up(s, tuple(slabs))


def trade_and_certify(s: SearchState) -> None:
    """Volume trades (`trade.polish`, faces moving with cheap tests), then the traded box
    certified; the certified box from before the trades stays unless the traded one is
    certified and larger (`keep_if_larger`)."""
    kept = Snapshot.of(s)
    polish(s)
    if np.array_equal(kept.lo, s.lo) and np.array_equal(kept.hi, s.hi):
        return
    s.certified = False
    certify_grid(s)
    keep_if_larger(s, kept)


def certify_runners_up(s: SearchState, runners_up: tuple[tuple[np.ndarray, np.ndarray], ...]
) -> None:
    """Branch and bound over the refined candidates, largest first: while a runner-up is
    larger than the certified box (the certification cut holes out of it), cut from it
    the points known to be bad (`exclude_known_bad`, no evaluation); if it is still
    larger, certify it and keep it if it certifies and is larger (`keep_if_larger`)."""
    for lo, hi in sorted(runners_up, key=lambda b: -s.volume_ratio(*b)):
        if s.volume_ratio(lo, hi) <= s.volume_ratio():
            return
        if s.budget.remaining() < s.budget.cert_estimate() // 2:
            return
        kept = Snapshot.of(s)
        s.lo, s.hi, s.certified = lo.copy(), hi.copy(), False
        # what the certifications so far found inside it is cut away first (for free): a
        # runner-up that overlaps the best box shares its holes
        exclude_known_bad(s)
        if s.volume_ratio() <= s.volume_ratio(kept.lo, kept.hi):
            kept.restore(s)
            continue
        s.log_trace()
        certify_grid(s)
        keep_if_larger(s, kept)


@dataclass(frozen=True)
class Snapshot:
    """The box and what its certification said, to go back to."""

    lo: np.ndarray
    hi: np.ndarray
    certified: bool
    resolution: np.ndarray | None
    cut_short: bool

    @classmethod
    def of(cls, s: SearchState) -> Snapshot:
        return cls(s.lo.copy(), s.hi.copy(), s.certified, s.resolution, s.cut_short)

    def restore(self, s: SearchState) -> None:
        s.lo, s.hi, s.certified = self.lo, self.hi, self.certified
        s.resolution, s.cut_short = self.resolution, self.cut_short


def keep_if_larger(s: SearchState, kept: Snapshot) -> None:
    """The one rule for a box tried against a certified one (traded, or a runner-up): it
    stays only if it certified and is larger than ``kept`` less the points the tried
    box's certification found below the threshold inside it (`exclude_known_bad`: a
    probe can miss 2% of a box); else the state goes back to that."""
    tried = Snapshot.of(s)
    s.lo, s.hi = kept.lo.copy(), kept.hi.copy()
    holed = exclude_known_bad(s)
    if tried.certified and s.volume_ratio(tried.lo, tried.hi) > s.volume_ratio():
        s.lo, s.hi = tried.lo, tried.hi
        if kept.certified:
            s.spares.append(kept)
        return
    if tried.certified:
        s.spares.append(tried)
    s.certified = kept.certified and not holed
    s.resolution, s.cut_short = kept.resolution, kept.cut_short
    s.log_trace()


def cut_known_bad(s: SearchState) -> None:
    """`exclude_known_bad`; a box it cuts is no longer certified (points found bad since
    its certification lie inside it)."""
    if exclude_known_bad(s):
        s.certified = False
        s.log_trace()


def best_certified(s: SearchState) -> None:
    """From 3-D on, at the end: the box and every certified box that lost a comparison
    (`keep_if_larger`), each less the points known to be bad inside it (found after it
    won: `exclude_known_bad`); the largest is the result."""
    if not s.spares:
        return
    cut_known_bad(s)
    for sp in s.spares:
        cur = Snapshot.of(s)
        s.lo, s.hi = sp.lo.copy(), sp.hi.copy()
        holed = exclude_known_bad(s)
        if s.volume_ratio() > s.volume_ratio(cur.lo, cur.hi):
            s.certified, s.resolution = sp.certified and not holed, sp.resolution
            s.log_trace()
        else:
            s.lo, s.hi = cur.lo, cur.hi


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
    s = SearchState.create(ev, x0, lower, upper, periodic, method, hyper)
    stop = search(s)
    if stop == "not_robust":
        s.lo, s.hi = s.x0.copy(), s.x0.copy()
    else:
        best_certified(s)
    # a final guard: no scored point below threshold inside the box (1-D / 2-D report
    # their certification as before: there the guard was only seen to move a face past a
    # point lying on it)
    (cut_known_bad if s.n >= 3 else exclude_known_bad)(s)
    lo, hi = s.lo.copy(), s.hi.copy()
    for i in np.flatnonzero(s.periodic).tolist():
        if hi[i] - lo[i] >= s.width[i] * (1 - 1e-12):
            lo[i], hi[i] = s.dlo[i], s.dhi[i]
    if not s.trace or not (
        np.array_equal(s.trace[-1][0], lo) and np.array_equal(s.trace[-1][1], hi)
    ):
        s.lo, s.hi = lo, hi
        s.log_trace()
    wrapped = s.periodic & ((lo < s.dlo) | (hi > s.dhi))
    worst = s.worst_inside() if s.pts else float("nan")
    res = s.grid_resolution() if s.grid_used else s.h
    if s.resolution is not None:
        res = np.minimum(res, s.resolution)
    resolution = np.where(stop == "not_robust", 0.0, res)
    return {
        "lower": lo,
        "upper": hi,
        "trace": s.trace,
        "converged": stop in ("converged", "not_robust"),
        "stop_reason": stop,
        "wrapped": wrapped,
        "resolution": np.asarray(resolution, dtype=np.float64),
        "worst_score": worst,
        "n_trades": s.n_trades,
        "n_trades_accepted": s.n_trades_accepted,
        "n_alternatives": s.n_alternatives,
        "certified": s.certified,
        "max_evals": s.budget.max_evals,
        "lattice": [int(c) for c in s.cells],
    }
