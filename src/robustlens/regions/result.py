"""`RegionResult`: what a robust-region search returns (JSON-friendly via ``to_dict``)."""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np

__all__ = ["RegionResult", "TraceStep", "box_volume"]

#: One optimisation step: (lower bounds, upper bounds, loss) after the step.
TraceStep = tuple[np.ndarray, np.ndarray, float]


def box_volume(
    lower: np.ndarray,
    upper: np.ndarray,
    domain_lower: np.ndarray,
    domain_upper: np.ndarray,
    periodic: np.ndarray | None = None,
) -> float:
    """Volume of the box ``[lower, upper]`` clipped to the domain.

    Non-periodic dims are clipped to ``[domain_lower, domain_upper]``; on periodic dims
    the box may extend past the domain edge (it wraps) and its width is capped at
    the period ``domain_upper - domain_lower``.
    """
    lower = np.asarray(lower, dtype=np.float64)
    upper = np.asarray(upper, dtype=np.float64)
    dlo = np.asarray(domain_lower, dtype=np.float64)
    dhi = np.asarray(domain_upper, dtype=np.float64)
    per = np.zeros(lower.shape, bool) if periodic is None else np.asarray(periodic, bool)
    clipped = np.clip(upper, dlo, dhi) - np.clip(lower, dlo, dhi)
    wrapped = np.minimum(upper - lower, dhi - dlo)
    widths = np.where(per, wrapped, clipped)
    return float(np.prod(np.maximum(widths, 0.0)))


