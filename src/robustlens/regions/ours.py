"""Variant "ours": a threshold-based, scale-free, batched robust-region search.

Goal: the largest axis-aligned box ``[lower, upper]`` containing ``x0`` on which the
score stays ``>= threshold`` (checked at sample points).

Face line search (all methods)
------------------------------
Each of the 2n faces of the box runs its own 1-D line search on its outward
offset.  While a face's tests pass, its step doubles (``grow``, starting at
``init_step`` x domain width); the first failing test brackets the threshold
crossing, and the bracket is then bisected until it is narrower than ``xtol`` x
domain width, or the face reaches the domain edge.  A face test samples the
*candidate* face (the face moved outward by its step, spanning the current box in
the other dims).  Every test of one step, the current box's corners and any
finite-difference points go to ``score_fn`` in ONE call; evaluations are cached on a
2^-40 grid of the domain width, so no point is scored twice.

Passing faces move together, which creates corners no test saw (two faces moved
at once).  The next step's call re-checks the current box's corners; a failing
corner sends all but one of the faces it touches back to their previous
positions, with their brackets closed there.  Every returned box therefore has
all its corners ``>= threshold``; faces are certified at their sample points only.

Steps are fractions of the domain width, never multiplied by the box volume, so
the search works the same in 1-D and 6-D; bounds never leave the domain (except
by wrapping on ``periodic`` dims, where the width is capped at the period).

Why bisection and not secant / Newton steps: we tried both.  On product-like
landscapes (soft edges in several dims) a face that reaches its crossing in one
or two predicted steps takes all the slack of the shared corners, and the other
dims are then blocked: 5-20 % less volume (IoU 0.5-0.6 on a soft 2-D map) than
with faces that close their brackets in lock step.  Bisection also makes the cost
predictable: about log2(distance / init_step) + log2(step / xtol) steps.

Methods
-------
* ``naive`` -- a *maximal* box (no face can move outward), judged on the box
  corners only, like the reference naive method (inner corners only) but with no
  regulariser capping the box.  Cheapest; blind to dips inside faces.
* ``oir_b`` (black box, the default) -- a maximal box judged on the *outer* box:
  every face test samples the candidate face's corners plus ``face_points``
  interior points (default 1: the face centre; more: Halton points), so a notch
  entering a face between its corners stops it.  Costs about 2n more evaluations
  per step than naive.
* ``oir_w`` (white box) -- the *largest* box: the oir_b search, then volume
  *trades* steered by the score gradient at the most constraining box corner
  (``grad_fn`` if given, else central differences with step ``fd_step`` x domain
  width, clipped to the domain, batched in one call).  At the largest box, moving
  any face outward costs the same score per unit of log-volume (KKT:
  ``|df/dx_i| * width_i`` equal over the dims that corner constrains).  While the
  costs differ by more than ``kkt_tol`` (20 %), the dim with the largest cost is
  shrunk by ``trade_frac`` of its extent on each side of ``x0``, the other dims
  regrow, then it regrows; the result is kept if the volume grew by > 0.1 %.  The
  fraction halves after a round without gain (down to 2 %), at most ``trades``
  trials (default 4(n-1)); a dim whose shrinking freed no other dim is not tried
  again.  This matters when dims trade off (soft, product-like edges), where the
  greedy search lets whichever face arrives first take the shared slack; on
  box-shaped regions the corner gradient involves one dim only, and trading stops
  after at most one futile trial per dim.  Without
  trades (1-D) it equals ``oir_b``.  ``trades=k`` also enables black-box trades
  for ``oir_b`` / ``naive`` (widest dim first, no gradient, no KKT stop).  If
  ``max_iter`` / ``max_evals`` runs out during a trade, the last converged box is
  kept (``info["trades_cut_short"]``).
"""

from __future__ import annotations

import copy
import math
from dataclasses import dataclass
from typing import Any

import numpy as np
from scipy.stats import qmc

from robustlens.regions.evaluator import Evaluator
from robustlens.regions.paper import corner_mask, corners
from robustlens.regions.result import TraceStep, box_volume

__all__ = ["OURS_DEFAULTS", "run_ours"]

