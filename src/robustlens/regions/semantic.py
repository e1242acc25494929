"""Robust regions on real scenes: renderer + classifier score functions, records, SRVR tables.

The pieces the ``regions`` / ``srvr`` commands (and ``robustlens run``) share:

* `scene_domain`, `scene_periodic`, `check_starts`: validate a search over scene
  parameters (names from the registry in `robustlens.render.scene`).  The default
  domain is the paper's (azimuth [0, 360] periodic, elevation [-10, 90]), and a
  parameter's registry range otherwise.  A parameter is searched periodically when
  the registry says it is periodic *and* the domain spans a full period.
* `SceneScore`: the batched score ``(N, n) -> (N,)`` of a class on a mesh
  (`robustlens.semantic.RenderScore`), with non-periodic coordinates clamped to the
  domain (the reference OIR_B rules evaluate outer corners past the domain edge,
  which a renderer may reject) and non-finite model outputs reported as `BadInput`
  naming the model.
* `regions_for_score` / `regions_for_mesh`: one `RegionResult` per start point
  (``info["wall_s"]`` holds the wall time of each run).
* `map_for_params`, `ground_truth`: compare regions with a dense map's exact box.
* `region_record`, `save_regions`: the ``regions.json`` records, per-start traces and
  the figure, written atomically.
* `run_record`, `srvr_table`, `plot_srvr`: one row per run and the SRVR ranking with a
  bootstrap CI (a cluster bootstrap over meshes when there are several).
"""

from __future__ import annotations

import json
import time
from collections.abc import Callable, Iterable, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np

from robustlens.errors import BadInput
from robustlens.io import atomic_path, write_text_atomic
from robustlens.regions.core import METHODS, VARIANTS, find_region
from robustlens.regions.ground_truth import _grid, ground_truth_box, iou
from robustlens.regions.result import RegionResult
from robustlens.regions.srvr import PAPER_DOMAIN, PAPER_STARTS, srvr

