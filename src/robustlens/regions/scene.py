"""Robust regions on real scenes: validation of a search over scene parameters and the
renderer + classifier score function the ``regions`` / ``srvr`` commands and
``robustlens run`` search on.

* `scene_domain`, `scene_periodic`, `check_starts`, `check_method`, `check_variant`:
  validate a search over scene parameters (names from the registry in
  `robustlens.render.scene`).  The default domain is the paper's (azimuth [0, 360]
  periodic, elevation [-10, 90]), and a parameter's registry range otherwise.  A
  parameter is searched periodically when the registry says it is periodic *and* the
  domain spans a full period.
* `SceneScore`: the batched score ``(N, n) -> (N,)`` of a class on a mesh
  (`robustlens.semantic.RenderScore`) under a criterion (`robustlens.regions.criterion`:
  the true-class probability, or ``(1 + margin) / 2`` for ``top1``), with non-periodic
  coordinates clamped to the domain (the reference OIR_B rules evaluate outer corners past the domain edge,
  which a renderer may reject) and non-finite model outputs reported as `BadInput`
  naming the model.
* `regions_for_score` / `regions_for_mesh`: one `RegionResult` per start point
  (``info["wall_s"]`` holds the wall time of each run).
* `map_for_params`, `ground_truth`: compare regions with a dense map's exact box.

Files (``regions.json``, ``srvr_runs.csv``) are `robustlens.regions.records`'; the SRVR
table is `robustlens.regions.srvr`'s.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from typing import Any

import numpy as np

from robustlens.errors import BadInput
from robustlens.regions.core import METHODS, VARIANTS, find_region
from robustlens.regions.criterion import check_criterion, margin_values, search_threshold
from robustlens.regions.ground_truth import _grid, ground_truth_box, iou
from robustlens.regions.result import RegionResult
from robustlens.regions.srvr import PAPER_DOMAIN, PAPER_STARTS

__all__ = [
    "DEFAULT_PARAMS",
    "SceneScore",
    "check_method",
    "check_starts",
    "check_variant",
    "ground_truth",
    "map_for_params",
    "max_evals_hyper",
    "regions_for_mesh",
    "regions_for_score",
    "scene_domain",
    "scene_periodic",
]

#: The paper's semantic parameters, in the order of `PAPER_STARTS` / `PAPER_DOMAIN`.
DEFAULT_PARAMS: tuple[str, str] = ("azimuth", "elevation")

ResultCallback = Callable[[int, RegionResult], None]


# ------------------------------------------------------------------ validation
def _fmt(v: float) -> str:
    return f"{float(v):g}"


def check_method(method: str, flag: str = "--method") -> str:
    """``method`` if known, else BadInput naming ``flag``."""
    if method not in METHODS:
        raise BadInput(f"{flag} {method!r}: unknown method; expected one of {', '.join(METHODS)}")
    return method


def check_variant(variant: str, flag: str = "--variant") -> str:
    """``variant`` if known, else BadInput naming ``flag``."""
    if variant not in VARIANTS:
        raise BadInput(
            f"{flag} {variant!r}: unknown variant; expected one of {', '.join(VARIANTS)}"
        )
    return variant


def _check_names(names: Sequence[str], flag: str = "--param") -> list[str]:
    from robustlens.render.scene import get_parameter

    names = [str(n) for n in names]
    if not names:
        raise BadInput(f"{flag}: give at least one scene parameter")
    for n in names:
        get_parameter(n, flag)
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise BadInput(f"{flag} {dup[0]!r}: given more than once")
    return names


def scene_domain(
    names: Sequence[str],
    overrides: Mapping[str, tuple[float, float]] | None = None,
    flag: str = "--domain",
    names_flag: str = "--param",
) -> tuple[np.ndarray, np.ndarray]:
    """Domain ``(lower, upper)`` for the parameters ``names``.

    Defaults: the paper's ranges for azimuth / elevation, the registry range otherwise;
    ``overrides`` maps a name to ``(low, high)``.  Raises BadInput (naming ``flag``, and
    ``names_flag`` for the parameter names) for an unknown name, a name not in ``names``,
    ``low >= high``, or bounds outside the parameter's valid range (a periodic parameter
    may be shifted, e.g. -180:180, but may not span more than its period).
    """
    from robustlens.render.scene import PARAMETERS

    names = _check_names(names, names_flag)
    overrides = dict(overrides or {})
    for k in overrides:
        if k not in names:
            raise BadInput(
                f"{flag} {k}: not a searched parameter ({names_flag} {', '.join(names)})"
            )
    lower, upper = np.empty(len(names)), np.empty(len(names))
    paper = dict(zip(DEFAULT_PARAMS, zip(*PAPER_DOMAIN, strict=True), strict=True))
    for i, n in enumerate(names):
        p = PARAMETERS[n]
        if n in overrides:
            lo, hi = (float(v) for v in overrides[n])
            given = f"{flag} {n}={_fmt(lo)}:{_fmt(hi)}"
            if not (np.isfinite(lo) and np.isfinite(hi)):
                raise BadInput(f"{given}: bounds must be finite")
            if lo >= hi:
                raise BadInput(f"{given}: lower bound must be < upper bound")
            eps = 1e-9 * max(1.0, p.high - p.low)
            if p.periodic:
                if hi - lo > p.high - p.low + eps:
                    raise BadInput(
                        f"{given}: spans more than the period {_fmt(p.high - p.low)} {p.unit}"
                    )
            elif lo < p.low - eps or hi > p.high + eps:
                raise BadInput(
                    f"{given}: outside the valid range [{_fmt(p.low)}, {_fmt(p.high)}] "
                    f"{p.unit}".rstrip()
                )
        elif n in paper:
            lo, hi = (float(v) for v in paper[n])
        else:
            lo, hi = p.low, p.high
        lower[i], upper[i] = lo, hi
    return lower, upper


def scene_periodic(names: Sequence[str], domain: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Bool mask: periodic in the registry and the domain spans exactly one period."""
    from robustlens.render.scene import PARAMETERS

    lower, upper = domain
    out = np.zeros(len(names), bool)
    for i, n in enumerate(names):
        p = PARAMETERS[n]
        period = p.high - p.low
        out[i] = p.periodic and abs((upper[i] - lower[i]) - period) <= 1e-9 * period
    return out