OURS_DEFAULTS: dict[str, Any] = {
    "threshold": 0.5,
    "init_step": 1.0 / 32.0,  # first step of every face, fraction of the domain width
    "grow": 2.0,  # growth factor of a face's step while its tests pass
    "xtol": 1e-3,  # bracket tolerance, fraction of the domain width
    "max_iter": 400,  # steps (= score_fn calls) at most
    "max_evals": None,  # evaluation budget (None: unlimited)
    "face_points": None,  # interior samples per face; None: naive 0, oir_b/oir_w 1
    "slab_spacing": 1.0 / 32.0,  # test planes inside a long step at most this far apart
    # (fraction of the domain width), so a narrow dip of the score is not jumped over;
    # 0 tests the new face position only
    "fd_step": 1e-3,  # finite-difference step (oir_w without grad_fn), fraction of width
    "trades": None,  # volume trade trials; None: oir_w 4 (n - 1), else 0
    "trade_frac": 0.25,  # first shrink fraction of a trade
    "kkt_tol": 0.2,  # oir_w: stop trading when corner costs agree within this
}

_MIN_TRADE_FRAC = 0.02
_ACTIVE = 0.02  # oir_w: a dim is constrained by a corner if its cost is > 2 % of the largest
_TRADE_GAIN = 1.001


@dataclass
class _Face:
    dim: int
    sign: int  # -1: lower face, +1: upper face
    tol: float
    step: float
    bracketed: bool = False
    fail_pos: float = math.nan
    done: bool = False


