"""Step 2 of variant "ours" from 3-D on: choose the box on the flood lattice.

The exact largest lattice box containing ``x0`` (`rectilinear.largest_box_mask`,
periodic dims wrap) and up to ``alternatives`` runner-ups (a face layer left out, or one
node thick in a dim), each refined (`faces.refine`) with cheap tests only: the
certification that follows checks the box, faces included (`certify`).  The largest is
kept; the others are returned for the certification's branch and bound.  Refining keeps
the certification's reserve (`state.Budget.cert_estimate`).  (1-D / 2-D choose on a grid
refined where boxes compete: `grid_stage`.)
"""

from __future__ import annotations

from typing import Any

import numpy as np

from robustlens.regions.evaluator import BudgetExhausted
from robustlens.regions.faces import lattice_box, refine
from robustlens.regions.rectilinear import largest_box_mask
from robustlens.regions.state import ChoiceResult, SearchState

__all__ = ["best_of", "candidate_boxes"]


def candidate_boxes(s: SearchState, state: np.ndarray, start: list[int], k: int
) -> list[tuple[list[int], list[int]]]:
    """The exact largest lattice box, then up to ``k`` runners-up: for each face of
    the best box, the largest box that leaves that face's node layer out (a
    volume trade on the lattice, solved exactly), and for each dim the largest box
    one node thick in it, largest first.  Several boxes can
    be nearly as large at the lattice resolution; refining each tells them apart."""
    good = state == 1
    lo_k, hi_k = largest_box_mask(good, start, s.periodic)
    out = [(lo_k, hi_k)]
    if k <= 0:
        return out
    alts: list[tuple[Any, Any, int]] = []
    for i in range(s.n):
        m = state.shape[i]
        if s.periodic[i] and hi_k[i] - lo_k[i] + 1 >= m:
            continue
        for layer in (lo_k[i], hi_k[i]):
            if layer == start[i]:
                continue
            g = good.copy()
            idx: list[Any] = [slice(None)] * s.n
            idx[i] = layer % m if s.periodic[i] else layer
            g[tuple(idx)] = False
            a, b = largest_box_mask(g, start, s.periodic)
            cnt = int(np.prod(np.asarray(b) - np.asarray(a) + 1))
            if cnt > 0 and (a, b) not in [o[:2] for o in alts]:
                alts.append((a, b, cnt))
    # boxes one node thick in dim i (the layer through x0): a ridge or a flat band
    # whose thickness the lattice cannot see; ranked as if refinement gave them
    # two nodes of thickness (the most it can add is just under 2 steps)
    for i in range(s.n):
        if hi_k[i] == lo_k[i]:
            continue
        g = np.zeros_like(good)
        idx2: list[Any] = [slice(None)] * s.n
        idx2[i] = start[i]
        g[tuple(idx2)] = good[tuple(idx2)]
        a, b = largest_box_mask(g, start, s.periodic)
        cnt = 2 * int(np.prod(np.asarray(b) - np.asarray(a) + 1))
        if (a, b) not in [o[:2] for o in alts] and (a, b) != (lo_k, hi_k):
            alts.append((a, b, cnt))
    alts.sort(key=lambda t: -t[2])
    return out + [(a, b) for a, b, _ in alts[:k]]


def best_of(s: SearchState, boxes: list[tuple[list[int], list[int]]], shape: tuple[int, ...]) -> ChoiceResult:
    """Refine each candidate lattice box; keep the largest result (the others, largest
    first, are the result's ``runners_up``).  A runner-up is refined only while the
    budget leaves room for it (twice the first one's cost)."""
    done: list[tuple[np.ndarray, np.ndarray]] = []
    cost = 0
    for k, box in enumerate(boxes):
        if k > 0 and 2 * cost > s.budget.remaining():
            break
        spent = s.ev.n_evaluations
        s.lo, s.hi = s.x0.copy(), s.x0.copy()
        try:
            # the certification's reserve stays (the box refined so far is kept)
            with s.budget.allotment(s.budget.max_evals - s.budget.cert_estimate(),
                                    "cert_reserve"):
                refine(s, lattice_box(s, box, shape), log_entry=True, verify=False)
        except BudgetExhausted as b:
            if b.reason != "cert_reserve":
                raise
            s.cut_short = True
            if not done:  # the lattice box, sound at the lattice's resolution
                done.append((s.lo.copy(), s.hi.copy()))
            break
        cost = max(cost, s.ev.n_evaluations - spent)
        done.append((s.lo.copy(), s.hi.copy()))
        if k > 0:
            s.n_alternatives += 1
    done.sort(key=lambda b: -s.volume_ratio(*b))  # stable: the lattice's best first on ties
    s.lo, s.hi = done[0]
    s.log_trace()
    return ChoiceResult(s.lo.copy(), s.hi.copy(), s.n_alternatives, tuple(done[1:]))