def check_starts(
    starts: Iterable[Sequence[float] | np.ndarray],
    names: Sequence[str],
    domain: tuple[np.ndarray, np.ndarray],
    flag: str = "--start",
) -> np.ndarray:
    """Validate start points (sequences of numbers) -> array ``(k, n)``."""
    lower, upper = domain
    out = []
    for s in starts:
        v = np.atleast_1d(np.asarray(s, dtype=np.float64))
        if v.shape != (len(names),):
            text = ",".join(_fmt(x) for x in v.ravel())
            raise BadInput(
                f"{flag} {text}: has {v.size} value(s) but {len(names)} parameter(s) are "
                f"searched ({', '.join(names)})"
            )
        text = ",".join(_fmt(x) for x in v)
        if not np.isfinite(v).all():
            raise BadInput(f"{flag} {text}: values must be finite")
        for i, n in enumerate(names):
            if not lower[i] <= v[i] <= upper[i]:
                raise BadInput(
                    f"{flag} {text}: {n}={_fmt(v[i])} is outside the domain "
                    f"[{_fmt(lower[i])}, {_fmt(upper[i])}]"
                )
        out.append(v)
    if not out:
        raise BadInput(f"{flag}: give at least one start point")
    return np.stack(out)


def max_evals_hyper(variant: str, method: str, n: int, max_evals: int | None,
                    grad: str = "fd") -> dict[str, Any]:
    """Hyper-parameters that cap a run at about ``max_evals`` score evaluations.

    "ours": ``max_evals``.  "paper": ``n_iter = max_evals // evaluations per
    iteration`` (naive 2^n, oir_b 2 * 2^n, oir_w 2^n (1 + 2n) with finite differences,
    ``grad="fd"``; 2^n (1 + n) with a ``grad_fn``, ``grad="mitsuba"``: 2^n scores plus
    2^n gradient points counted n evaluations each, as `Evaluator` counts them).
    """
    if max_evals is None:
        return {}
    if isinstance(max_evals, bool) or int(max_evals) != max_evals or max_evals < 1:
        raise BadInput(f"--max-evals {max_evals}: expected an integer >= 1")
    if variant == "ours":
        return {"max_evals": int(max_evals)}
    from robustlens.regions.whitebox import check_grad

    fd = check_grad(grad) == "fd"
    per_iter = {"naive": 2**n, "oir_b": 2 * 2**n,
                "oir_w": 2**n * (1 + (2 * n if fd else n))}[method]
    return {"n_iter": max(1, int(max_evals) // per_iter)}


# ------------------------------------------------------------------ score function
class SceneScore:
    """Batched score of ``class_id`` on ``mesh`` over the parameters ``names``.

    Wraps `robustlens.semantic.RenderScore`: non-periodic coordinates are clamped to
    ``domain`` before rendering, and non-finite scores raise BadInput naming the
    model.  Use as a context manager (or call `close`) to stop its worker thread.
    """

    def __init__(
        self,
        classifier: Any,
        mesh: Any,
        class_id: int,
        names: Sequence[str],
        domain: tuple[np.ndarray, np.ndarray],
        fixed: Mapping[str, float] | None = None,
        renderer: Any = None,
        batch_size: int = 32,
        criterion: str = "score",
    ) -> None:
        from robustlens.semantic import RenderScore

        self.criterion = check_criterion(criterion)
        self.names = _check_names(names)
        self.lower = np.asarray(domain[0], dtype=np.float64)
        self.upper = np.asarray(domain[1], dtype=np.float64)
        self.periodic = scene_periodic(self.names, (self.lower, self.upper))
        self.spec = str(getattr(classifier, "spec", "model"))
        clash = sorted(set(fixed or {}) & set(self.names))
        if clash:
            raise BadInput(f"--set {clash[0]}: also searched (--param); use one or the other")
        self.render_score = RenderScore(
            classifier, mesh, class_id, self.names, fixed, renderer, batch_size
        )

    @property
    def n_calls(self) -> int:
        return self.render_score.n_calls_

    @property
    def n_evaluations(self) -> int:
        return self.render_score.n_evaluations_

    def __call__(self, points: np.ndarray) -> np.ndarray:
        x = np.array(points, dtype=np.float64, copy=True)
        if x.ndim != 2 or x.shape[1] != len(self.names):
            raise BadInput(f"points: expected shape (N, {len(self.names)}), got {x.shape}")
        keep = ~self.periodic
        x[:, keep] = np.clip(x[:, keep], self.lower[keep], self.upper[keep])
        score, _, margin = self.render_score.outputs(x)
        s = score if self.criterion == "score" else margin_values(margin)
        bad = ~np.isfinite(s)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            at = ", ".join(f"{n}={_fmt(v)}" for n, v in zip(self.names, x[i], strict=True))
            raise BadInput(
                f"--model {self.spec}: produced non-finite scores at {int(bad.sum())} pose(s), "
                f"first at {at}"
            )
        return s

    def close(self) -> None:
        self.render_score.close()

    def __enter__(self) -> SceneScore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


# ------------------------------------------------------------------ region searches
def regions_for_score(
    score_fn: Callable[[np.ndarray], np.ndarray],
    starts: np.ndarray | Sequence[Sequence[float]],
    domain: Any,
    method: str = "oir_b",
    variant: str = "ours",
    *,
    periodic: Any = None,
    grad_fn: Callable[[np.ndarray], np.ndarray] | None = None,
    on_result: ResultCallback | None = None,
    **hyper: Any,
) -> list[RegionResult]:
    """One `RegionResult` per start point of ``starts`` ``(k, n)`` (see `find_region`).

    ``on_result(k, result)`` is called after each run; ``result.info["wall_s"]`` is
    the run's wall time in seconds.
    """
    check_method(method)
    check_variant(variant)
    out: list[RegionResult] = []
    for k, x0 in enumerate(np.atleast_2d(np.asarray(starts, dtype=np.float64))):
        t0 = time.perf_counter()
        res = find_region(
            score_fn, x0, domain, method, variant, grad_fn=grad_fn, periodic=periodic, **hyper
        )
        res.info["wall_s"] = time.perf_counter() - t0
        out.append(res)
        if on_result is not None:
            on_result(k, res)
    return out


def regions_for_mesh(
    classifier: Any,
    mesh: Any,
    class_id: int,
    starts: Any = PAPER_STARTS,
    domain: Any = PAPER_DOMAIN,
    names: Sequence[str] = DEFAULT_PARAMS,
    method: str = "oir_b",
    variant: str = "ours",
    fixed: Mapping[str, float] | None = None,
    renderer: Any = None,
    *,
    batch_size: int = 32,
    criterion: str = "score",
    on_result: ResultCallback | None = None,
    **hyper: Any,
) -> list[RegionResult]:
    """Robust regions of ``class_id`` on ``mesh`` for ``classifier``, one per start point.

    ``domain``: ``(lower, upper)`` in the order of ``names`` (validated like
    `scene_domain`); azimuth-like parameters whose domain spans a full period are
    searched periodically.  The renderer defaults to one at the model's input size.
    ``criterion``: ``score`` (probability >= ``threshold``, the paper's) or ``top1`` (the
    class is the top-1; ``threshold`` does not apply), see `robustlens.regions.criterion`.
    """
    names = _check_names(names)
    lo, hi = (np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in domain)
    if lo.shape != (len(names),) or hi.shape != (len(names),):
        raise BadInput(f"domain: expected {len(names)} bounds per side for {', '.join(names)}")
    dom = scene_domain(names, {n: (lo[i], hi[i]) for i, n in enumerate(names)}, flag="domain")
    pts = check_starts(starts, names, dom, flag="start")
    check_method(method)
    check_variant(variant)
    if variant == "ours":  # the paper's rules have no threshold
        hyper["threshold"] = search_threshold(criterion, hyper.get("threshold", 0.5))
    with SceneScore(classifier, mesh, class_id, names, dom, fixed, renderer, batch_size,
                    criterion) as fn:
        return regions_for_score(
            fn, pts, dom, method, variant, periodic=fn.periodic, on_result=on_result, **hyper
        )


# ------------------------------------------------------------------ maps / ground truth
def map_for_params(
    map_obj: Any,
    names: Sequence[str],
    domain: tuple[np.ndarray, np.ndarray] | None = None,
    flag: str = "--map",
) -> Any:
    """The ``score`` DataArray of a map (Dataset or DataArray) with dims ordered as ``names``.

    With ``domain``, non-periodic dims (see `scene_periodic`) are cropped to it, so
    the ground truth lives on the searched domain.  BadInput when the map's dims are
    not exactly the searched parameters or fewer than 2 grid values per dim remain.
    """
    da = map_obj["score"] if hasattr(map_obj, "data_vars") else map_obj
    dims = [str(d) for d in getattr(da, "dims", ())]
    if sorted(dims) != sorted(names):
        raise BadInput(
            f"{flag}: map dims ({', '.join(dims) or 'none'}) do not match the searched "
            f"parameters (--param {', '.join(names)})"
        )
    da = da.transpose(*names)
    if domain is not None:
        per = scene_periodic(names, domain)
        for i, n in enumerate(names):
            if not per[i]:
                c = np.asarray(da.coords[n].values, dtype=np.float64)
                keep = (c >= domain[0][i] - 1e-9) & (c <= domain[1][i] + 1e-9)
                if keep.sum() < 2:
                    raise BadInput(
                        f"{flag}: fewer than 2 grid values of {n} inside the domain "
                        f"[{_fmt(domain[0][i])}, {_fmt(domain[1][i])}]"
                    )
                da = da.isel({n: np.flatnonzero(keep)})
    try:
        _grid(da)
    except BadInput as exc:
        raise BadInput(f"{flag}: {exc}") from None
    return da


def ground_truth(
    result: RegionResult, map_da: Any, threshold: float, periodic: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """(lower, upper, IoU of ``result``) of the map's exact box around ``result.x0``."""
    per = np.asarray(periodic, bool)
    lo, hi = ground_truth_box(map_da, result.x0, threshold, list(np.flatnonzero(per)))
    period = np.where(per, result.domain_upper - result.domain_lower, 0.0)
    return lo, hi, iou((result.lower, result.upper), (lo, hi), period)