@dataclass
class RegionResult:
    """The outcome of one robust-region search.

    Attributes
    ----------
    lower, upper:
        Box bounds, shape ``(n,)``.  On a periodic dim (variant "ours") the box may
        extend past the domain edge: ``lower < domain_lower`` or ``upper >
        domain_upper`` means it wraps around (see ``wrapped``); ``x0`` is always inside
        ``[lower, upper]`` in these unwrapped coordinates.
    volume:
        Box volume clipped to the domain (width capped at the period on periodic dims).
    n_evaluations:
        Score evaluations spent: every point sent to ``score_fn`` counts 1 (finite
        difference points included, so a central-difference gradient along k dims
        costs 2k); every point sent to ``grad_fn`` counts ``n``.  Cached points
        (variant "ours") are not re-evaluated and not counted again.
    n_calls:
        Number of ``score_fn`` calls (one per optimisation step at most).
    n_grad_calls:
        Number of ``grad_fn`` calls (0 when no ``grad_fn`` was given).
    trace:
        Per step ``(lower, upper, loss)`` after the step.  Paper variant: the
        printed loss of the box before the update; "ours": minus the volume ratio
        of the accepted box.
    converged:
        Paper: the last step moved no bound by more than 1e-9 of the domain width.
        Ours: the flood fill finished within the budget and every face's bracket is
        below tolerance (or the face hit the domain edge); a non-robust start
        (``stop_reason="not_robust"``, empty box at ``x0``) also counts as settled.
    grew:
        The region is meaningfully larger than the start box: the geometric mean
        of its widths relative to the domain widths exceeds ``grow_tol`` (1e-3).
    stop_reason:
        "converged", "max_iter" (ours: ``max_iter`` calls), "budget" (ours:
        ``max_evals`` reached; the box is still sound), "not_robust" (start score below the
        threshold), "collapsed" (paper: a bound crossed the other) or "diverged"
        (paper: non-finite bounds).
    resolution:
        Variant "ours": the test spacing per dim, shape ``(n,)``: scored points inside
        the box are at most this far apart (the largest step between the tested lines
        inside it; faces are tested at least as densely).  Zeros for a non-robust
        start; None for "paper".
    worst_score:
        Variant "ours": the lowest score among the scored points inside the closed box
        (``>= threshold`` by construction: the box is sound at ``resolution``); None
        for "paper".
    hyper, info:
        The hyper-parameters used; extra counters (ours: ``n_trades``,
        ``n_trades_accepted``, ``n_alternatives``, ``certified`` (1-D / 2-D: the
        Lipschitz check of the box's cells finished), ``max_evals`` (the budget used),
        ``lattice`` (flood-fill cells per dim)).
    """

    lower: np.ndarray
    upper: np.ndarray
    volume: float
    n_evaluations: int
    n_calls: int
    trace: list[TraceStep]
    converged: bool
    grew: bool
    method: str
    variant: str
    x0: np.ndarray = field(default_factory=lambda: np.zeros(0))
    domain_lower: np.ndarray = field(default_factory=lambda: np.zeros(0))
    domain_upper: np.ndarray = field(default_factory=lambda: np.zeros(0))
    wrapped: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    periodic: np.ndarray = field(default_factory=lambda: np.zeros(0, bool))
    n_grad_calls: int = 0
    threshold: float | None = None
    stop_reason: str = ""
    hyper: dict[str, Any] = field(default_factory=dict)
    info: dict[str, Any] = field(default_factory=dict)
    resolution: np.ndarray | None = None
    worst_score: float | None = None

    @property
    def n(self) -> int:
        """Number of parameters (dimensions)."""
        return int(np.asarray(self.lower).shape[0])

    @property
    def domain_volume(self) -> float:
        return float(np.prod(np.asarray(self.domain_upper) - np.asarray(self.domain_lower)))

    @property
    def volume_ratio(self) -> float:
        """``volume / domain volume`` (the per-run term of SRVR)."""
        dv = self.domain_volume
        return self.volume / dv if dv > 0 else 0.0

    @property
    def box(self) -> tuple[np.ndarray, np.ndarray]:
        return np.asarray(self.lower), np.asarray(self.upper)

    def to_dict(self, trace: bool = True) -> dict[str, Any]:
        """A JSON-serialisable dict (numpy arrays become lists)."""
        d: dict[str, Any] = {
            "lower": _lst(self.lower),
            "upper": _lst(self.upper),
            "volume": float(self.volume),
            "volume_ratio": float(self.volume_ratio),
            "n_evaluations": int(self.n_evaluations),
            "n_calls": int(self.n_calls),
            "n_grad_calls": int(self.n_grad_calls),
            "converged": bool(self.converged),
            "grew": bool(self.grew),
            "method": self.method,
            "variant": self.variant,
            "x0": _lst(self.x0),
            "domain_lower": _lst(self.domain_lower),
            "domain_upper": _lst(self.domain_upper),
            "wrapped": [bool(w) for w in np.asarray(self.wrapped)],
            "periodic": [bool(w) for w in np.asarray(self.periodic)],
            "threshold": None if self.threshold is None else float(self.threshold),
            "stop_reason": self.stop_reason,
            "resolution": None if self.resolution is None else _lst(self.resolution),
            "worst_score": None if self.worst_score is None else _num(self.worst_score),
            "hyper": {k: _jsonable(v) for k, v in self.hyper.items()},
            "info": {k: _jsonable(v) for k, v in self.info.items()},
        }
        if trace:
            d["trace"] = [
                {"lower": _lst(lo), "upper": _lst(hi), "loss": _num(loss)}
                for lo, hi, loss in self.trace
            ]
        return d

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> RegionResult:
        """Inverse of `to_dict` (trace optional)."""
        arr = np.asarray
        trace = [
            (arr(t["lower"], float), arr(t["upper"], float), float(t["loss"]))
            for t in d.get("trace", [])
        ]
        return cls(
            lower=arr(d["lower"], float),
            upper=arr(d["upper"], float),
            volume=float(d["volume"]),
            n_evaluations=int(d["n_evaluations"]),
            n_calls=int(d["n_calls"]),
            trace=trace,
            converged=bool(d["converged"]),
            grew=bool(d["grew"]),
            method=str(d["method"]),
            variant=str(d["variant"]),
            x0=arr(d.get("x0", []), float),
            domain_lower=arr(d.get("domain_lower", []), float),
            domain_upper=arr(d.get("domain_upper", []), float),
            wrapped=arr(d.get("wrapped", []), bool),
            periodic=arr(d.get("periodic", []), bool),
            n_grad_calls=int(d.get("n_grad_calls", 0)),
            threshold=d.get("threshold"),
            stop_reason=str(d.get("stop_reason", "")),
            hyper=dict(d.get("hyper", {})),
            info=dict(d.get("info", {})),
            resolution=None if d.get("resolution") is None else arr(d["resolution"], float),
            worst_score=None if d.get("worst_score") is None else float(d["worst_score"]),
        )


def _num(x: float) -> float | None:
    x = float(x)
    return x if np.isfinite(x) else None


def _lst(a: Any) -> list[float]:
    return [float(v) for v in np.asarray(a, dtype=np.float64).ravel()]


def _jsonable(v: Any) -> Any:
    if isinstance(v, np.ndarray):
        return v.tolist()
    if isinstance(v, np.generic):
        return v.item()
    if isinstance(v, (list, tuple)):
        return [_jsonable(x) for x in v]
    return v
