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
from dataclasses import dataclass, field, replace
from types import MappingProxyType
from typing import Any, Self

import numpy as np

from robustlens.errors import BadInput, ref
from robustlens.regions.core import METHODS, VARIANTS, find_region
from robustlens.regions.criterion import check_criterion, margin_values, search_threshold
from robustlens.regions.ground_truth import ground_truth_box, iou, map_grid
from robustlens.regions.result import RegionResult
from robustlens.regions.srvr import PAPER_DOMAIN, PAPER_STARTS

__all__ = [
    "DEFAULT_PARAMS",
    "SceneScore",
    "SEARCH_FIELDS",
    "SceneSearch",
    "check_names",
    "check_region_method",
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


#: where oir_w's score gradients come from: finite differences of the moderngl renderer,
#: or the differentiable Mitsuba 3 renderer (`robustlens.regions.whitebox`)
GRADS = ("fd", "mitsuba")


def check_grad(grad: str, param: str = "grad") -> str:
    """``grad`` if known (fd, mitsuba), else BadInput with ``param``."""
    if grad not in GRADS:
        raise BadInput(f"{grad!r}: unknown gradient source; expected one of "
                       f"{', '.join(GRADS)}", param=param)
    return grad


def check_region_method(method: str, param: str = "method") -> str:
    """``method`` if known (naive, oir_b, oir_w), else BadInput with ``param``."""
    if method not in METHODS:
        raise BadInput(f"{method!r}: unknown method; expected one of {', '.join(METHODS)}",
                       param=param)
    return method


def check_variant(variant: str, param: str = "variant") -> str:
    """``variant`` if known (ours, paper), else BadInput with ``param``."""
    if variant not in VARIANTS:
        raise BadInput(f"{variant!r}: unknown variant; expected one of {', '.join(VARIANTS)}",
                       param=param)
    return variant


def check_names(names: Sequence[str], param: str = "names") -> list[str]:
    """Registered scene parameter names, each once (BadInput with ``param`` otherwise)."""
    from robustlens.render.scene import get_parameter

    names = [str(n) for n in names]
    if not names:
        raise BadInput(": give at least one scene parameter", param=param)
    for n in names:
        get_parameter(n, param)
    dup = sorted({n for n in names if names.count(n) > 1})
    if dup:
        raise BadInput(f"{dup[0]!r}: given more than once", param=param)
    return names


def scene_domain(
    names: Sequence[str],
    overrides: Mapping[str, tuple[float, float]] | None = None,
    param: str = "domain",
    names_param: str = "names",
) -> tuple[np.ndarray, np.ndarray]:
    """Domain ``(lower, upper)`` for the parameters ``names``.

    Defaults: the paper's ranges for azimuth / elevation, the registry range otherwise;
    ``overrides`` maps a name to ``(low, high)``.  Raises BadInput (with ``param``, and
    ``names_param`` for the parameter names) for an unknown name, a name not in ``names``,
    ``low >= high``, or bounds outside the parameter's valid range (a periodic parameter
    may be shifted, e.g. -180:180, but may not span more than its period).
    """
    from robustlens.render.scene import PARAMETERS

    names = check_names(names, names_param)
    overrides = dict(overrides or {})
    for k in overrides:
        if k not in names:
            raise BadInput(f"{k}: not a searched parameter ({ref(names_param)} "
                           f"{', '.join(names)})", param=param)
    lower, upper = np.empty(len(names)), np.empty(len(names))
    paper = dict(zip(DEFAULT_PARAMS, zip(*PAPER_DOMAIN, strict=True), strict=True))
    for i, n in enumerate(names):
        p = PARAMETERS[n]
        if n in overrides:
            lo, hi = (float(v) for v in overrides[n])
            given = f"{n}={_fmt(lo)}:{_fmt(hi)}"
            if not (np.isfinite(lo) and np.isfinite(hi)):
                raise BadInput(f"{given}: bounds must be finite", param=param)
            if lo >= hi:
                raise BadInput(f"{given}: lower bound must be < upper bound", param=param)
            eps = 1e-9 * max(1.0, p.high - p.low)
            if p.periodic:
                if hi - lo > p.high - p.low + eps:
                    raise BadInput(
                        f"{given}: spans more than the period {_fmt(p.high - p.low)} {p.unit}",
                        param=param)
            elif lo < p.low - eps or hi > p.high + eps:
                raise BadInput(
                    f"{given}: outside the valid range [{_fmt(p.low)}, {_fmt(p.high)}] "
                    f"{p.unit}".rstrip(), param=param)
        elif n in paper:
            lo, hi = (float(v) for v in paper[n])
        else:
            lo, hi = p.low, p.high
        lower[i], upper[i] = lo, hi
    return lower, upper


def scene_periodic(names: Sequence[str], domain: tuple[np.ndarray, np.ndarray]) -> np.ndarray:
    """Bool mask: periodic in the registry and the domain spans exactly one period.  The
    one rule; a `SceneSearch` holds its result."""
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
    param: str = "starts",
    allow_none: bool = False,
) -> np.ndarray:
    """Validate start points (sequences of numbers) -> array ``(k, n)``."""
    lower, upper = domain
    out = []
    for st in starts:
        v = np.atleast_1d(np.asarray(st, dtype=np.float64))
        if v.shape != (len(names),):
            text = ",".join(_fmt(x) for x in v.ravel())
            raise BadInput(f"{text}: has {v.size} value(s) but {len(names)} parameter(s) are "
                           f"searched ({', '.join(names)})", param=param)
        text = ",".join(_fmt(x) for x in v)
        if not np.isfinite(v).all():
            raise BadInput(f"{text}: values must be finite", param=param)
        for i, n in enumerate(names):
            if not lower[i] <= v[i] <= upper[i]:
                raise BadInput(f"{text}: {n}={_fmt(v[i])} is outside the domain "
                               f"[{_fmt(lower[i])}, {_fmt(upper[i])}]", param=param)
        out.append(v)
    if not out:
        if allow_none:
            return np.zeros((0, len(names)))
        raise BadInput(": give at least one start point", param=param)
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
        raise BadInput(f"{max_evals}: expected an integer >= 1", param="max_evals")
    if variant == "ours":
        return {"max_evals": int(max_evals)}
    fd = check_grad(grad) == "fd"
    per_iter = {"naive": 2**n, "oir_b": 2 * 2**n,
                "oir_w": 2**n * (1 + (2 * n if fd else n))}[method]
    return {"n_iter": max(1, int(max_evals) // per_iter)}


def _frozen(a: np.ndarray) -> np.ndarray:
    a = np.array(a, copy=True)
    a.flags.writeable = False
    return a


#: `SceneSearch.create` keywords (the rest of a ``regions_for_mesh`` call are hyper-parameters)
SEARCH_FIELDS = ("names", "domain", "starts", "fixed", "methods", "variant", "criterion",
                 "threshold", "max_evals", "grad")


@dataclass(frozen=True)
class SceneSearch:
    """One search over scene parameters, validated once (`create`): what the CLI, the
    study and the executors take, and what writes the ``regions.json`` header.

    ``names``: the searched parameters; ``lower`` / ``upper``: the domain; ``periodic``:
    the dims searched periodically (`scene_periodic`); ``starts`` ``(k, n)``; ``fixed``:
    other scene parameters held fixed; ``methods``; ``variant``; ``criterion`` (score or
    top1) and the ``threshold`` as given; ``max_evals``; ``grad`` (fd or mitsuba); ``hyper``:
    further hyper-parameters of the variant (`robustlens.regions.params`).  Arrays are
    read-only.  BadInput names the library parameter (``names``, ``domain``, ``starts``,
    ``fixed``, ``methods``, ...); each front end says it its own way.
    """

    names: tuple[str, ...]
    lower: np.ndarray
    upper: np.ndarray
    periodic: np.ndarray
    starts: np.ndarray
    fixed: Mapping[str, float] = field(default_factory=dict)
    methods: tuple[str, ...] = ("oir_b",)
    variant: str = "ours"
    criterion: str = "score"
    threshold: float = 0.5
    max_evals: int | None = None
    grad: str = "fd"
    hyper: Mapping[str, Any] = field(default_factory=dict)

    @classmethod
    def create(
        cls,
        names: Sequence[str] | None = None,
        domain: Any = None,
        starts: Any = None,
        fixed: Mapping[str, float] | None = None,
        methods: Sequence[str] | str = ("oir_b",),
        variant: str = "ours",
        criterion: str = "score",
        threshold: float = 0.5,
        max_evals: int | None = None,
        grad: str = "fd",
        hyper: Mapping[str, Any] | None = None,
        *,
        require_starts: bool = True,
    ) -> SceneSearch:
        """Validate everything (no model needed).  ``domain``: ``{name: (low, high)}``
        overrides of the defaults (paper's ranges for azimuth / elevation, else the
        registry's), or ``(lower, upper)`` arrays in the order of ``names``.  ``starts``:
        None -> the paper's four when ``names`` are azimuth, elevation (required
        otherwise, unless ``require_starts`` is False: a study with automatic starts)."""
        import math

        from robustlens.regions.core import HYPER_NAMES, check_hyper
        from robustlens.render.scene import check_values

        nm = check_names(list(names) if names is not None else list(DEFAULT_PARAMS))
        if domain is None:
            over: dict[str, tuple[float, float]] = {}
        elif isinstance(domain, Mapping):
            over = {str(k): (float(v[0]), float(v[1])) for k, v in domain.items()}
        else:
            try:
                lo, hi = (np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in domain)
            except (TypeError, ValueError):
                raise BadInput(": expected {name: (low, high)} or (lower, upper) arrays",
                               param="domain") from None
            if lo.shape != (len(nm),) or hi.shape != (len(nm),):
                raise BadInput(f": expected {len(nm)} bounds per side for {', '.join(nm)}",
                               param="domain")
            over = {n: (float(lo[i]), float(hi[i])) for i, n in enumerate(nm)}
        dom = scene_domain(nm, over)
        if starts is None:
            if tuple(nm) == DEFAULT_PARAMS:
                starts = PAPER_STARTS
            elif require_starts:
                raise BadInput(f": required when {ref('names')} is not "
                               f"{','.join(DEFAULT_PARAMS)} (one value per parameter: "
                               f"{', '.join(nm)})", param="starts")
            else:
                starts = []
        pts = check_starts(starts, nm, dom, allow_none=not require_starts)
        fx = {str(k): float(v) for k, v in dict(fixed or {}).items()}
        for k, v in fx.items():
            check_values(k, np.array([v]), "fixed")
        clash = sorted(set(fx) & set(nm))
        if clash:
            raise BadInput(f"{clash[0]}: also searched ({ref('names')}); use one or the other",
                           param="fixed")
        ms = (methods,) if isinstance(methods, str) else tuple(methods)
        if not ms:
            raise BadInput(": give at least one region method", param="methods")
        for m in ms:
            check_region_method(m, "methods")
        check_variant(variant)
        check_criterion(criterion)
        if isinstance(threshold, bool) or not isinstance(threshold, (int, float)) \
                or not math.isfinite(threshold) or not 0 < threshold < 1:
            raise BadInput(f"{threshold}: expected a number in (0, 1)", param="threshold")
        if max_evals is not None:
            max_evals_hyper(variant, ms[0], len(nm), max_evals, "fd")  # checks it
        check_grad(grad)
        extra = dict(hyper or {})
        unknown = sorted(set(extra) - set(HYPER_NAMES))
        if unknown:
            raise BadInput(f"unknown hyper-parameter(s) {', '.join(unknown)} for variant "
                           f"{variant!r}")
        check_hyper(variant, extra)
        return cls(names=tuple(nm), lower=_frozen(dom[0]), upper=_frozen(dom[1]),
                   periodic=_frozen(scene_periodic(nm, dom)), starts=_frozen(pts),
                   fixed=MappingProxyType(fx), methods=ms, variant=variant,
                   criterion=criterion, threshold=float(threshold),
                   max_evals=None if max_evals is None else int(max_evals), grad=grad,
                   hyper=MappingProxyType(extra))

    @property
    def n(self) -> int:
        return len(self.names)

    @property
    def domain(self) -> tuple[np.ndarray, np.ndarray]:
        return self.lower, self.upper

    @property
    def search_threshold(self) -> float:
        """The threshold the search keeps under the criterion (`criterion.search_threshold`)."""
        return search_threshold(self.criterion, self.threshold)

    def with_starts(self, starts: Any) -> SceneSearch:
        """The same search from other start points (checked against the domain)."""
        return replace(self, starts=_frozen(check_starts(starts, self.names, self.domain)))

    def hyper_for(self, method: str) -> dict[str, Any]:
        """``find_region`` hyper-parameters of one method: the extra ones, the threshold
        (variant ours) and the evaluation cap (`max_evals_hyper`)."""
        check_region_method(method)
        h = dict(self.hyper)
        if self.variant == "ours":
            h["threshold"] = self.search_threshold
        return h | max_evals_hyper(self.variant, method, self.n, self.max_evals, self.grad)

    def header(self, method: str) -> dict[str, Any]:
        """The search's fields of a ``regions.json`` header (`records.RegionsFile`)."""
        return {"method": method, "variant": self.variant, "params": list(self.names),
                "domain": {n: [float(self.lower[i]), float(self.upper[i])]
                           for i, n in enumerate(self.names)},
                "periodic": [n for n, p in zip(self.names, self.periodic, strict=True) if p],
                "threshold": self.search_threshold, "criterion": self.criterion}


# ------------------------------------------------------------------ score function
class PoseScore:
    """What every batched score function over scene parameters shares (`SceneScore`, and
    `robustlens.regions.whitebox.WhiteBoxScore`): the searched names, the domain (default:
    the registry's ranges) and its periodic dims, the fixed parameters checked against
    the searched ones, points clamped to the domain, non-finite scores reported as
    BadInput naming the model, and the context-manager protocol (``close`` on exit)."""

    names: list[str]
    lower: np.ndarray
    upper: np.ndarray
    periodic: np.ndarray
    fixed: dict[str, float]
    criterion: str
    spec: str

    def _setup(self, classifier: Any, names: Sequence[str],
               domain: tuple[np.ndarray, np.ndarray] | None,
               fixed: Mapping[str, float] | None, criterion: str) -> None:
        self.criterion = check_criterion(criterion)
        self.names = check_names(names)
        self.fixed = dict(fixed or {})
        clash = sorted(set(self.fixed) & set(self.names))
        if clash:
            raise BadInput(f"{clash[0]}: also searched ({ref('names')}); use one or the other",
                           param="fixed")
        if domain is None:
            from robustlens.render.scene import get_parameter

            ps = [get_parameter(n) for n in self.names]
            domain = (np.array([p.low for p in ps]), np.array([p.high for p in ps]))
        self.lower = np.asarray(domain[0], dtype=np.float64)
        self.upper = np.asarray(domain[1], dtype=np.float64)
        self.periodic = scene_periodic(self.names, (self.lower, self.upper))
        self.spec = str(getattr(classifier, "spec", "model"))

    def _points(self, points: np.ndarray, wrap: bool = False) -> np.ndarray:
        """``points`` (N, n) as float64, non-periodic coordinates clamped to the domain
        (the reference OIR_B rules evaluate outer corners past the domain edge); with
        ``wrap`` periodic ones are brought into it too."""
        x = np.array(points, dtype=np.float64, copy=True)
        if x.ndim != 2 or x.shape[1] != len(self.names):
            raise BadInput(f"points: expected shape (N, {len(self.names)}), got {x.shape}")
        keep = ~self.periodic
        x[:, keep] = np.clip(x[:, keep], self.lower[keep], self.upper[keep])
        if wrap:
            per = self.periodic
            x[:, per] = self.lower[per] + np.mod(x[:, per] - self.lower[per],
                                                 (self.upper - self.lower)[per])
        return x

    def _finite(self, s: np.ndarray, x: np.ndarray) -> np.ndarray:
        """``s``, or BadInput naming the model and the first pose of ``x`` where it is not
        finite."""
        bad = ~np.isfinite(s)
        if bad.any():
            i = int(np.flatnonzero(bad)[0])
            at = ", ".join(f"{n}={_fmt(v)}" for n, v in zip(self.names, x[i], strict=True))
            raise BadInput(f"{self.spec}: produced non-finite scores at {int(bad.sum())} "
                           f"pose(s), first at {at}", param="classifier")
        return s

    def close(self) -> None:  # pragma: no cover - overridden
        pass

    def __enter__(self) -> Self:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


class SceneScore(PoseScore):
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

        self._setup(classifier, names, domain, fixed, criterion)
        self.render_score = RenderScore(
            classifier, mesh, class_id, self.names, self.fixed, renderer, batch_size
        )

    @property
    def n_calls(self) -> int:
        return self.render_score.n_calls_

    @property
    def n_evaluations(self) -> int:
        return self.render_score.n_evaluations_

    def __call__(self, points: np.ndarray) -> np.ndarray:
        x = self._points(points)
        score, _, margin = self.render_score.outputs(x)
        return self._finite(score if self.criterion == "score" else margin_values(margin), x)

    def close(self) -> None:
        self.render_score.close()


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
    check_region_method(method)
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
    search: SceneSearch | None = None,
    method: str | None = None,
    renderer: Any = None,
    *,
    batch_size: int = 32,
    on_result: ResultCallback | None = None,
    **spec: Any,
) -> list[RegionResult]:
    """Robust regions of ``class_id`` on ``mesh`` for ``classifier``, one per start point
    of ``search`` (a `SceneSearch`; without one, it is made from the keywords ``names``,
    ``domain``, ``starts``, ``fixed``, ``variant``, ``criterion``, ``threshold``,
    ``max_evals``, ``grad`` and any further hyper-parameter, e.g. ``n_iter``).  ``method``:
    one of the search's methods (default: its first).  The renderer defaults to one at the
    model's input size.  Periodic dims, the threshold under the criterion and the
    evaluation cap all come from the search.
    """
    if search is None:
        fields_ = {k: spec.pop(k) for k in list(spec) if k in SEARCH_FIELDS}
        if method is not None:
            fields_.setdefault("methods", (method,))
        search = SceneSearch.create(**fields_, hyper=spec)
    elif spec:
        raise BadInput(f"unexpected argument(s) {', '.join(sorted(spec))} with a SceneSearch "
                       f"(they belong in it)")
    method = method or search.methods[0]
    with SceneScore(classifier, mesh, class_id, search.names, search.domain, search.fixed,
                    renderer, batch_size, search.criterion) as fn:
        return regions_for_score(fn, search.starts, search.domain, method, search.variant,
                                 periodic=search.periodic, on_result=on_result,
                                 **search.hyper_for(method))


# ------------------------------------------------------------------ maps / ground truth
def map_for_params(
    map_obj: Any,
    names: Sequence[str],
    domain: tuple[np.ndarray, np.ndarray] | None = None,
    param: str = "map",
    periodic: np.ndarray | None = None,
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
            f": map dims ({', '.join(dims) or 'none'}) do not match the searched "
            f"parameters ({ref('names')} {', '.join(names)})", param=param)
    da = da.transpose(*names)
    if domain is not None:
        per = scene_periodic(names, domain) if periodic is None else periodic
        for i, n in enumerate(names):
            if not per[i]:
                c = np.asarray(da.coords[n].values, dtype=np.float64)
                keep = (c >= domain[0][i] - 1e-9) & (c <= domain[1][i] + 1e-9)
                if keep.sum() < 2:
                    raise BadInput(
                        f": fewer than 2 grid values of {n} inside the domain "
                        f"[{_fmt(domain[0][i])}, {_fmt(domain[1][i])}]", param=param)
                da = da.isel({n: np.flatnonzero(keep)})
    try:
        map_grid(da)
    except BadInput as exc:
        raise BadInput(f": {exc}", param=param) from None
    return da


def ground_truth(
    result: RegionResult, map_da: Any, threshold: float, periodic: np.ndarray
) -> tuple[np.ndarray, np.ndarray, float]:
    """(lower, upper, IoU of ``result``) of the map's exact box around ``result.x0``."""
    per = np.asarray(periodic, bool)
    lo, hi = ground_truth_box(map_da, result.x0, threshold, list(np.flatnonzero(per)))
    period = np.where(per, result.domain_upper - result.domain_lower, 0.0)
    return lo, hi, iou((result.lower, result.upper), (lo, hi), period)
