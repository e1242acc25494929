"""Step 5 of variant "ours": volume trades.

At the most constraining tested point of each face the search takes the score gradient
(central differences with step ``fd_step`` x width, one batched call; oir_w uses
``grad_fn`` when given) and ranks the dims by score cost per unit of log-width
(``|df/dx_i| * width_i``, equal on all active dims at the optimum).  It shrinks the most
expensive dim by ``trade_frac`` of its width, lets the other faces regrow, then regrows
the shrunk dim; a trade is kept only if the volume grows.  From 3-D on faces move with
cheap tests and `ours` certifies the traded box (`certify`), keeping the box from before
the trades unless the traded one is certified and larger.
"""

from __future__ import annotations

import numpy as np

from robustlens.regions.evaluator import BudgetExhausted
from robustlens.regions.faces import refine, verify_since
from robustlens.regions.state import Face, SearchState, TradeResult

__all__ = ["binding_points", "costs", "polish", "trade_loop"]

#: tuned (2-D held-out plateaus): a trade is kept when the volume grows by this factor
TRADE_GAIN = 1.001
#: tuned (3-D / 4-D: the seeded anisotropic plateaus of benchmarks/bench_regions_nd.py):
#: from 3-D on a trade shrinks its dim by ``trade_frac`` times its cost over the median
#: cost, at most this many times (the costs are equal at the optimum)
TRADE_STRETCH = 6.0


def binding_points(s: SearchState) -> list[np.ndarray]:
    """Per dim, the lowest-scoring tested point on the box boundary of that dim."""
    pts, vals = np.concatenate(s.pts), np.concatenate(s.vals)
    inside = s.inside(pts, s.lo, s.hi)
    out = []
    for i in range(s.n):
        on = inside & (
            (np.abs(pts[:, i] - s.lo[i]) <= 1e-9 * s.width[i])
            | (np.abs(pts[:, i] - s.hi[i]) <= 1e-9 * s.width[i])
        )
        out.append(pts[np.flatnonzero(on)[np.argmin(vals[on])]] if on.any() else s.x0)
    return out


def costs(s: SearchState) -> np.ndarray:
    """Score cost per unit log-width of each dim at its binding point."""
    b = np.stack(binding_points(s))
    if s.ev.grad_fn is not None and s.method == "oir_w":  # naive / oir_b: black box
        _, g = s.score(np.zeros((0, s.n)), b)
        grad = np.asarray(g)
    else:
        eye = np.eye(s.n) * s.fd
        xp = b[:, None, :] + eye[None]
        xm = b[:, None, :] - eye[None]
        vals, _ = s.score(np.concatenate([xp.reshape(-1, s.n), xm.reshape(-1, s.n)]))
        k = s.n * s.n
        grad = (vals[:k] - vals[k:]).reshape(s.n, s.n) / (2 * s.fd)
    diag = np.abs(np.diag(grad))
    return diag * (s.hi - s.lo)


def polish(s: SearchState) -> TradeResult:
    """Volume trades (see the module docstring).  They may spend ``state.TRADE_SHARE`` of
    the budget left (from 3-D on, after the certification's reserve): a trade that would
    pass that is undone and trading stops, so the last converged box is kept (and the
    budget is not exhausted)."""
    entry = (s.lo.copy(), s.hi.copy())
    try:
        with s.budget.allotment(s.budget.trade_allotment(), "trade_allotment"):
            # (from 3-D on faces move with cheap tests: the certification that follows
            # the trades checks the final box, faces included)
            trade_loop(s)
    except BudgetExhausted as b:
        if b.reason != "trade_allotment":
            raise
        s.lo, s.hi = entry
        s.log_trace()
    if s.n <= 2:
        try:
            verify_since(s, entry)
        except BudgetExhausted:
            s.lo, s.hi = entry
            s.log_trace()
    return TradeResult(s.lo.copy(), s.hi.copy(), s.n_trades, s.n_trades_accepted)


def trade_loop(s: SearchState) -> None:
    tried: set[int] = set()
    frac = s.trade_frac
    trade_cost = 0
    while s.n_trades < s.trades:
        movable = [i for i in range(s.n) if not s.full_circle(i, s.lo, s.hi)]
        cost = costs(s)
        if cost.max() <= 0:
            return
        order = [int(i) for i in np.argsort(-cost, kind="stable")]
        order = [i for i in order if i in movable and i not in tried]
        if len(movable) < 2 or not order:
            return
        i = order[0]
        if 2 * trade_cost > s.budget.remaining():
            return  # keep the budget's last share: stop trading, still converged
        spent = s.ev.n_evaluations
        tried.add(i)
        s.n_trades += 1
        snap = s.lo.copy(), s.hi.copy()
        before = s.volume_ratio()
        f = frac
        if s.n >= 3:  # far from the optimum (costs unequal) a trade takes more
            ref_c = float(np.median(cost[movable]))
            ratio = float(cost[i] / ref_c) if ref_c > 0 else 1.0
            f = frac * float(np.clip(ratio, 1.0, TRADE_STRETCH))
        d = f * float(s.hi[i] - s.lo[i]) / 2
        try:
            s.lo[i] = min(s.lo[i] + d, s.x0[i])
            s.hi[i] = max(s.hi[i] - d, s.x0[i])
            step = np.maximum((f / 2) * (s.hi - s.lo), 2 * s.tol)
            grow = [Face(j, sd, None, float(step[j]))
                    for j in range(s.n) for sd in (-1, 1) if j != i]
            refine(s, grow, verify=s.n <= 2)  # type: ignore[arg-type]
            back = [Face(i, sd, None, max(d / 2, 2 * s.tol[i]))
                    for sd in (-1, 1)]
            refine(s, back, verify=s.n <= 2)  # type: ignore[arg-type]
        except BudgetExhausted as b:
            s.lo, s.hi = snap
            s.log_trace()
            if b.reason == "trade_allotment":
                return
            raise
        trade_cost = max(trade_cost, s.ev.n_evaluations - spent)
        if s.volume_ratio() > before * TRADE_GAIN:
            s.n_trades_accepted += 1
            tried = {i}
        else:
            s.lo, s.hi = snap
            s.log_trace()
            if len(tried) >= len(movable):
                tried = set()
                frac /= 2
