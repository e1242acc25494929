"""Entry points: `find_region` and the estimator-style `RobustRegion`.

``score_fn`` takes a float64 array (N, n) of points and returns N scores; every
optimisation step sends all its points (box corners, outer corners, face samples,
finite-difference points) in ONE call so a renderer + classifier can batch them.
``grad_fn`` (optional) takes (N, n) and returns the (N, n) gradient of the score.

Variants
--------
``"paper"``: the reference update rules exactly as printed (see `paper`).
``"ours"`` (default): the largest box on which the score stays >= ``threshold``: lattice
flood fill, exact choice of the box on a grid refined where boxes compete and
certification of its cells (`grid_stage`, 1-D / 2-D), batched face bisection (`ours`).

Hyper-parameters (keyword arguments)
------------------------------------
Named in `RobustRegion`; described once, with their defaults, in
`robustlens.regions.params` (`OursParams` for "ours", `PaperParams` for "paper", plus
``periodic`` and ``grow_tol`` for both).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np

from robustlens.errors import BadInput
from robustlens.estimator import Estimator
from robustlens.regions.evaluator import Evaluator, GradFn, ScoreFn
from robustlens.regions.ours import run_ours
from robustlens.regions.paper import run_paper
from robustlens.regions.params import defaults, names
from robustlens.regions.result import RegionResult, box_volume

__all__ = ["HYPER_NAMES", "METHODS", "VARIANTS", "RobustRegion", "check_hyper", "find_region",
           "parse_domain"]

METHODS = ("naive", "oir_b", "oir_w")
VARIANTS = ("paper", "ours")
#: every hyper-parameter name of either variant, in `RobustRegion`'s order
HYPER_NAMES: tuple[str, ...] = tuple(dict.fromkeys(names("ours") + names("paper")))


def _as_vector(name: str, v: Any) -> np.ndarray:
    try:
        arr = np.asarray(v, dtype=np.float64)
    except (TypeError, ValueError) as exc:
        raise BadInput(f"{name}: expected a numeric array, got {type(v).__name__}") from exc
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1:
        raise BadInput(f"{name}: expected a 1-D array of shape (n,), got shape {arr.shape}")
    if not np.isfinite(arr).all():
        raise BadInput(f"{name}: contains non-finite values {arr.tolist()}")
    return arr


def parse_domain(domain: Any, n: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Validate ``domain = (lower, upper)``; returns float64 arrays of shape (n,)."""
    if isinstance(domain, np.ndarray) and domain.ndim == 2 and domain.shape[0] == 2:
        domain = (domain[0], domain[1])
    if not isinstance(domain, (tuple, list, np.ndarray)) or len(domain) != 2:
        raise BadInput("domain: expected a pair (lower, upper) of arrays of shape (n,)")
    lower = _as_vector("domain lower", domain[0])
    upper = _as_vector("domain upper", domain[1])
    if lower.shape != upper.shape:
        raise BadInput(f"domain: lower has {lower.size} dims but upper has {upper.size}")
    if n is not None and lower.size != n:
        raise BadInput(f"domain: has {lower.size} dims but x0 has {n}")
    if (lower >= upper).any():
        i = int(np.flatnonzero(lower >= upper)[0])
        raise BadInput(f"domain: lower >= upper in dim {i} ({lower[i]} >= {upper[i]})")
    return lower, upper


def _parse_periodic(periodic: Any, n: int) -> np.ndarray:
    if periodic is None:
        return np.zeros(n, bool)
    arr = np.asarray(periodic)
    if arr.dtype == bool:
        if arr.shape != (n,):
            raise BadInput(f"periodic: bool mask must have shape ({n},), got {arr.shape}")
        return arr.copy()
    if arr.ndim == 0:
        arr = arr.reshape(1)
    if arr.ndim != 1 or (arr.size and not np.issubdtype(arr.dtype, np.integer)):
        raise BadInput("periodic: expected a bool mask of shape (n,) or a list of dim indices")
    mask = np.zeros(n, bool)
    for i in arr.tolist():
        if not -n <= i < n:
            raise BadInput(f"periodic: dim index {i} out of range for {n} dims")
        mask[i] = True
    return mask


