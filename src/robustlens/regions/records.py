"""The one reader and writer of ``regions.json``, its traces and the SRVR run rows.

``robustlens regions``, ``robustlens srvr``, ``robustlens run`` and the report all go
through these types, so the file has one shape:

* `RegionRecord`: one start point's region (``regions.json`` ``regions[k]``);
* `RegionsFile`: the whole document: who/what was searched (model, mesh, class, method,
  variant, params, ``domain = {name: [low, high]}``, ``periodic`` = names, threshold, start
  set) and the records; `RegionsFile.read` also accepts the shape older studies wrote
  (records under ``records``, ``domain = {"lower", "upper"}``, periodic flags);
* `RunRecord`: one row of ``srvr_runs.csv``, from a fresh result or a saved record, so
  reused runs count in SRVR exactly like computed ones;
* `write_regions`: ``traces/start_K.json`` and (last) ``regions.json``, each written
  atomically (the figure beside them is drawn by the caller's ``figure`` hook:
  `robustlens.study.steps.save_regions`; this data module imports no drawing code).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Mapping, Sequence
from dataclasses import asdict, dataclass, field, fields
from pathlib import Path
from typing import Any

import numpy as np

from robustlens.io import write_text_atomic
from robustlens.regions.result import RegionResult

__all__ = ["RegionRecord", "RegionsFile", "RunRecord", "write_regions"]

#: ``(lower, upper, IoU)`` of a region against a map's exact box
GroundTruth = tuple[np.ndarray, np.ndarray, float]


def _floats(v: Any) -> list[float]:
    return [float(x) for x in np.atleast_1d(np.asarray(v, dtype=np.float64))]


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


@dataclass
class RegionRecord:
    """One start point's robust region, as stored in ``regions.json``."""

    index: int
    start: list[float]
    lower: list[float]
    upper: list[float]
    start_by_name: dict[str, float] = field(default_factory=dict)
    volume: float = float("nan")
    volume_ratio: float = float("nan")
    evaluations: int = 0
    calls: int = 0
    converged: bool = False
    grew: bool = False
    wrapped: list[bool] = field(default_factory=list)
    stop_reason: str = ""
    resolution: list[float] | None = None  # the search's finest step per dim (ours)
    worst_score: float | None = None  # lowest score evaluated inside the final box (ours)
    wall_s: float = float("nan")
    trace_file: str | None = None
    ground_truth: dict[str, list[float]] | None = None
    iou: float | None = None

    @classmethod
    def from_result(cls, k: int, result: RegionResult, names: Sequence[str],
                    trace_file: str | None = None, gt: GroundTruth | None = None
                    ) -> RegionRecord:
        return cls(
            index=int(k), start=_floats(result.x0), lower=_floats(result.lower),
            upper=_floats(result.upper),
            start_by_name={n: float(v) for n, v in zip(names, result.x0, strict=True)},
            volume=float(result.volume), volume_ratio=float(result.volume_ratio),
            evaluations=int(result.n_evaluations), calls=int(result.n_calls),
            converged=bool(result.converged), grew=bool(result.grew),
            wrapped=[bool(w) for w in np.asarray(result.wrapped)],
            stop_reason=result.stop_reason,
            resolution=None if result.resolution is None else _floats(result.resolution),
            worst_score=None if result.worst_score is None else float(result.worst_score),
            wall_s=float(result.info.get("wall_s", float("nan"))), trace_file=trace_file,
            ground_truth=None if gt is None else {"lower": _floats(gt[0]),
                                                  "upper": _floats(gt[1])},
            iou=None if gt is None else float(gt[2]))

    @classmethod
    def from_json(cls, d: Mapping[str, Any], k: int = 0) -> RegionRecord:
        """A record read back (unknown keys ignored; ``n_evaluations`` / ``n_calls`` accepted
        for ``evaluations`` / ``calls``)."""
        def num(key: str, alt: str | None = None, default: float = float("nan")) -> float:
            v = d.get(key, d.get(alt) if alt else None)
            return default if v is None else float(v)

        gt = d.get("ground_truth")
        return cls(
            index=int(d.get("index", k)), start=_floats(d.get("start", [])),
            lower=_floats(d.get("lower", [])), upper=_floats(d.get("upper", [])),
            start_by_name={str(a): float(b) for a, b in dict(d.get("start_by_name", {})).items()},
            volume=num("volume"), volume_ratio=num("volume_ratio"),
            evaluations=int(num("evaluations", "n_evaluations", 0)),
            calls=int(num("calls", "n_calls", 0)),
            converged=bool(d.get("converged", False)), grew=bool(d.get("grew", False)),
            wrapped=[bool(w) for w in d.get("wrapped", [])],
            stop_reason=str(d.get("stop_reason") or ""),
            resolution=None if d.get("resolution") is None else _floats(d["resolution"]),
            worst_score=None if d.get("worst_score") is None else float(d["worst_score"]),
            wall_s=num("wall_s"),
            trace_file=d.get("trace_file"),
            ground_truth=({"lower": _floats(gt["lower"]), "upper": _floats(gt["upper"])}
                          if isinstance(gt, Mapping) else None),
            iou=None if d.get("iou") is None else float(d["iou"]))

    def to_json(self) -> dict[str, Any]:
        d = asdict(self)
        if self.ground_truth is None:  # only runs compared with a map carry these
            del d["ground_truth"], d["iou"]
        return d


