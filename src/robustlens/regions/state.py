"""The shared state of one variant-"ours" search: the box, the lattice, every scored
point, the budget and the faces.  The steps (`flood`, `choose` / `grid_stage`,
`faces`, `trade`, `certify`) are functions of a `SearchState`; `ours` runs them.

Constants are marked *principled* (follow from the method) or *tuned* (chosen by
measurement, with what they were tuned on).
"""

from __future__ import annotations

import math
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from robustlens.regions.evaluator import BudgetExhausted, Evaluator
from robustlens.regions.result import TraceStep, box_volume

__all__ = ["Budget", "CertifyResult", "ChoiceResult", "Face", "SearchState", "StepResult",
           "TradeResult", "default_lattice", "default_max_evals",
           "default_trades"]

#: tuned (2-D held-out plateaus and the Lite0 demo maps, issue 9): the flood fill may
#: spend at most this share of the budget, so the later steps always have the rest
FLOOD_SHARE = 0.45
#: tuned (same): volume trades may spend this share of the budget left at most
TRADE_SHARE = 0.8
#: tuned (3-D: the 3-D maps of tests/data/maps3d, 6 lines against 5; and the 3-D
#: plateaus' evaluation target, which 8 lines miss): lines per dim of the grid that
#: certifies the box from 3-D on (its resolution adapts to the box's size)
CERT_LINES = {3: 6, 4: 4}
CERT_LINES_HIGH = 4
#: principled: uniform random probes in the box per certification round (fresh each
#: round): a part of the box covering 2% of its volume is missed by all of them with
#: probability (1 - 0.02) ** 150 < 5%
PROBES = 150
#: principled: the flood lattice is about a third of the budget, within these bounds
MIN_CELLS, MAX_CELLS = 8, 48


#: tuned (3-D: the real 3-D maps of tests/data/maps3d; with its lattice of 15 cells per
#: dim and the room to certify, the runs whose box fell below 0.7 of the exact one went
#: from 13 to 4 of 390 against 6000, while the 3-D plateaus stay under half the paper's
#: evaluations): the budget from 3-D on
MIN_EVALS_ND = 12000


def default_max_evals(n: int) -> int:
    """Default evaluation budget of an n-D search: ``750 * 2**n``, at least
    ``MIN_EVALS_ND`` (12000) from 3-D on: 1500 in 1-D, 3000 in 2-D, 12000 in 3-D and
    4-D, 24000 in 5-D."""
    return max(750 * 2**n, MIN_EVALS_ND) if n >= 3 else 750 * 2**n


def default_trades(n: int, method: str) -> int:
    """Volume trades at most: 1-D / 2-D 1 (oir_w 2(n-1)); 3-D and more ``3n``, because the
    choice of the box on the lattice is coarse there and the trades set its shape."""
    if n >= 3:
        return 3 * n
    return 2 * (n - 1) if method == "oir_w" else 1


def default_lattice(n: int, max_evals: int) -> int:
    """Cells per dim such that the full lattice is about a third of the budget."""
    return int(np.clip(math.floor((max_evals / 3.0) ** (1.0 / n)), MIN_CELLS, MAX_CELLS))


@dataclass(frozen=True)
class StepResult:
    """What one step did: the box it left (``lower``/``upper``) and its own counts."""

    lower: np.ndarray
    upper: np.ndarray


@dataclass(frozen=True)
class ChoiceResult(StepResult):
    """`choose.best_of` / `grid_stage.GridStage.run`: runner-up boxes refined (from 3-D
    on the refined runners-up themselves, largest first: certification may need them)."""

    n_alternatives: int = 0
    runners_up: tuple[tuple[np.ndarray, np.ndarray], ...] = ()


@dataclass(frozen=True)
class TradeResult(StepResult):
    """`trade.polish`: trades tried and kept."""

    n_trades: int = 0
    n_accepted: int = 0


