"""SRVR: semantic robustness volume ratio.

SRVR(network, method) = mean over objects and start points of
``volume(region clipped to the domain) / volume(domain)``, here with a bootstrap
percentile confidence interval and the fraction of runs whose region never grew
(the start point was not robust).
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np

from robustlens import paper
from robustlens.errors import BadInput
from robustlens.io import write_text_atomic
from robustlens.regions.core import METHODS
from robustlens.regions.records import RunRecord
from robustlens.regions.result import RegionResult
from robustlens.stats import bootstrap_mean_ci

__all__ = ["PAPER_DOMAIN", "PAPER_STARTS", "RUN_COLUMNS", "SRVR_COLUMNS", "SRVRSummary",
           "srvr", "srvr_table", "volume_ratios", "write_srvr"]

#: Reference start points (azimuth, elevation) in degrees (:data:`robustlens.paper.STARTS`).
PAPER_STARTS: list[tuple[float, float]] = paper.STARTS
#: Reference domain ((azimuth_min, elevation_min), (azimuth_max, elevation_max)) in degrees.
PAPER_DOMAIN: tuple[tuple[float, float], tuple[float, float]] = paper.DOMAIN


@dataclass(frozen=True)
class SRVRSummary:
    """Mean volume ratio with a bootstrap percentile CI ``[low, high]``."""

    mean: float
    low: float
    high: float
    frac_not_grown: float
    n: int
    ci: float = 0.95
    n_boot: int = 2000

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


def volume_ratios(
    results_or_volume_ratios: Iterable[Any], not_grown_below: float = 1e-9
) -> tuple[np.ndarray, np.ndarray]:
    """(ratios, grew) from RegionResults, their ``to_dict()`` dicts, or plain ratios.

    A plain ratio counts as "not grown" when it is ``<= not_grown_below``;
    results and dicts carry their own ``grew`` flag.
    """
    ratios: list[float] = []
    grew: list[bool] = []
    for i, item in enumerate(results_or_volume_ratios):
        if isinstance(item, RegionResult):
            r, g = item.volume_ratio, bool(item.grew)
        elif isinstance(item, Mapping):
            if "volume_ratio" not in item:
                raise BadInput(
                    f"results[{i}]: dict has no 'volume_ratio' (use RegionResult.to_dict)"
                )
            r = float(item["volume_ratio"])
            g = bool(item.get("grew", r > not_grown_below))
        else:
            try:
                r = float(item)
            except (TypeError, ValueError) as exc:
                raise BadInput(
                    f"results[{i}]: expected a RegionResult, its dict or a number, "
                    f"got {type(item).__name__}"
                ) from exc
            g = r > not_grown_below
        if not (np.isfinite(r) and -1e-12 <= r <= 1 + 1e-9):
            raise BadInput(f"results[{i}]: volume ratio {r} is not in [0, 1]")
        ratios.append(min(max(r, 0.0), 1.0))
        grew.append(g)
    return np.asarray(ratios, dtype=np.float64), np.asarray(grew, dtype=bool)


def srvr(
    results_or_volume_ratios: Iterable[Any],
    n_boot: int = 2000,
    ci: float = 0.95,
    seed: int = 0,
    *,
    groups: Sequence[Any] | None = None,
    not_grown_below: float = 1e-9,
) -> SRVRSummary:
    """SRVR over runs (objects x start points) with a bootstrap percentile CI.

    ``results_or_volume_ratios``: `RegionResult` objects, their ``to_dict()``
    dicts, or volume ratios in [0, 1].  ``groups`` (optional, one label per run,
    e.g. the object id) switches to a cluster bootstrap that resamples whole
    groups, for runs that share an object.  Deterministic for a given ``seed``.
    """
    if isinstance(results_or_volume_ratios, (str, bytes)):
        raise BadInput("results_or_volume_ratios: expected a sequence of results or ratios")
    ratios, grew = volume_ratios(results_or_volume_ratios, not_grown_below)
    n = ratios.size
    if n == 0:
        raise BadInput("results_or_volume_ratios: no runs given")
    if isinstance(n_boot, bool) or int(n_boot) != n_boot or n_boot < 1:
        raise BadInput(f"n_boot: expected an integer >= 1, got {n_boot!r}")
    if not 0 < ci < 1:
        raise BadInput(f"ci: expected a level in (0, 1), got {ci!r}")
    g_arr = None
    if groups is not None:
        g_arr = np.asarray(list(groups))
        if g_arr.shape != (n,):
            raise BadInput(f"groups: expected one label per run ({n}), got {g_arr.size}")
    mean = float(ratios.mean())
    low, high = bootstrap_mean_ci(ratios, int(n_boot), float(ci), seed, groups=g_arr)
    return SRVRSummary(
        mean=mean,
        low=low,
        high=high,
        frac_not_grown=float((~grew).mean()),
        n=int(n),
        ci=float(ci),
        n_boot=int(n_boot),
    )


# ------------------------------------------------------------------ tables and files
RUN_COLUMNS = [
    "model", "mesh", "class_id", "class_name", "method", "variant", "starts", "criterion",
    "start", "lower",
    "upper",
    "volume_ratio", "grew", "converged", "stop_reason", "evaluations", "calls", "wall_s",
]
SRVR_COLUMNS = [
    "rank", "model", "method", "variant", "starts", "criterion", "srvr", "srvr_low", "srvr_high", "frac_not_grown",
    "n_runs", "n_meshes", "evaluations", "evaluations_per_run", "calls", "wall_s",
]


def srvr_table(
    runs: Sequence[RunRecord | Mapping[str, Any]], n_boot: int = 2000, ci: float = 0.95,
    seed: int = 0,
) -> list[dict[str, Any]]:
    """SRVR per (model, method, variant, start set, criterion) from run rows
    (`robustlens.regions.records.RunRecord` or the same fields), ranked.

    The CI is a bootstrap percentile interval; with runs on several meshes it
    resamples whole meshes (runs on one object are not independent).  Rows are
    sorted by criterion (score first), method, variant, start set (fixed first), then SRVR
    (highest first); ``rank`` is 1 for the most robust model within each (criterion,
    method, variant, start set).
    """
    if not runs:
        raise BadInput("runs: no region runs to summarise")
    by_key: dict[tuple[str, ...], list[Mapping[str, Any]]] = {}  # first-seen order
    for run in runs:
        r = run.to_row() if isinstance(run, RunRecord) else run
        key = (str(r["model"]), str(r["method"]), str(r["variant"]),
               str(r.get("starts", "fixed")), str(r.get("criterion", "score")))
        by_key.setdefault(key, []).append(r)
    rows: list[dict[str, Any]] = []
    for (model, method, variant, starts, criterion), sel in by_key.items():
        meshes = [str(r["mesh"]) for r in sel]
        s = srvr(
            [{"volume_ratio": r["volume_ratio"], "grew": r["grew"]} for r in sel],
            n_boot=n_boot, ci=ci, seed=seed,
            groups=meshes if len(set(meshes)) > 1 else None,
        )
        ev = int(sum(int(r["evaluations"]) for r in sel))
        rows.append({
            "model": model, "method": method, "variant": variant, "starts": starts,
            "criterion": criterion, "srvr": s.mean, "srvr_low": s.low, "srvr_high": s.high,
            "frac_not_grown": s.frac_not_grown, "n_runs": s.n, "n_meshes": len(set(meshes)),
            "evaluations": ev, "evaluations_per_run": ev / s.n,
            "calls": int(sum(int(r["calls"]) for r in sel)),
            "wall_s": float(sum(float(r["wall_s"]) for r in sel)),
        })
    order = {m: i for i, m in enumerate(METHODS)}
    rows.sort(key=lambda r: (r["criterion"] != "score", r["criterion"],
                             order.get(r["method"], 99), r["method"], r["variant"],
                             r["starts"] != "fixed", r["starts"], -r["srvr"]))
    rank, last = 0, None
    for r in rows:
        group = (r["criterion"], r["method"], r["variant"], r["starts"])
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


def write_srvr(
    out_dir: str | Path, runs: Sequence[RunRecord | Mapping[str, Any]],
    table: Sequence[Mapping[str, Any]],
    figure: Callable[[Sequence[Mapping[str, Any]]], object] | None = None,
) -> tuple[Path, Path]:
    """Write ``srvr_runs.csv`` and (last) ``srvr.csv`` atomically; ``figure(table)`` (if
    given) runs between them (`robustlens.study.steps.save_srvr` draws ``srvr.png`` there;
    this data module imports no drawing code). Returns both paths."""
    out = Path(out_dir)
    rows = [r.to_row() if isinstance(r, RunRecord) else r for r in runs]
    write_text_atomic(out / "srvr_runs.csv", _csv(rows, RUN_COLUMNS))
    if figure is not None:
        figure(table)
    write_text_atomic(out / "srvr.csv", _csv(table, SRVR_COLUMNS))
    return out / "srvr.csv", out / "srvr_runs.csv"