__all__ = [
    "DEFAULT_PARAMS",
    "SceneScore",
    "check_method",
    "check_starts",
    "check_variant",
    "ground_truth",
    "map_for_params",
    "max_evals_hyper",
    "plot_srvr",
    "region_record",
    "regions_for_mesh",
    "regions_for_score",
    "run_record",
    "saved_run_record",
    "save_regions",
    "save_srvr",
    "scene_domain",
    "scene_periodic",
    "srvr_table",
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
) -> tuple[np.ndarray, np.ndarray]:
    """Domain ``(lower, upper)`` for the parameters ``names``.

    Defaults: the paper's ranges for azimuth / elevation, the registry range otherwise;
    ``overrides`` maps a name to ``(low, high)``.  Raises BadInput (naming ``flag``) for
    an unknown name, a name not in ``names``, ``low >= high``, or bounds outside the
    parameter's valid range (a periodic parameter may be shifted, e.g. -180:180, but
    may not span more than its period).
    """
    from robustlens.render.scene import PARAMETERS

    names = _check_names(names)
    overrides = dict(overrides or {})
    for k in overrides:
        if k not in names:
            raise BadInput(
                f"{flag} {k}: not a searched parameter (--param {', '.join(names)})"
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


def parse_domain_specs(items: Iterable[str], flag: str = "--domain") -> dict[str, tuple[float, float]]:
    """Parse ``["azimuth=0:360", "elevation=-10:90"]`` into ``{name: (low, high)}``."""
    out: dict[str, tuple[float, float]] = {}
    for item in items:
        name, sep, spec = item.partition("=")
        name = name.strip()
        parts = spec.split(":")
        if not sep or not name or len(parts) != 2:
            raise BadInput(f"{flag} {item!r}: expected NAME=LOW:HIGH, e.g. elevation=-10:90")
        try:
            lo, hi = float(parts[0]), float(parts[1])
        except ValueError:
            raise BadInput(f"{flag} {item!r}: expected numbers in NAME=LOW:HIGH") from None
        if name in out:
            raise BadInput(f"{flag} {name}: given more than once")
        out[name] = (lo, hi)
    return out


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


def parse_start(text: str, names: Sequence[str], flag: str = "--start") -> np.ndarray:
    """Parse ``"130,30"`` into a float vector with one value per parameter."""
    try:
        vals = [float(v) for v in text.split(",")]
    except ValueError:
        raise BadInput(
            f"{flag} {text!r}: expected {len(names)} comma-separated numbers ({', '.join(names)})"
        ) from None
    if len(vals) != len(names):
        raise BadInput(
            f"{flag} {text}: has {len(vals)} value(s) but {len(names)} parameter(s) are "
            f"searched ({', '.join(names)})"
        )
    return np.asarray(vals, dtype=np.float64)


def check_starts(
    starts: Iterable[Sequence[float] | np.ndarray | str],
    names: Sequence[str],
    domain: tuple[np.ndarray, np.ndarray],
    flag: str = "--start",
) -> np.ndarray:
    """Validate start points (strings ``"130,30"`` or sequences) -> array ``(k, n)``."""
    lower, upper = domain
    out = []
    for s in starts:
        if isinstance(s, str):
            v = parse_start(s, names, flag)
        else:
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


def max_evals_hyper(variant: str, method: str, n: int, max_evals: int | None) -> dict[str, Any]:
    """Hyper-parameters that cap a run at about ``max_evals`` score evaluations.

    "ours": ``max_evals``.  "paper": ``n_iter = max_evals // evaluations per
    iteration`` (naive 2^n, oir_b 2 * 2^n, oir_w 2^n (1 + 2n) with finite differences).
    """
    if max_evals is None:
        return {}
    if isinstance(max_evals, bool) or int(max_evals) != max_evals or max_evals < 1:
        raise BadInput(f"--max-evals {max_evals}: expected an integer >= 1")
    if variant == "ours":
        return {"max_evals": int(max_evals)}
    per_iter = {"naive": 2**n, "oir_b": 2 * 2**n, "oir_w": 2**n * (1 + 2 * n)}[method]
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
    ) -> None:
        from robustlens.semantic import RenderScore

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
        s = self.render_score(x)
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
    on_result: ResultCallback | None = None,
    **hyper: Any,
) -> list[RegionResult]:
    """Robust regions of ``class_id`` on ``mesh`` for ``classifier``, one per start point.

    ``domain``: ``(lower, upper)`` in the order of ``names`` (validated like
    `scene_domain`); azimuth-like parameters whose domain spans a full period are
    searched periodically.  The renderer defaults to one at the model's input size.
    """
    names = _check_names(names)
    lo, hi = (np.atleast_1d(np.asarray(v, dtype=np.float64)) for v in domain)
    if lo.shape != (len(names),) or hi.shape != (len(names),):
        raise BadInput(f"domain: expected {len(names)} bounds per side for {', '.join(names)}")
    dom = scene_domain(names, {n: (lo[i], hi[i]) for i, n in enumerate(names)}, flag="domain")
    pts = check_starts(starts, names, dom, flag="start")
    check_method(method)
    check_variant(variant)
    with SceneScore(classifier, mesh, class_id, names, dom, fixed, renderer, batch_size) as fn:
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