@dataclass(frozen=True)
class CertifyResult(StepResult):
    """`certify.certify_grid`: whether the last grid inside the box was all good, the
    rounds it took and the grid's largest step per dim (None: no grid scored)."""

    certified: bool = False
    rounds: int = 0
    resolution: np.ndarray | None = None


@dataclass
class Face:
    """One face of the box while it moves: dim ``dim``, ``side`` -1 (lower) or +1 (upper);
    ``bad``: the nearest tested coordinate out of the box that failed (None: none yet,
    the face grows by doubling ``step``)."""

    dim: int
    side: int
    bad: float | None
    step: float | None
    #: (K, n) points found bad on the line that cut this face (from 3-D on): each face
    #: test also scores them moved onto the face, so a hole the face's corners miss
    #: stops it again
    witness: np.ndarray | None = None


class Budget:
    """The evaluation budget of one search and the cost estimates the steps plan with.

    Every batched call goes through `check` first: a call that would pass ``max_evals``
    (or a step's `allotment`) or ``max_iter`` rounds raises
    `BudgetExhausted` and is not made, so the budget is never exceeded.
    """

    def __init__(self, ev: Evaluator, n: int, max_evals: int, max_iter: int) -> None:
        self.ev = ev
        self.n = n
        self.max_evals = max_evals
        self.max_iter = max_iter
        self.rounds = 0
        # a step's allotment (`allotment`): the evaluation count its calls may reach
        self.limit: int | None = None
        self.limit_reason = ""

    def spent(self) -> int:
        return self.ev.n_evaluations

    def remaining(self) -> int:
        return self.max_evals - self.ev.n_evaluations

    def check(self, x: np.ndarray, grad_x: np.ndarray | None) -> None:
        """Raise `BudgetExhausted` unless a call scoring ``x`` (and gradients at ``grad_x``,
        ``n`` evaluations each) fits; counts the round."""
        # rounds count even when every point is cached: a hard bound on the loops
        if self.rounds >= self.max_iter:
            raise BudgetExhausted("max_iter")
        self.rounds += 1
        g_cost = 0 if grad_x is None else len(grad_x) * self.n
        room = self.remaining()
        if self.limit is not None:
            room = min(room, self.limit - self.ev.n_evaluations)
        if len(x) + g_cost > room and self.ev.count_new(x) + g_cost > room:
            raise BudgetExhausted("budget" if room == self.remaining() else self.limit_reason)

    @contextmanager
    def allotment(self, limit: int, reason: str) -> Iterator[None]:
        """Within the block calls may reach ``limit`` evaluations at most: one that would
        pass it raises `BudgetExhausted` with ``reason`` (and is not made)."""
        saved = (self.limit, self.limit_reason)
        self.limit, self.limit_reason = limit, reason
        try:
            yield
        finally:
            self.limit, self.limit_reason = saved

    # ------------------------------------------------------------- cost estimates
    def flood_cap(self) -> int:
        """Evaluations the flood fill (all its levels) may have spent at most."""
        return int(FLOOD_SHARE * self.max_evals)

    def trade_allotment(self) -> int:
        """The evaluation count volume trades may reach: a share of what is left, after
        the certification's reserve (`cert_estimate`) from 3-D on."""
        room = self.remaining() - (self.cert_estimate() if self.n >= 3 else 0)
        return self.ev.n_evaluations + int(TRADE_SHARE * max(room, 0))

    def cert_estimate(self) -> int:
        """Evaluations two rounds of the certification from 3-D on may need (the reserve
        the choice of the box and the volume trades leave it): its grid (``CERT_LINES``
        per dim, plus the line through x0) and ``PROBES``."""
        k = CERT_LINES.get(self.n, CERT_LINES_HIGH)
        return 2 * ((k + 1) ** self.n + PROBES)

    def refine_estimate(self, lines: list[int], steps: list[float], fine: bool) -> int:
        """Evaluations a final face bisection may need (the reserve the 1-D / 2-D grid stage
        keeps for it): per dim i, two dense checks of each of its two faces over the lines
        crossing them (``prod(lines[j], j != i)`` points, twice that with the cell centres
        of oir_b / oir_w: `faces.face_points`), and ``steps[i]`` cheap bisection rounds of
        ``2**n`` points (both faces' corners)."""
        est = 0.0
        for i in range(self.n):
            face = int(np.prod([lines[j] for j in range(self.n) if j != i]))
            est += 2 * (2 * face * (2 if fine else 1) + 2**self.n * steps[i])
        return int(est)