def check_hyper(variant: str, hyper: dict[str, Any]) -> dict[str, Any]:
    """``hyper`` with the variant's defaults filled in; BadInput naming an unknown or bad
    hyper-parameter (used by `RobustRegion.check` and `scene.SceneSearch.create`)."""
    allowed = defaults(variant)
    unknown = sorted(set(hyper) - set(allowed))
    if unknown:
        raise BadInput(
            f"unknown hyper-parameter(s) {', '.join(unknown)} for variant {variant!r}; "
            f"expected some of {', '.join(sorted(allowed))}"
        )
    h = {**allowed, **hyper}

    def number(name: str) -> float:
        v = h[name]
        if isinstance(v, bool) or not isinstance(v, (int, float, np.number)):
            raise BadInput(f"{name}: expected a number, got {v!r}")
        return float(v)

    def positive(name: str) -> None:
        v = number(name)
        if not (np.isfinite(v) and v > 0):
            raise BadInput(f"{name}: expected a finite number > 0, got {h[name]!r}")

    def integer(name: str, low: int, optional: bool = False) -> None:
        v = h[name]
        if optional and v is None:
            return
        if isinstance(v, bool) or not isinstance(v, (int, np.integer)) or v < low:
            raise BadInput(f"{name}: expected an integer >= {low}, got {v!r}")

    positive("grow_tol")
    positive("fd_step")
    if variant == "paper":
        for name in ("lr", "alpha", "beta", "reg", "start_halfwidth"):
            positive(name)
        integer("n_iter", 1)
    else:
        positive("xtol")
        if not np.isfinite(number("threshold")):
            raise BadInput(f"threshold: expected a finite number, got {h['threshold']!r}")
        if not 0 < number("trade_frac") <= 1:
            raise BadInput(f"trade_frac: expected a fraction in (0, 1], got {h['trade_frac']!r}")
        integer("max_iter", 1)
        integer("max_evals", 1, optional=True)
        integer("trades", 0, optional=True)
        integer("alternatives", 0, optional=True)
        lat = h["lattice"]
        if lat is not None:
            arr = np.atleast_1d(np.asarray(lat, dtype=object))
            if arr.ndim != 1 or not all(
                isinstance(v, (int, np.integer)) and not isinstance(v, bool) and v >= 2
                for v in arr
            ):
                raise BadInput(
                    f"lattice: expected an integer >= 2 (cells per dim) or one per dim, got {lat!r}"
                )
    if float(h["fd_step"]) >= 0.5:
        raise BadInput(
            f"fd_step: expected a fraction of the domain width < 0.5, got {h['fd_step']}"
        )
    return h