# ------------------------------------------------------------------ records / files
def region_record(
    k: int,
    result: RegionResult,
    names: Sequence[str],
    trace_file: str | None = None,
    gt: tuple[np.ndarray, np.ndarray, float] | None = None,
) -> dict[str, Any]:
    """The ``regions.json`` record of start ``k``."""
    rec: dict[str, Any] = {
        "index": int(k),
        "start": [float(v) for v in result.x0],
        "lower": [float(v) for v in result.lower],
        "upper": [float(v) for v in result.upper],
        "start_by_name": {n: float(v) for n, v in zip(names, result.x0, strict=True)},
        "volume": float(result.volume),
        "volume_ratio": float(result.volume_ratio),
        "evaluations": int(result.n_evaluations),
        "calls": int(result.n_calls),
        "converged": bool(result.converged),
        "grew": bool(result.grew),
        "wrapped": [bool(w) for w in np.asarray(result.wrapped)],
        "stop_reason": result.stop_reason,
        "resolution": None if result.resolution is None else [float(v) for v in result.resolution],
        "worst_score": None if result.worst_score is None else float(result.worst_score),
        "wall_s": float(result.info.get("wall_s", float("nan"))),
        "trace_file": trace_file,
    }
    if gt is not None:
        rec["ground_truth"] = {"lower": [float(v) for v in gt[0]],
                               "upper": [float(v) for v in gt[1]]}
        rec["iou"] = float(gt[2])
    return rec


def save_regions(
    out_dir: str | Path,
    header: Mapping[str, Any],
    results: Sequence[RegionResult],
    names: Sequence[str],
    map_da: Any = None,
    gts: Sequence[tuple[np.ndarray, np.ndarray, float]] | None = None,
) -> Path:
    """Write ``traces/start_K.json``, ``regions.png`` and (last) ``regions.json``.

    Every file is written atomically; ``regions.json`` is written last, so its
    presence means the run completed.  Returns the path of ``regions.json``.
    """
    from robustlens.regions.plot import plot_regions

    out = Path(out_dir)
    records = []
    stale = out / "traces"
    if stale.is_dir():  # traces of an earlier run with more start points
        for f in stale.glob("start_*.json"):
            idx = f.stem[len("start_"):]
            if idx.isdigit() and int(idx) >= len(results):
                f.unlink()
    for k, res in enumerate(results):
        name = f"traces/start_{k}.json"
        d = res.to_dict(trace=True)
        write_text_atomic(out / name, json.dumps(d, indent=1, allow_nan=False) + "\n")
        records.append(region_record(k, res, names, name, gts[k] if gts else None))
    labels = [
        f"start {k}: ({', '.join(_fmt(v) for v in r.x0)})"
        + (f" IoU {gts[k][2]:.2f}" if gts else "")
        for k, r in enumerate(results)
    ]
    title = f"{header.get('class_name', '')} on {header.get('mesh', '')}: " \
            f"{header.get('method', '')}/{header.get('variant', '')}"
    plot_regions(out / "regions.png", list(results), map_da=map_da, names=labels,
                 axis_names=list(names) if map_da is None else None, title=title)
    doc = {**header, "params": list(names), "regions": records}
    path = out / "regions.json"
    write_text_atomic(path, json.dumps(_clean(doc), indent=2, allow_nan=False) + "\n")
    return path


def _clean(v: Any) -> Any:
    """JSON-safe: numpy -> Python, NaN / inf -> None."""
    if isinstance(v, Mapping):
        return {str(k): _clean(x) for k, x in v.items()}
    if isinstance(v, (list, tuple, np.ndarray)):
        return [_clean(x) for x in v]
    if isinstance(v, np.generic):
        v = v.item()
    if isinstance(v, float) and not np.isfinite(v):
        return None
    return v


# ------------------------------------------------------------------ SRVR
RUN_COLUMNS = [
    "model", "mesh", "class_id", "class_name", "method", "variant", "starts", "start", "lower",
    "upper",
    "volume_ratio", "grew", "converged", "stop_reason", "evaluations", "calls", "wall_s",
]
SRVR_COLUMNS = [
    "rank", "model", "method", "variant", "starts", "srvr", "srvr_low", "srvr_high", "frac_not_grown",
    "n_runs", "n_meshes", "evaluations", "evaluations_per_run", "calls", "wall_s",
]