@dataclass
class SearchState:
    """Everything one search shares: the problem (``x0``, the domain, periodic dims, the
    method and hyper-parameters), the box being grown (``lo``/``hi``), the flood lattice
    (``cells``, ``h``, ``axes``), every scored point (``pts``/``vals``), the trace, the
    budget and the counters reported in ``RegionResult.info``."""

    ev: Evaluator
    x0: np.ndarray
    dlo: np.ndarray
    dhi: np.ndarray
    periodic: np.ndarray
    method: str
    t: float  # threshold
    budget: Budget
    cells: np.ndarray  # flood-lattice cells per dim
    tol: np.ndarray  # face bracket tolerance per dim (xtol x width)
    fd: np.ndarray  # finite-difference step per dim
    trades: int
    trade_frac: float
    alternatives: int
    width: np.ndarray = field(init=False)
    n: int = field(init=False)
    h: np.ndarray = field(init=False)  # lattice spacing per dim
    fine_faces: bool = field(init=False)  # oir_b / oir_w: face tests add cell centres
    lo: np.ndarray = field(init=False)
    hi: np.ndarray = field(init=False)
    trace: list[TraceStep] = field(default_factory=list)
    pts: list[np.ndarray] = field(default_factory=list)  # every point sent, unwrapped
    vals: list[np.ndarray] = field(default_factory=list)
    axes: list[np.ndarray] = field(default_factory=list)  # lattice / grid lines per dim
    resolution: np.ndarray | None = None  # set by a step that tested a finer grid
    n_trades: int = 0
    n_trades_accepted: int = 0
    n_alternatives: int = 0
    flood_cut: bool = False
    cut_short: bool = False  # a step stopped early for the budget (the box is sound)
    grid_used: bool = False
    certified: bool = False
    # certified boxes that lost a comparison (`ours.Snapshot`): points found bad later may
    # cut the winner below one of them (`ours.best_certified`)
    spares: list[Any] = field(default_factory=list)

    def __post_init__(self) -> None:
        self.width = self.dhi - self.dlo
        self.n = int(self.x0.shape[0])
        self.h = self.width / self.cells
        self.fine_faces = self.method != "naive"
        self.lo = self.x0.copy()
        self.hi = self.x0.copy()

    @classmethod
    def create(cls, ev: Evaluator, x0: np.ndarray, lower: np.ndarray, upper: np.ndarray,
               periodic: np.ndarray, method: str, hyper: dict[str, Any]) -> SearchState:
        """The state of a new search from checked hyper-parameters (`OursParams` names)."""
        n = x0.shape[0]
        width = upper - lower
        me = hyper["max_evals"]
        max_evals = default_max_evals(n) if me is None else int(me)
        lat = hyper["lattice"]
        cells = (np.full(n, default_lattice(n, max_evals)) if lat is None
                 else np.broadcast_to(np.asarray(lat, dtype=np.int64), (n,)).copy())
        tr, alt = hyper["trades"], hyper["alternatives"]
        return cls(
            ev=ev, x0=x0, dlo=lower, dhi=upper, periodic=periodic, method=method,
            t=float(hyper["threshold"]),
            budget=Budget(ev, n, max_evals, int(hyper["max_iter"])),
            cells=cells, tol=float(hyper["xtol"]) * width, fd=float(hyper["fd_step"]) * width,
            trades=default_trades(n, method) if tr is None else int(tr),
            trade_frac=float(hyper["trade_frac"]),
            alternatives=(3 if n <= 2 else 2 if n == 3 else 0) if alt is None else int(alt),
        )

    # ------------------------------------------------------------------ evaluation
    def score(self, x: np.ndarray, grad_x: np.ndarray | None = None) -> tuple[np.ndarray, Any]:
        """One batched call (at most); raises `BudgetExhausted` if it would not fit."""
        self.budget.check(x, grad_x)
        vals, g = self.ev.evaluate(x, grad_x)
        if len(x):
            self.pts.append(np.asarray(x, dtype=np.float64))
            self.vals.append(vals)
        return vals, g

    def box(self) -> StepResult:
        return StepResult(self.lo.copy(), self.hi.copy())

    # --------------------------------------------------------------------- queries
    def volume_ratio(self, lo: np.ndarray | None = None, hi: np.ndarray | None = None) -> float:
        lo = self.lo if lo is None else lo
        hi = self.hi if hi is None else hi
        v = box_volume(lo, hi, self.dlo, self.dhi, self.periodic)
        return v / float(np.prod(self.width))

    def log_trace(self) -> None:
        self.trace.append((self.lo.copy(), self.hi.copy(), -self.volume_ratio()))

    def full_circle(self, i: int, lo: np.ndarray, hi: np.ndarray) -> bool:
        return bool(self.periodic[i] and hi[i] - lo[i] >= self.width[i] * (1 - 1e-12))

    def coord(self, i: int, k: int) -> float:
        """Coordinate of lattice index k of dim i (unwrapped on periodic dims)."""
        if self.periodic[i]:
            return float(self.x0[i] + k * self.h[i])
        return float(self.axes[i][k])

    def lines(self, j: int, a: float, b: float) -> np.ndarray:
        """Lattice / grid line coordinates of dim j in [a, b] (unwrapped on periodic dims,
        whose lines are stored in [x0, x0 + period))."""
        c = np.asarray(self.axes[j], dtype=np.float64)
        if self.periodic[j]:
            w = float(self.width[j])
            k0, k1 = math.floor((a - c[0]) / w) - 1, math.floor((b - c[0]) / w) + 1
            c = np.concatenate([c + k * w for k in range(k0, k1 + 1)])
        return c[(c >= a) & (c <= b)]

    def unwrap(self, pts: np.ndarray, lo: np.ndarray) -> np.ndarray:
        """(N, n) the points moved by whole periods into ``[lo, lo + period)`` on periodic
        dims (a copy)."""
        p = pts.copy()
        per = self.periodic
        if per.any():
            p[:, per] = lo[per] + np.mod(p[:, per] - lo[per], self.width[per])
        return p

    def inside(self, pts: np.ndarray, lo: np.ndarray, hi: np.ndarray) -> np.ndarray:
        """(N,) bool: which points lie in the box ``[lo, hi]`` (periodic dims wrapped)."""
        p = self.unwrap(pts, lo)
        eps = 1e-12 * self.width
        return np.asarray(((p >= lo - eps) & (p <= hi + eps)).all(axis=1))

    def worst_inside(self) -> float:
        pts, vals = np.concatenate(self.pts), np.concatenate(self.vals)
        inside = self.inside(pts, self.lo, self.hi)
        return float(vals[inside].min()) if inside.any() else float("nan")

    def grid_resolution(self) -> np.ndarray:
        """Per dim, the largest step between the scored lines inside the box."""
        res = np.zeros(self.n)
        for i in range(self.n):
            c = self.lines(i, float(self.lo[i]), float(self.hi[i]))
            c = np.unique(np.r_[self.lo[i], c, self.hi[i]])
            res[i] = float(np.diff(c).max()) if c.size > 1 else 0.0
        return res