class RobustRegion(Estimator):
    """Estimator-style interface: ``RobustRegion(method, variant, **hyper).run(...)``.

    scikit-learn's rules (`robustlens.estimator.Estimator`): the constructor stores its
    arguments as given; `run` checks them (`check`: an unknown method / variant, a
    hyper-parameter the variant does not have or a bad value raise `BadInput` naming it);
    `get_params` / `set_params` read and change them.  A hyper-parameter left at None takes the variant's default
    (`robustlens.regions.params`).  After `run`, ``result_`` holds the `RegionResult`.
    """

    def __init__(
        self,
        method: str = "oir_b",
        variant: str = "ours",
        *,
        threshold: float | None = None,
        max_evals: int | None = None,
        max_iter: int | None = None,
        lattice: int | list[int] | None = None,
        xtol: float | None = None,
        fd_step: float | None = None,
        trades: int | None = None,
        trade_frac: float | None = None,
        alternatives: int | None = None,
        lr: float | None = None,
        alpha: float | None = None,
        beta: float | None = None,
        reg: float | None = None,
        n_iter: int | None = None,
        start_halfwidth: float | None = None,
        periodic: Any = None,
        grow_tol: float | None = None,
    ) -> None:
        self.method = method
        self.variant = variant
        self.threshold = threshold
        self.max_evals = max_evals
        self.max_iter = max_iter
        self.lattice = lattice
        self.xtol = xtol
        self.fd_step = fd_step
        self.trades = trades
        self.trade_frac = trade_frac
        self.alternatives = alternatives
        self.lr = lr
        self.alpha = alpha
        self.beta = beta
        self.reg = reg
        self.n_iter = n_iter
        self.start_halfwidth = start_halfwidth
        self.periodic = periodic
        self.grow_tol = grow_tol
        self.result_: RegionResult | None = None

    def check(self) -> dict[str, Any]:
        """The hyper-parameters as the variant uses them (defaults filled in); BadInput
        for a bad method, variant or hyper-parameter."""
        if self.method not in METHODS:
            raise BadInput(
                f": unknown method {self.method!r}; expected one of {', '.join(METHODS)}",
                param="method")
        if self.variant not in VARIANTS:
            raise BadInput(
                f": unknown variant {self.variant!r}; expected one of "
                f"{', '.join(VARIANTS)}", param="variant")
        given = {k: getattr(self, k) for k in HYPER_NAMES if getattr(self, k) is not None}
        return check_hyper(self.variant, given)

    def run(
        self,
        score_fn: ScoreFn,
        x0: Sequence[float] | np.ndarray,
        domain: Any,
        grad_fn: GradFn | None = None,
    ) -> RobustRegion:
        if not callable(score_fn):
            raise BadInput(f"score_fn: expected a callable, got {type(score_fn).__name__}")
        if grad_fn is not None and not callable(grad_fn):
            raise BadInput(f"grad_fn: expected a callable or None, got {type(grad_fn).__name__}")
        h = self.check()
        x0a = _as_vector("x0", x0)
        n = x0a.size
        lower, upper = parse_domain(domain, n)
        outside = (x0a < lower) | (x0a > upper)
        if outside.any():
            i = int(np.flatnonzero(outside)[0])
            raise BadInput(
                f"x0: start point {x0a.tolist()} is outside the domain in dim {i} "
                f"({x0a[i]} not in [{lower[i]}, {upper[i]}])"
            )
        periodic = _parse_periodic(h["periodic"], n)
        ev = Evaluator(score_fn, grad_fn, lower, upper, periodic, cache=self.variant == "ours")
        if self.variant == "paper":
            raw = run_paper(ev, x0a, lower, upper, self.method, h)
            eff_periodic = np.zeros(n, bool)
            threshold = None
        else:
            raw = run_ours(ev, x0a, lower, upper, periodic, self.method, h)
            eff_periodic = periodic
            threshold = float(h["threshold"])
        lo, hi = raw["lower"], raw["upper"]
        volume = box_volume(lo, hi, lower, upper, eff_periodic)
        ratio = volume / float(np.prod(upper - lower))
        grew = bool(ratio ** (1.0 / n) > float(h["grow_tol"]))
        hyper_out = {k: v for k, v in h.items() if k != "periodic"}
        self.result_ = RegionResult(
            lower=lo,
            upper=hi,
            volume=volume,
            n_evaluations=ev.n_evaluations,
            n_calls=ev.n_calls,
            trace=raw["trace"],
            converged=bool(raw["converged"]),
            grew=grew,
            method=self.method,
            variant=self.variant,
            x0=x0a,
            domain_lower=lower,
            domain_upper=upper,
            wrapped=raw["wrapped"],
            periodic=eff_periodic,
            n_grad_calls=ev.n_grad_calls,
            threshold=threshold,
            stop_reason=raw["stop_reason"],
            hyper=hyper_out,
            resolution=raw.get("resolution"),
            worst_score=raw.get("worst_score"),
            info={
                k: raw[k]
                for k in ("n_trades", "n_trades_accepted", "n_alternatives", "certified",
                          "max_evals", "lattice")
                if k in raw
            },
        )
        return self


def find_region(
    score_fn: ScoreFn,
    x0: Sequence[float] | np.ndarray,
    domain: Any,
    method: str = "oir_b",
    variant: str = "ours",
    grad_fn: GradFn | None = None,
    **hyper: Any,
) -> RegionResult:
    """Grow a robust region (axis-aligned box) around ``x0``; see the module docstring.

    Raises `robustlens.errors.BadInput` for a start point outside the domain,
    mismatched dimensions, ``lower >= upper``, an unknown method / variant /
    hyper-parameter, or a ``score_fn`` that returns the wrong shape or non-finite
    scores.
    """
    unknown = sorted(set(hyper) - set(HYPER_NAMES))
    if unknown:
        raise BadInput(
            f"unknown hyper-parameter(s) {', '.join(unknown)} for variant {variant!r}; "
            f"expected some of {', '.join(sorted(defaults(variant)))}")
    est = RobustRegion(method=method, variant=variant, **hyper).run(score_fn, x0, domain, grad_fn)
    assert est.result_ is not None
    return est.result_