def run_record(
    model: str, mesh: str, class_id: int, class_name: str, result: RegionResult
) -> dict[str, Any]:
    """One row of ``srvr_runs.csv`` (points as ``a;b`` strings), from fixed start points."""
    rec = {"start": result.x0, "lower": result.lower, "upper": result.upper,
           "volume_ratio": result.volume_ratio, "grew": result.grew,
           "converged": result.converged, "stop_reason": result.stop_reason,
           "evaluations": result.n_evaluations, "calls": result.n_calls,
           "wall_s": result.info.get("wall_s", 0.0)}
    return saved_run_record(model, mesh, class_id, class_name, rec, result.method,
                            result.variant)


def saved_run_record(
    model: str, mesh: str, class_id: int, class_name: str, rec: Mapping[str, Any],
    method: str, variant: str,
) -> dict[str, Any]:
    """One row of ``srvr_runs.csv`` from a ``regions.json`` record (or the same fields), so
    region runs reused from disk count in SRVR exactly like freshly computed ones."""
    def pt(v: Any) -> str:
        return ";".join(f"{float(x):.6g}" for x in np.asarray(v))

    return {
        "model": model, "mesh": mesh, "class_id": int(class_id), "class_name": class_name,
        "method": method, "variant": variant, "starts": "fixed", "start": pt(rec["start"]),
        "lower": pt(rec["lower"]), "upper": pt(rec["upper"]),
        "volume_ratio": float(rec["volume_ratio"]), "grew": bool(rec["grew"]),
        "converged": bool(rec["converged"]), "stop_reason": rec.get("stop_reason", ""),
        "evaluations": int(rec["evaluations"]), "calls": int(rec["calls"]),
        "wall_s": float(rec.get("wall_s", 0.0)),
    }


def srvr_table(
    runs: Sequence[Mapping[str, Any]], n_boot: int = 2000, ci: float = 0.95, seed: int = 0
) -> list[dict[str, Any]]:
    """SRVR per (model, method, variant) from `run_record` rows, ranked.

    The CI is a bootstrap percentile interval; with runs on several meshes it
    resamples whole meshes (runs on one object are not independent).  Rows are
    sorted by method, variant, then SRVR (highest first); ``rank`` is 1 for the
    most robust model within each (method, variant).
    """
    if not runs:
        raise BadInput("runs: no region runs to summarise")
    def key_of(r: Mapping[str, Any]) -> tuple[str, str, str, str]:
        return (str(r["model"]), str(r["method"]), str(r["variant"]),
                str(r.get("starts", "fixed")))

    keys: list[tuple[str, str, str, str]] = []
    for r in runs:
        if key_of(r) not in keys:
            keys.append(key_of(r))
    rows = []
    for model, method, variant, starts in keys:
        sel = [r for r in runs if key_of(r) == (model, method, variant, starts)]
        meshes = [str(r["mesh"]) for r in sel]
        s = srvr(
            [{"volume_ratio": r["volume_ratio"], "grew": r["grew"]} for r in sel],
            n_boot=n_boot, ci=ci, seed=seed,
            groups=meshes if len(set(meshes)) > 1 else None,
        )
        ev = int(sum(int(r["evaluations"]) for r in sel))
        rows.append({
            "model": model, "method": method, "variant": variant, "starts": starts,
            "srvr": s.mean, "srvr_low": s.low, "srvr_high": s.high,
            "frac_not_grown": s.frac_not_grown, "n_runs": s.n, "n_meshes": len(set(meshes)),
            "evaluations": ev, "evaluations_per_run": ev / s.n,
            "calls": int(sum(int(r["calls"]) for r in sel)),
            "wall_s": float(sum(float(r["wall_s"]) for r in sel)),
        })
    order = {m: i for i, m in enumerate(METHODS)}
    rows.sort(key=lambda r: (order.get(r["method"], 99), r["method"], r["variant"],
                             r["starts"] != "fixed", r["starts"], -r["srvr"]))
    rank, last = 0, None
    for r in rows:
        group = (r["method"], r["variant"], r["starts"])
        rank = 1 if group != last else rank + 1
        last = group
        r["rank"] = rank
    return [{k: r[k] for k in SRVR_COLUMNS} for r in rows]