@dataclass
class RegionsFile:
    """A whole ``regions.json``: the search and one `RegionRecord` per start point.

    ``domain`` maps each parameter to ``[low, high]``; ``periodic`` lists the parameters
    searched periodically; ``starts`` is ``"fixed"`` or ``"auto"``.  Header keys this class
    does not name (``score_source``, ``fixed``, ``max_evals``, ``map``, ``image_size``, ...)
    are kept in ``extra`` and written back as they are.
    """

    model: str
    mesh: str
    class_id: int
    class_name: str
    method: str
    variant: str
    params: list[str]
    domain: dict[str, list[float]]
    periodic: list[str] = field(default_factory=list)
    threshold: float | None = None
    starts: str = "fixed"
    criterion: str = "score"
    regions: list[RegionRecord] = field(default_factory=list)
    extra: dict[str, Any] = field(default_factory=dict)

    @property
    def lower(self) -> np.ndarray:
        """Domain lower bounds in the order of ``params``."""
        return np.array([self.domain.get(n, [np.nan, np.nan])[0] for n in self.params],
                        dtype=np.float64)

    @property
    def upper(self) -> np.ndarray:
        return np.array([self.domain.get(n, [np.nan, np.nan])[1] for n in self.params],
                        dtype=np.float64)

    def to_json(self) -> dict[str, Any]:
        head = {f.name: getattr(self, f.name) for f in fields(self)
                if f.name not in ("regions", "extra")}
        return _clean({**head, **self.extra, "regions": [r.to_json() for r in self.regions]})

    @classmethod
    def from_json(cls, doc: Mapping[str, Any]) -> RegionsFile:
        """Parse a document (either shape); ValueError when it is not a regions file."""
        if not isinstance(doc, Mapping):
            raise ValueError("expected a JSON object")
        recs = doc.get("regions", doc.get("records"))
        if not isinstance(recs, list):
            raise ValueError("expected an object with a 'regions' list")
        records = [RegionRecord.from_json(r, k) for k, r in enumerate(recs)
                   if isinstance(r, Mapping)]
        params = [str(p) for p in doc.get("params", [])]
        if not params and records:
            params = [f"x{i}" for i in range(len(records[0].lower))]
        dom = doc.get("domain")
        domain: dict[str, list[float]] = {}
        try:
            if isinstance(dom, Mapping) and "lower" in dom and "upper" in dom:
                domain = {n: [float(dom["lower"][i]), float(dom["upper"][i])]
                          for i, n in enumerate(params)}
            elif isinstance(dom, Mapping):
                domain = {n: [float(dom[n][0]), float(dom[n][1])] for n in params}
        except (KeyError, IndexError, TypeError, ValueError):
            domain = {}
        if not domain and records:  # unknown: the hull of the regions
            lo = np.min([r.lower for r in records], 0)
            hi = np.max([r.upper for r in records], 0)
            domain = {n: [float(lo[i]), float(hi[i])] for i, n in enumerate(params)}
        per = doc.get("periodic", [])
        if isinstance(per, list) and per and all(isinstance(p, bool) for p in per):
            per = [n for n, p in zip(params, per, strict=False) if p]
        known = {f.name for f in fields(cls)} | {"records"}
        thr = doc.get("threshold")
        return cls(
            model=str(doc.get("model", "")), mesh=str(doc.get("mesh", "")),
            class_id=int(doc.get("class_id", -1)), class_name=str(doc.get("class_name", "")),
            method=str(doc.get("method", "")), variant=str(doc.get("variant", "")),
            params=params, domain=domain,
            periodic=[str(p) for p in per] if isinstance(per, list) else [],
            threshold=None if thr is None else float(thr),
            starts=str(doc.get("starts", "fixed")),
            criterion=str(doc.get("criterion", "score")), regions=records,
            extra={k: v for k, v in doc.items() if k not in known})

    @classmethod
    def read(cls, path: str | Path) -> RegionsFile:
        """Read ``regions.json`` (OSError / ValueError when unreadable)."""
        return cls.from_json(json.loads(Path(path).read_text()))