def _unit_face_samples(n: int, face_points: int) -> np.ndarray:
    """Samples on the unit (n-1)-cube: its corners, the centre, then Halton points."""
    d = n - 1
    if d == 0:
        return np.zeros((1, 0))
    rows = [corner_mask(d).T]
    if face_points >= 1:
        rows.append(np.full((1, d), 0.5))
    if face_points >= 2:
        seq = qmc.Halton(d=d, scramble=False).random(face_points + 2)
        seq = seq[~((seq == 0).all(axis=1) | (seq == 0.5).all(axis=1))]  # origin, centre
        rows.append(seq[: face_points - 1])
    return np.concatenate(rows, axis=0)


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
        self.dlo = lower
        self.dhi = upper
        self.width = upper - lower
        self.periodic = periodic
        self.method = method
        self.n = n = x0.shape[0]
        self.t = float(hyper["threshold"])
        self.grow = float(hyper["grow"])
        self.max_iter = int(hyper["max_iter"])
        self.max_evals = hyper["max_evals"]
        fp = hyper["face_points"]
        fp = (0 if method == "naive" else 1) if fp is None else int(fp)
        self.unit = _unit_face_samples(n, fp)
        tr = hyper["trades"]
        self.trades = (4 * (n - 1) if method == "oir_w" else 0) if tr is None else int(tr)
        self.trade_frac = float(hyper["trade_frac"])
        self.kkt_tol = float(hyper["kkt_tol"])
        self.h = float(hyper["fd_step"]) * self.width
        self.mask = corner_mask(n)
        self.lo = x0.copy()
        self.hi = x0.copy()
        self.tol = float(hyper["xtol"]) * self.width
        step = float(hyper["init_step"]) * self.width
        self.slab = float(hyper["slab_spacing"]) * self.width
        self.faces = [
            _Face(dim=i, sign=s, tol=float(self.tol[i]), step=float(step[i]))
            for i in range(n)
            for s in (-1, 1)
        ]
        self.trace: list[TraceStep] = []
        self.moved: dict[int, tuple[_Face, float]] = {}
        self.steps = 0
        self.last_corner_values = np.zeros(0)
        self.n_trades = 0
        self.n_trades_accepted = 0
        self.trades_cut_short = False

    # ----------------------------------------------------------------- geometry
    def pos(self, f: _Face) -> float:
        return float(self.lo[f.dim] if f.sign < 0 else self.hi[f.dim])

    def set_pos(self, f: _Face, v: float) -> None:
        if f.sign < 0:
            self.lo[f.dim] = v
        else:
            self.hi[f.dim] = v

    def at_edge(self, f: _Face) -> bool:
        if self.periodic[f.dim]:
            return bool(self.hi[f.dim] - self.lo[f.dim] >= self.width[f.dim] * (1 - 1e-12))
        edge = self.dlo[f.dim] if f.sign < 0 else self.dhi[f.dim]
        return bool(abs(self.pos(f) - edge) <= 1e-12 * self.width[f.dim])

    def face_samples(self, f: _Face, q: float) -> np.ndarray:
        other = [j for j in range(self.n) if j != f.dim]
        lo, hi, u = self.lo[other], self.hi[other], self.unit
        x = np.empty((u.shape[0], self.n))
        x[:, f.dim] = q
        # exact bounds at unit 0 / 1: face corners are box corners bit for bit
        x[:, other] = np.where(u == 0, lo, np.where(u == 1, hi, lo + u * (hi - lo)))
        return x

    def volume_ratio(self) -> float:
        v = box_volume(self.lo, self.hi, self.dlo, self.dhi, self.periodic)
        return v / float(np.prod(self.width))

    def log_trace(self) -> None:
        self.trace.append((self.lo.copy(), self.hi.copy(), -self.volume_ratio()))

    # -------------------------------------------------------------- proposals
    def proposals(self) -> dict[int, float]:
        """Outward offset to test for every face still moving."""
        props: dict[int, float] = {}
        for fi, f in enumerate(self.faces):
            if f.done:
                continue
            p = self.pos(f)
            if f.bracketed:
                d = abs(f.fail_pos - p)
                if d <= f.tol:
                    f.done = True
                    continue
                c = d / 2
            else:
                c = f.step
            if not self.periodic[f.dim]:
                room = (p - self.dlo[f.dim]) if f.sign < 0 else (self.dhi[f.dim] - p)
                if room <= 1e-12 * self.width[f.dim]:
                    f.done = True
                    continue
                c = min(c, float(room))
            props[fi] = c
        for i in np.flatnonzero(self.periodic).tolist():
            period = float(self.width[i])
            room = period - float(self.hi[i] - self.lo[i])
            pair = [fi for fi in (2 * i, 2 * i + 1) if fi in props]
            if room <= 1e-12 * period:
                for fi in (2 * i, 2 * i + 1):
                    self.faces[fi].done = True
                    props.pop(fi, None)
                continue
            total = sum(props[fi] for fi in pair)
            if total > room:
                for fi in pair:
                    props[fi] *= room / total
        return props

    # -------------------------------------------------------------- reverting
    def revert(self, bad: np.ndarray) -> None:
        """Handle failing corners of the current box after a step that moved several faces.

        A failing corner touches >= 2 faces moved by the last step (a corner touching
        one moved face was part of that face's own test).  All of them but the one
        that moved furthest (relative to the domain width) go back to their previous
        positions, their brackets closed there; the corner then becomes one that the
        kept face's test already passed.
        """
        moved = self.moved
        reverted: set[int] = set()
        touching: set[int] = set()
        for k in np.flatnonzero(bad):
            faces_k = [2 * i + int((k >> i) & 1) for i in range(self.n)]
            touching.update(faces_k)
            if any(fi in reverted for fi in faces_k):
                continue
            live = [fi for fi in faces_k if fi in moved]

            def rel_move(fi: int) -> float:
                f = self.faces[fi]
                return abs(self.pos(f) - moved[fi][1]) / float(self.width[f.dim])

            keep = max(live, key=rel_move) if len(live) > 1 else -1
            reverted.update(fi for fi in live if fi != keep)
        if not reverted:
            # Only possible with a non-deterministic score_fn: pull the faces touching
            # the failing corners halfway back to x0 and close their brackets there.
            for fi in touching:
                f = self.faces[fi]
                q = self.pos(f)
                self.set_pos(f, 0.5 * (q + self.x0[f.dim]))
                f.bracketed, f.fail_pos, f.done = True, q, False
            self.moved = {}
            return
        for fi in reverted:
            snap, old = moved[fi]
            q = self.pos(self.faces[fi])
            f = copy.copy(snap)
            self.faces[fi] = f
            self.set_pos(f, old)
            f.bracketed, f.fail_pos, f.done = True, q, False
        # faces moved last step and not reverted may still form untested corners with
        # the reverted ones: keep them revertible
        self.moved = {fi: v for fi, v in moved.items() if fi not in reverted}

    # ------------------------------------------------------------------- steps
    def step(self) -> str:
        """One optimisation step = at most one score_fn call.

        Returns "not_robust" (the start point fails), "corner_fail" (a corner of the
        current box failed: call `revert`), "done" (no face left to move and the box
        passed its corner check) or "moved".
        """
        t = self.t
        n_corners = 2**self.n
        props = self.proposals()
        blocks = [corners(self.lo, self.hi, self.mask)]
        spans: list[tuple[int, float, slice, int]] = []
        start = n_corners
        for fi, c in props.items():
            f = self.faces[fi]
            # the swept slab is tested on planes at most `slab` apart (all in this one call):
            # a step that doubled past a narrow dip of the score must not jump over it
            sp = float(self.slab[f.dim])
            planes = 1 if sp <= 0 else min(16, max(1, math.ceil(c / sp - 1e-9)))
            p0 = self.pos(f)
            x = np.concatenate([self.face_samples(f, p0 + f.sign * c * k / planes)
                                for k in range(1, planes + 1)])
            blocks.append(x)
            spans.append((fi, c, slice(start, start + len(x)), planes))
            start += len(x)
        vals, _ = self.ev.evaluate(np.concatenate(blocks, axis=0))
        self.steps += 1
        self.last_corner_values = vals[:n_corners]
        if (vals[:n_corners] < t).any():
            return "not_robust" if self.steps == 1 else "corner_fail"
        if not props:
            return "done"
        new_moved: dict[int, tuple[_Face, float]] = {}
        for fi, c, sl, planes in spans:
            f = self.faces[fi]
            p_old = self.pos(f)
            q = p_old + f.sign * c
            plane_ok = vals[sl].reshape(planes, -1).min(axis=1) >= t
            if plane_ok.all():
                new_moved[fi] = (copy.copy(f), p_old)
                if not f.bracketed:
                    f.step = self.grow * c
                self.set_pos(f, q)
                if self.at_edge(f):
                    if not self.periodic[f.dim]:
                        self.set_pos(f, float(self.dlo[f.dim] if f.sign < 0 else self.dhi[f.dim]))
                    f.done = True
            else:
                # Bracket at the full step, as without slab planes: on a score that falls
                # monotonically past the edge every plane passes exactly when the last one
                # does, so smooth plateaus are searched exactly as before; a dip inside the
                # slab still fails the step and bisection closes in on the face.
                f.bracketed, f.fail_pos = True, q
        for i in np.flatnonzero(self.periodic).tolist():
            if self.hi[i] - self.lo[i] >= self.width[i] * (1 - 1e-12):
                self.hi[i] = self.lo[i] + self.width[i]
                self.faces[2 * i].done = self.faces[2 * i + 1].done = True
        self.moved = new_moved
        return "moved"

    def out_of_budget(self) -> str | None:
        if self.steps >= self.max_iter:
            return "max_iter"
        if self.max_evals is not None and self.ev.n_evaluations >= self.max_evals:
            return "budget"
        return None

    def converge(self, reject_on_corner_fail: bool = False) -> str:
        """Steps until every face is done.

        Returns "converged", "not_robust", "rejected" (``reject_on_corner_fail`` and
        the first check of the current box failed), "max_iter" or "budget".
        """
        first = True
        while True:
            stop = self.out_of_budget()
            if stop:
                return stop
            res = self.step()
            if res == "not_robust":
                return res
            if res == "corner_fail":
                if first and reject_on_corner_fail:
                    return "rejected"
                self.revert(self.last_corner_values < self.t)
            first = False
            self.log_trace()
            if res == "done":
                return "converged"

    # -------------------------------------------------------------------- trades
    def save(self) -> tuple[Any, ...]:
        return self.lo.copy(), self.hi.copy(), copy.deepcopy(self.faces), dict(self.moved)

    def restore(self, s: tuple[Any, ...]) -> None:
        self.lo, self.hi = s[0].copy(), s[1].copy()
        self.faces, self.moved = copy.deepcopy(s[2]), dict(s[3])

    def reset_face(self, f: _Face) -> None:
        f.bracketed, f.fail_pos, f.done = False, math.nan, False
        f.step = 4 * f.tol

    def trade(self, i: int, frac: float) -> str:
        """Shrink dim i by ``frac`` of its extent on each side of x0, regrow the other
        dims, then let dim i regrow too.  Returns the stop reason."""
        self.lo[i] += frac * (self.x0[i] - self.lo[i])
        self.hi[i] -= frac * (self.hi[i] - self.x0[i])
        self.moved = {}
        for f in self.faces:
            if f.dim == i:
                f.done = True
            else:
                self.reset_face(f)
        before = [(f, self.pos(f)) for f in self.faces if f.dim != i]
        stop = self.converge(reject_on_corner_fail=True)
        if stop != "converged":
            return stop
        if all(abs(self.pos(f) - p) <= f.tol for f, p in before):
            return "no_effect"  # the other dims are not blocked by dim i
        for fi in (2 * i, 2 * i + 1):
            self.reset_face(self.faces[fi])
        return self.converge()

    def corner_gradient(self, k: int) -> np.ndarray:
        """Score gradient at corner k of the current box (one call)."""
        x = corners(self.lo, self.hi, self.mask)[k : k + 1]
        if self.ev.grad_fn is not None:
            _, g = self.ev.evaluate(np.zeros((0, self.n)), x)
            assert g is not None
            return g[0]
        eye = np.eye(self.n) * self.h
        xp, xm = x + eye, x - eye
        per = self.periodic
        xp[:, ~per] = np.minimum(xp[:, ~per], self.dhi[~per])
        xm[:, ~per] = np.maximum(xm[:, ~per], self.dlo[~per])
        vals, _ = self.ev.evaluate(np.concatenate([xp, xm], axis=0))
        return (vals[: self.n] - vals[self.n :]) / np.diag(xp - xm)

    def trade_order(self) -> list[int]:
        """Dims to shrink, most promising first; [] when no trade can help."""
        n = self.n
        ext = (self.hi - self.lo) / self.width
        if self.method != "oir_w":
            return [int(i) for i in np.argsort(-ext, kind="stable")]
        vals, _ = self.ev.evaluate(corners(self.lo, self.hi, self.mask))  # cached
        k = int(np.argmin(vals))
        g = self.corner_gradient(k)
        signs = np.where((k >> np.arange(n)) & 1, 1.0, -1.0)
        cost = np.maximum(-signs * g, 0.0) * (self.hi - self.lo)  # score per log-width
        faces = [self.faces[2 * i + int((k >> i) & 1)] for i in range(n)]
        # dims this corner constrains (a dim whose score does not change here is blocked
        # elsewhere, so shrinking another dim cannot free it) and that could grow
        active = cost > _ACTIVE * cost.max() if cost.max() > 0 else np.zeros(n, bool)
        free = active & np.array([not self.at_edge(f) for f in faces])
        order = []
        for i in np.argsort(-cost, kind="stable"):
            others = [j for j in range(n) if j != i and free[j]]
            if active[i] and others and cost[i] > (1 + self.kkt_tol) * min(cost[others]):
                order.append(int(i))
        return order

    def polish(self) -> str:
        """Volume-improving trades (see the module docstring)."""
        frac = self.trade_frac
        best = self.volume_ratio()
        futile: set[int] = set()  # dims whose shrinking freed no other dim
        while self.n_trades < self.trades and frac >= _MIN_TRADE_FRAC:
            order = [i for i in self.trade_order() if i not in futile]
            if not order:
                break
            gained = False
            for i in order:
                if self.n_trades >= self.trades:
                    break
                snap = self.save()
                self.n_trades += 1
                stop = self.trade(i, frac)
                vol = self.volume_ratio()
                if stop == "converged" and vol > best * _TRADE_GAIN:
                    best = vol
                    gained = True
                    self.n_trades_accepted += 1
                    break
                self.restore(snap)
                self.log_trace()
                if stop in ("rejected", "no_effect"):
                    futile.add(i)
                if stop in ("max_iter", "budget"):
                    # the restored box is the last converged one: keep it, stop trading
                    self.trades_cut_short = True
                    return "converged"
            if not gained:
                frac /= 2
        return "converged"

    # -------------------------------------------------------------------- run
    def run(self) -> dict[str, Any]:
        stop = self.converge()
        if stop == "converged" and self.trades > 0 and self.n > 1 and self.volume_ratio() > 0:
            stop = self.polish()
        if stop in ("max_iter", "budget") and self.moved:
            # The last moves were not verified jointly: check the corners once more and,
            # if one fails, fall back to the previous (verified) box.
            vals, _ = self.ev.evaluate(corners(self.lo, self.hi, self.mask))
            if (vals < self.t).any():
                for fi, (snap, old) in self.moved.items():
                    self.faces[fi] = snap
                    self.set_pos(snap, old)
                self.log_trace()
        lo, hi = self.lo.copy(), self.hi.copy()
        if stop == "not_robust":
            lo, hi = self.x0.copy(), self.x0.copy()
        for i in np.flatnonzero(self.periodic).tolist():
            if hi[i] - lo[i] >= self.width[i] * (1 - 1e-12):
                lo[i], hi[i] = self.dlo[i], self.dhi[i]
        wrapped = self.periodic & ((lo < self.dlo) | (hi > self.dhi))
        return {
            "lower": lo,
            "upper": hi,
            "trace": self.trace,
            "converged": stop in ("converged", "not_robust"),
            "stop_reason": stop,
            "wrapped": wrapped,
            "n_trades": self.n_trades,
            "n_trades_accepted": self.n_trades_accepted,
            "trades_cut_short": self.trades_cut_short,
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
    """Run the threshold search; returns the raw pieces of a `RegionResult`."""
    return _Search(ev, x0, lower, upper, periodic, method, hyper).run()