def _csv(rows: Sequence[Mapping[str, Any]], columns: Sequence[str]) -> str:
    import csv
    import io

    buf = io.StringIO()
    w = csv.DictWriter(buf, fieldnames=list(columns), lineterminator="\n")
    w.writeheader()
    for r in rows:
        w.writerow({k: (f"{v:.6g}" if isinstance(v, float) else v) for k, v in r.items()
                    if k in columns})
    return buf.getvalue()


def plot_srvr(path: str | Path, table: Sequence[Mapping[str, Any]], title: str = "") -> Path:
    """Bar chart of SRVR with CI error bars: models ranked (by their mean SRVR over
    methods / variants, most robust first), one bar per method / variant."""
    from matplotlib.figure import Figure

    models: list[str] = []
    for r in table:
        if r["model"] not in models:
            models.append(str(r["model"]))
    groups: list[tuple[str, str]] = []
    for r in table:
        g = (str(r["method"]), str(r["variant"]))
        if g not in groups:
            groups.append(g)
    mean_of = {m: np.mean([r["srvr"] for r in table if r["model"] == m]) for m in models}
    models.sort(key=lambda m: -mean_of[m])
    fig = Figure(figsize=(max(5.0, 1.6 * len(models) * max(1, len(groups)) ** 0.5 + 2), 4.2))
    ax = fig.add_subplot(1, 1, 1)
    width = 0.8 / len(groups)
    x = np.arange(len(models))
    for j, g in enumerate(groups):
        vals, lo, hi = [], [], []
        for m in models:
            row = next((r for r in table if r["model"] == m and
                        (r["method"], r["variant"]) == g), None)
            v = float(row["srvr"]) if row else np.nan
            vals.append(v)
            lo.append(v - float(row["srvr_low"]) if row else 0.0)
            hi.append(float(row["srvr_high"]) - v if row else 0.0)
        ax.bar(x + (j - (len(groups) - 1) / 2) * width, vals, width, yerr=[lo, hi],
               capsize=3, label=f"{g[0]} / {g[1]}", color=f"C{j % 10}")
    ax.set_xticks(x)
    ax.set_xticklabels([f"#{i + 1} {_short(m)}" for i, m in enumerate(models)], rotation=15,
                       ha="right", fontsize=8)
    ax.set_ylabel("SRVR (mean volume ratio, 95% CI)")
    ax.set_ylim(0, max(0.05, min(1.0, 1.15 * max(
        [float(r["srvr_high"]) for r in table] or [0.05]))))
    ax.legend(fontsize=8)
    if title:
        ax.set_title(title, fontsize=10)
    fig.tight_layout()
    out = Path(path)
    with atomic_path(out) as tmp:
        fig.savefig(tmp, format="png", dpi=120)
    return out


def _short(spec: str, width: int = 30) -> str:
    """A model spec short enough for an axis label (paths cut from the left)."""
    return spec if len(spec) <= width else "..." + spec[-(width - 3):]


def save_srvr(
    out_dir: str | Path, runs: Sequence[Mapping[str, Any]], table: Sequence[Mapping[str, Any]],
    title: str = "",
) -> tuple[Path, Path, Path]:
    """Write ``srvr_runs.csv``, ``srvr.png`` and (last) ``srvr.csv`` atomically."""
    out = Path(out_dir)
    write_text_atomic(out / "srvr_runs.csv", _csv(runs, RUN_COLUMNS))
    plot_srvr(out / "srvr.png", table, title)
    write_text_atomic(out / "srvr.csv", _csv(table, SRVR_COLUMNS))
    return out / "srvr.csv", out / "srvr_runs.csv", out / "srvr.png"