def write_regions(
    out_dir: str | Path,
    doc: RegionsFile,
    results: Sequence[RegionResult],
    gts: Sequence[GroundTruth] | None = None,
    figure: Callable[[dict[str, Any]], object] | None = None,
) -> Path:
    """Write ``traces/start_K.json`` and (last) ``regions.json``.

    ``doc`` is the header (its ``regions`` are replaced by the records of ``results``).
    Every file is written atomically; ``regions.json`` is written last, so its presence means
    the run completed: ``figure(document)`` (if given) runs just before it.  Returns the path
    of ``regions.json``.
    """
    out = Path(out_dir)
    stale = out / "traces"
    if stale.is_dir():  # traces of an earlier run with more start points
        for f in stale.glob("start_*.json"):
            idx = f.stem[len("start_"):]
            if idx.isdigit() and int(idx) >= len(results):
                f.unlink()
    doc.regions = []
    for k, res in enumerate(results):
        name = f"traces/start_{k}.json"
        write_text_atomic(out / name,
                          json.dumps(res.to_dict(trace=True), indent=1, allow_nan=False) + "\n")
        doc.regions.append(RegionRecord.from_result(k, res, doc.params, name,
                                                    gts[k] if gts else None))
    data = doc.to_json()
    if figure is not None:
        figure(data)
    path = out / "regions.json"
    write_text_atomic(path, json.dumps(data, indent=2, allow_nan=False) + "\n")
    return path


@dataclass
class RunRecord:
    """One row of ``srvr_runs.csv``: one region run of a model on a mesh."""

    model: str
    mesh: str
    class_id: int
    class_name: str
    method: str
    variant: str
    starts: str
    start: list[float]
    lower: list[float]
    upper: list[float]
    volume_ratio: float
    grew: bool
    converged: bool
    stop_reason: str
    evaluations: int
    calls: int
    wall_s: float
    criterion: str = "score"

    @classmethod
    def from_result(cls, model: str, mesh: str, class_id: int, class_name: str,
                    result: RegionResult, starts: str = "fixed",
                    criterion: str = "score") -> RunRecord:
        rec = RegionRecord.from_result(0, result, [f"x{i}" for i in range(result.n)])
        if not np.isfinite(rec.wall_s):
            rec.wall_s = 0.0
        return cls.from_record(model, mesh, class_id, class_name, rec, result.method,
                               result.variant, starts, criterion)

    @classmethod
    def from_record(cls, model: str, mesh: str, class_id: int, class_name: str,
                    rec: RegionRecord, method: str, variant: str,
                    starts: str = "fixed", criterion: str = "score") -> RunRecord:
        return cls(model=model, mesh=mesh, class_id=int(class_id), class_name=class_name,
                   method=method, variant=variant, starts=starts, criterion=criterion,
                   start=rec.start,
                   lower=rec.lower, upper=rec.upper, volume_ratio=rec.volume_ratio,
                   grew=rec.grew, converged=rec.converged, stop_reason=rec.stop_reason,
                   evaluations=rec.evaluations, calls=rec.calls,
                   wall_s=0.0 if not np.isfinite(rec.wall_s) else rec.wall_s)

    def to_row(self) -> dict[str, Any]:
        """The CSV row (points as ``a;b`` strings)."""
        d = asdict(self)
        for k in ("start", "lower", "upper"):
            d[k] = ";".join(f"{float(x):.6g}" for x in d[k])
        return d
