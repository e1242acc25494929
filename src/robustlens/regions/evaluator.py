"""Batched, validated, optionally cached evaluation of a user's score function.

Every optimisation step hands *all* of its points to `Evaluator.evaluate` at once;
that makes at most one ``score_fn`` call (and at most one ``grad_fn`` call), so a
renderer + classifier can batch the whole step on an accelerator.
"""

from __future__ import annotations

from collections.abc import Callable

import numpy as np

from robustlens.errors import BadInput

__all__ = ["BudgetExhausted", "Evaluator", "ScoreFn", "GradFn"]

ScoreFn = Callable[[np.ndarray], np.ndarray]
GradFn = Callable[[np.ndarray], np.ndarray]

# Points are cached on a grid of 2**-40 domain widths (~1e-12 relative).
_QUANT = float(2**40)


class BudgetExhausted(Exception):
    """A search step would pass its evaluation budget (``reason``: which one)."""

    def __init__(self, reason: str) -> None:
        super().__init__(reason)
        self.reason = reason


def _fmt_point(x: np.ndarray) -> str:
    return np.array2string(np.asarray(x), precision=6, separator=", ")


class Evaluator:
    """Counts, validates and (optionally) caches score / gradient evaluations.

    Points on periodic dims are wrapped into ``[lower, upper)`` before they reach
    ``score_fn`` (and before they are used as cache keys).
    """

    def __init__(
        self,
        score_fn: ScoreFn,
        grad_fn: GradFn | None,
        lower: np.ndarray,
        upper: np.ndarray,
        periodic: np.ndarray,
        cache: bool,
    ) -> None:
        self.score_fn = score_fn
        self.grad_fn = grad_fn
        self.lower = lower
        self.width = upper - lower
        self.periodic = periodic
        self.n = int(lower.shape[0])
        self.use_cache = cache
        self.n_evaluations = 0
        self.n_calls = 0
        self.n_grad_calls = 0
        self._cache: dict[bytes, float] = {}
        self._gcache: dict[bytes, np.ndarray] = {}

    # ------------------------------------------------------------------ helpers
    def wrap(self, pts: np.ndarray) -> np.ndarray:
        if not self.periodic.any():
            return pts
        out = pts.copy()
        p = self.periodic
        out[:, p] = self.lower[p] + np.mod(pts[:, p] - self.lower[p], self.width[p])
        return out

    def _keys(self, pts: np.ndarray) -> list[bytes]:
        q = np.rint((pts - self.lower) / self.width * _QUANT).astype(np.int64)
        return [row.tobytes() for row in q]

    def _call_score(self, pts: np.ndarray) -> np.ndarray:
        x = np.ascontiguousarray(pts, dtype=np.float64).copy()
        out = self.score_fn(x)
        self.n_calls += 1
        self.n_evaluations += x.shape[0]
        try:
            arr = np.asarray(out, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise BadInput(f"score_fn returned a non-numeric value ({type(out).__name__})") from exc
        n_pts = x.shape[0]
        if arr.shape == (n_pts, 1):
            arr = arr[:, 0]
        if arr.shape != (n_pts,):
            raise BadInput(
                f"score_fn returned shape {arr.shape} for {n_pts} points of dimension "
                f"{self.n}; expected ({n_pts},)"
            )
        bad = ~np.isfinite(arr)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise BadInput(
                f"score_fn returned non-finite scores at {int(bad.sum())} point(s), "
                f"first at {_fmt_point(x[i])} (value {arr[i]})"
            )
        return arr

    def _call_grad(self, pts: np.ndarray) -> np.ndarray:
        assert self.grad_fn is not None
        x = np.ascontiguousarray(pts, dtype=np.float64).copy()
        out = self.grad_fn(x)
        self.n_grad_calls += 1
        self.n_evaluations += x.shape[0] * self.n
        try:
            arr = np.asarray(out, dtype=np.float64)
        except (TypeError, ValueError) as exc:
            raise BadInput(f"grad_fn returned a non-numeric value ({type(out).__name__})") from exc
        if arr.shape != x.shape:
            raise BadInput(
                f"grad_fn returned shape {arr.shape} for {x.shape[0]} points; expected {x.shape}"
            )
        bad = ~np.isfinite(arr).all(axis=1)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            raise BadInput(f"grad_fn returned non-finite gradients at {_fmt_point(x[i])}")
        return arr

    # ------------------------------------------------------------------ public
    def count_new(self, pts: np.ndarray) -> int:
        """How many distinct points of ``pts`` (N, n) a call would score (cache misses)."""
        if not self.use_cache:
            return len(pts)
        keys = set(self._keys(self.wrap(np.asarray(pts, dtype=np.float64))))
        return sum(k not in self._cache for k in keys)

    def lookup(self, pts: np.ndarray) -> np.ndarray:
        """Cached scores at ``pts`` (N, n); NaN where a point was never scored."""
        keys = self._keys(self.wrap(np.asarray(pts, dtype=np.float64)))
        return np.fromiter((self._cache.get(k, np.nan) for k in keys), np.float64, len(keys))

    def evaluate(
        self, pts: np.ndarray, grad_pts: np.ndarray | None = None
    ) -> tuple[np.ndarray, np.ndarray | None]:
        """Scores at ``pts`` (and gradients at ``grad_pts``) with ONE call each.

        With caching on, only unique, never-seen points are sent to ``score_fn``.
        Without it (paper variant) every point is sent as given.
        """
        pts = self.wrap(np.asarray(pts, dtype=np.float64))
        grads = None
        if not self.use_cache:
            vals = self._call_score(pts) if len(pts) else np.zeros(0)
            if grad_pts is not None and len(grad_pts):
                grads = self._call_grad(self.wrap(np.asarray(grad_pts, dtype=np.float64)))
            return vals, grads

        keys = self._keys(pts)
        todo: dict[bytes, int] = {}
        for i, k in enumerate(keys):
            if k not in self._cache and k not in todo:
                todo[k] = i
        if todo:
            idx = np.fromiter(todo.values(), dtype=np.int64, count=len(todo))
            new = self._call_score(pts[idx])
            for k, v in zip(todo, new, strict=True):
                self._cache[k] = float(v)
        vals = np.fromiter((self._cache[k] for k in keys), dtype=np.float64, count=len(keys))

        if grad_pts is not None and len(grad_pts):
            gp = self.wrap(np.asarray(grad_pts, dtype=np.float64))
            gkeys = self._keys(gp)
            gtodo: dict[bytes, int] = {}
            for i, k in enumerate(gkeys):
                if k not in self._gcache and k not in gtodo:
                    gtodo[k] = i
            if gtodo:
                idx = np.fromiter(gtodo.values(), dtype=np.int64, count=len(gtodo))
                new_g = self._call_grad(gp[idx])
                for k, g in zip(gtodo, new_g, strict=True):
                    self._gcache[k] = g
            grads = np.stack([self._gcache[k] for k in gkeys])
        return vals, grads
