"""Real-model comparison of robust-region methods against dense-map ground truth, and SRVR.

Run (CPU, ~30-60 min the first time; maps and runs are cached under results/):

    .venv/bin/python scripts/compare_regions.py            # everything
    .venv/bin/python scripts/compare_regions.py --no-real  # maps only (fast once maps exist)

1. Dense semantic maps (6-degree grid: azimuth 0..354 x elevation -10..86, 60 x 17 poses)
   of the embedded EfficientNet-Lite0 and of EfficientNet-Lite2 on the demo meshes,
   cached in ``results/maps/<model>/<mesh>/map.nc`` (the same files
   ``robustlens map --grid azimuth=0:360:6 --grid elevation=-10:90:6`` writes).
2. Naive / OIR_B / OIR_W, paper and ours variants, from the paper's 4 start points,
   run on the interpolated map (``map_score_fn``) and compared with the map's exact
   largest box (``ground_truth_box``, threshold 0.5, periodic azimuth): IoU, score
   evaluations, calls, wall time.  The search domain is the map's span
   [0, 360] x [-10, 86] so that regions and ground truth live on the same domain.
3. The ours variant again on the REAL renderer + model for ``--real-mesh`` (default
   demo:mug), IoU against the same map ground truth.
4. SRVR of Lite0 vs Lite2 on the demo meshes (ours: oir_b, naive, oir_w; paper: oir_b,
   naive) on the dense maps, the ground-truth SRVR of the maps' exact boxes, and with
   ``--real-srvr`` (default on) ours/oir_b and ours/naive on the real renderer + model.

Writes ``benchmarks/results/regions_real.md`` and ``benchmarks/results/srvr_real.md``.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

import numpy as np

from robustlens.regions import ground_truth_box, iou, map_domain, map_score_fn
from robustlens.regions.records import RunRecord
from robustlens.regions.result import RegionResult
from robustlens.regions.scene import SceneScore, regions_for_score
from robustlens.regions.srvr import PAPER_STARTS, srvr, srvr_table

ROOT = Path(__file__).resolve().parents[1]
MESHES = ["mug", "vase", "bucket", "chair", "table"]
MODELS = ["efficientnet_lite0", "efficientnet_lite2"]
METHODS = ["naive", "oir_b", "oir_w"]
#: label -> (variant passed to find_region, hyper-parameters)
CONFIGS: dict[str, tuple[str, dict[str, Any]]] = {
    "paper": ("paper", {}),
    "ours": ("ours", {"threshold": 0.5}),
    # a finer first lattice: 62 cells per dim instead of the budget's 31
    "ours-fine": ("ours", {"threshold": 0.5, "lattice": 62}),
}
VARIANTS = list(CONFIGS)
NAMES = ["azimuth", "elevation"]
PERIODIC = np.array([True, False])
THRESHOLD = 0.5
#: (config, method) pairs of the real-renderer SRVR runs
REAL_SRVR = [("ours", "oir_b"), ("ours", "naive"), ("ours-fine", "oir_b")]


def log(msg: str) -> None:
    print(f"[{time.strftime('%H:%M:%S')}] {msg}", file=sys.stderr, flush=True)


# ----------------------------------------------------------------------------- maps
def ensure_maps(maps_dir: Path, models: list[str], meshes: list[str], step: int) -> None:
    """Compute the dense maps that are not cached yet."""
    from robustlens.models import load_model
    from robustlens.render import MeshRenderer, load_mesh
    from robustlens.render.mesh import demo_class
    from robustlens.semantic import SemanticMap, parse_grids, save_map

    for model in models:
        todo = [m for m in meshes if not (maps_dir / model / m / "map.nc").is_file()]
        if not todo:
            continue
        clf = load_model(f"builtin:{model}")
        renderer = MeshRenderer(clf.input_size)
        for mesh in todo:
            log(f"map {model} {mesh}")
            axes = parse_grids([f"azimuth=0:360:{step}", f"elevation=-10:90:{step}"])
            cid = clf.class_index(demo_class(f"demo:{mesh}") or "")
            ds = SemanticMap(axes, batch_size=32).run(
                clf, load_mesh(f"demo:{mesh}"), cid, renderer, mesh_name=f"demo:{mesh}"
            ).map_
            save_map(ds, maps_dir / model / mesh / "map.nc")


def load_da(maps_dir: Path, model: str, mesh: str) -> Any:
    from robustlens.semantic import load_map

    return load_map(maps_dir / model / mesh / "map.nc")["score"].transpose(*NAMES)


# ----------------------------------------------------------------------------- runs
def gt_for(da: Any, x0: Any) -> tuple[np.ndarray, np.ndarray]:
    return ground_truth_box(da, x0, THRESHOLD, periodic=["azimuth"])


def iou_of(res: RegionResult, gt: tuple[np.ndarray, np.ndarray], domain: Any) -> float:
    period = np.where(PERIODIC, domain[1] - domain[0], 0.0)
    return iou((res.lower, res.upper), gt, period)


def run_record_full(model: str, mesh: str, source: str, res: RegionResult, da: Any,
                    domain: Any) -> dict[str, Any]:
    gt = gt_for(da, res.x0)
    gt_ratio = float(np.prod(np.minimum(gt[1] - gt[0], domain[1] - domain[0]))) / float(
        np.prod(domain[1] - domain[0]))
    rec = RunRecord.from_result(f"builtin:{model}", f"demo:{mesh}", -1, "", res).to_row()
    rec.update(source=source, iou=iou_of(res, gt, domain), gt_ratio=gt_ratio,
               gt_robust=bool(gt_ratio > 0), start_score=float(
                   map_score_fn(da, periodic=["azimuth"])(res.x0[None, :])[0]))
    return rec


def runs_on_maps(maps_dir: Path, models: list[str], meshes: list[str]) -> list[dict[str, Any]]:
    out = []
    for model in models:
        for mesh in meshes:
            da = load_da(maps_dir, model, mesh)
            fn = map_score_fn(da, periodic=["azimuth"])
            domain = map_domain(da, periodic=["azimuth"])
            for label, (variant, hyper) in CONFIGS.items():
                for method in METHODS:
                    res = regions_for_score(fn, np.array(PAPER_STARTS, float), domain, method,
                                            variant, periodic=PERIODIC, **hyper)
                    recs = [run_record_full(model, mesh, "map", r, da, domain) for r in res]
                    for rec in recs:
                        rec["variant"] = label
                    out += recs
            log(f"map runs {model} {mesh} done")
    return out


def runs_real(maps_dir: Path, model: str, mesh: str, todo: list[tuple[str, str]],
              cache: Path) -> list[dict[str, Any]]:
    """Regions on the real renderer + model for (config label, method) pairs; every
    finished pair is cached in ``cache`` (JSON) so an interrupted run resumes."""
    from robustlens.models import load_model
    from robustlens.render import MeshRenderer, load_mesh
    from robustlens.render.mesh import demo_class

    done: dict[str, list[dict[str, Any]]] = (
        json.loads(cache.read_text()) if cache.is_file() else {}
    )
    missing = [(lab, m) for lab, m in todo if f"{lab}/{m}" not in done]
    if missing:
        da = load_da(maps_dir, model, mesh)
        domain = map_domain(da, periodic=["azimuth"])
        clf = load_model(f"builtin:{model}")
        cid = clf.class_index(demo_class(f"demo:{mesh}") or "")
        with SceneScore(clf, load_mesh(f"demo:{mesh}"), cid, NAMES, domain,
                        renderer=MeshRenderer(clf.input_size)) as fn:
            for label, method in missing:
                variant, hyper = CONFIGS[label]
                res = regions_for_score(fn, np.array(PAPER_STARTS, float), domain, method,
                                        variant, periodic=PERIODIC, **hyper)
                recs = [run_record_full(model, mesh, "real", r, da, domain) for r in res]
                for rec in recs:
                    rec["variant"] = label
                done[f"{label}/{method}"] = recs
                cache.parent.mkdir(parents=True, exist_ok=True)
                cache.write_text(json.dumps(done, indent=1))
                log(f"real {model} {mesh} {label}/{method}: "
                    f"{sum(r['evaluations'] for r in recs)} evaluations, "
                    f"{sum(r['wall_s'] for r in recs):.0f} s")
    return [r for lab, m in todo for r in done[f"{lab}/{m}"]]


# ----------------------------------------------------------------------------- tables
def fmt(v: float, nd: int = 3) -> str:
    return "-" if v is None or not np.isfinite(v) else f"{v:.{nd}f}"


def method_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| method | variant | IoU mean (robust starts) | IoU median | IoU >= 0.5 | "
        "non-robust starts flagged | SRVR found / GT | evaluations / region | calls / region "
        "| wall ms / region |",
        "|---|---|---|---|---|---|---|---|---|---|",
    ]
    for variant in VARIANTS:
        for method in METHODS:
            sel = [r for r in rows if r["method"] == method and r["variant"] == variant]
            if not sel:
                continue
            rob = [r for r in sel if r["gt_robust"]]
            ious = np.array([r["iou"] for r in rob])
            nonrob = [r for r in sel if not r["gt_robust"]]
            flagged = sum(not r["grew"] for r in nonrob)
            found = np.mean([r["volume_ratio"] for r in sel])
            gt = np.mean([r["gt_ratio"] for r in sel])
            lines.append(
                f"| {method} | {variant} | {fmt(ious.mean()) if ious.size else '-'} "
                f"({len(rob)}) | {fmt(float(np.median(ious))) if ious.size else '-'} | "
                f"{int((ious >= 0.5).sum())}/{len(rob)} | {flagged}/{len(nonrob)} | "
                f"{fmt(found)} / {fmt(gt)} | "
                f"{np.mean([r['evaluations'] for r in sel]):.0f} | "
                f"{np.mean([r['calls'] for r in sel]):.0f} | "
                f"{1000 * np.mean([r['wall_s'] for r in sel]):.1f} |"
            )
    return lines


def findings(rows: list[dict[str, Any]]) -> list[str]:
    """Data-driven summary lines."""
    def mean_iou(label: str) -> float:
        v = [r["iou"] for r in rows if r["variant"] == label and r["gt_robust"]]
        return float(np.mean(v)) if v else float("nan")

    def mean_ev(label: str) -> float:
        return float(np.mean([r["evaluations"] for r in rows if r["variant"] == label]))

    def flagged(label: str) -> int:
        return sum(not r["grew"] for r in rows if r["variant"] == label and not r["gt_robust"])

    n_nonrob = sum(not r["gt_robust"] for r in rows if r["variant"] == "ours"
                   and r["method"] == "naive")
    over = [r for r in rows if r["variant"] == "ours" and r["gt_robust"]
            and r["volume_ratio"] > 1.5 * r["gt_ratio"]]
    return [
        "Findings:",
        "",
        f"- Mean IoU over robust starts and all three methods: paper {mean_iou('paper'):.2f} "
        f"({mean_ev('paper'):.0f} evaluations / region), ours {mean_iou('ours'):.2f} "
        f"({mean_ev('ours'):.0f}), ours-fine {mean_iou('ours-fine'):.2f} "
        f"({mean_ev('ours-fine'):.0f}).",
        "- The paper rules ignore the threshold: they grow a box from non-robust starts too "
        f"(no region in {flagged('paper')} of the {3 * n_nonrob} runs (3 methods) from the "
        f"{n_nonrob} non-robust starts; ours {flagged('ours')} of {3 * n_nonrob}), and their "
        "OIR_B / OIR_W "
        "boxes are several times "
        "larger than the ground truth (SRVR found / GT column).",
        f"- Ours exceeds the cell ground truth by > 1.5x in volume in {len(over)} of "
        f"{sum(r['variant'] == 'ours' and r['gt_robust'] for r in rows)} robust-start runs "
        "(ours is sound on the interpolated map: no scored point below the threshold inside "
        "its box; the cell box is padded by half a cell, the interpolated robust set is not).",
    ]


def per_run_table(rows: list[dict[str, Any]]) -> list[str]:
    lines = [
        "| mesh | start | f(start) on map | GT box (az x el) | method | score from | "
        "region (az x el) | IoU | evaluations | calls | wall s |",
        "|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for r in rows:
        gt = r.get("gt_box", "") if r["gt_robust"] else "empty"
        iou_s = fmt(r["iou"], 2) if r["gt_robust"] else "-"
        lines.append(
            f"| {r['mesh']} | ({r['start'].replace(';', ', ')}) | {r['start_score']:.3f} | {gt} "
            f"| {r['method']}/{r['variant']} | {r['source']} | {box_str(r)} | {iou_s} | "
            f"{r['evaluations']} | {r['calls']} | {r['wall_s']:.1f} |"
        )
    return lines


def start_idx(r: dict[str, Any]) -> int:
    x0 = tuple(float(v) for v in r["start"].split(";"))
    return [tuple(map(float, p)) for p in PAPER_STARTS].index(x0)


def box_str(r: dict[str, Any]) -> str:
    if not r["grew"]:
        return "not grown"
    lo = [float(v) for v in r["lower"].split(";")]
    hi = [float(v) for v in r["upper"].split(";")]
    return f"[{lo[0]:.0f}, {hi[0]:.0f}] x [{lo[1]:.0f}, {hi[1]:.0f}]"


def srvr_lines(rows: list[dict[str, Any]], title: str) -> list[str]:
    table = srvr_table(rows, n_boot=2000, seed=0)
    lines = [
        f"### {title}", "",
        "| rank | model | method | variant | SRVR | 95% CI (mesh bootstrap) | not grown | "
        "evaluations / run | wall s / run |",
        "|---|---|---|---|---|---|---|---|---|",
    ]
    for t in table:
        lines.append(
            f"| {t['rank']} | {t['model'].split(':')[-1]} | {t['method']} | {t['variant']} | "
            f"{t['srvr']:.4f} | [{t['srvr_low']:.4f}, {t['srvr_high']:.4f}] | "
            f"{t['frac_not_grown']:.0%} | {t['evaluations_per_run']:.0f} | "
            f"{t['wall_s'] / t['n_runs']:.2f} |"
        )
    return lines + [""]


def gt_srvr_lines(rows: list[dict[str, Any]], models: list[str]) -> list[str]:
    lines = [
        "### Ground truth: exact largest boxes on the dense maps (threshold 0.5)", "",
        "| model | SRVR (GT) | 95% CI | starts not robust | top-1 accuracy over all map poses "
        "| mean score over map |",
        "|---|---|---|---|---|---|",
    ]
    for model in models:
        sel = [r for r in rows if r["model"] == f"builtin:{model}" and r["method"] == "oir_b"
               and r["variant"] == "ours"]
        s = srvr([r["gt_ratio"] for r in sel], groups=[r["mesh"] for r in sel])
        acc, mean = map_stats(model)
        lines.append(f"| {model} | {s.mean:.4f} | [{s.low:.4f}, {s.high:.4f}] | "
                     f"{s.frac_not_grown:.0%} | {acc:.1%} | {mean:.3f} |")
    return lines + [""]


MAP_STATS: dict[str, tuple[float, float]] = {}


def map_stats(model: str) -> tuple[float, float]:
    return MAP_STATS.get(model, (float("nan"), float("nan")))


def collect_map_stats(maps_dir: Path, models: list[str], meshes: list[str]) -> None:
    from robustlens.semantic import load_map

    for model in models:
        acc, mean = [], []
        for mesh in meshes:
            ds = load_map(maps_dir / model / mesh / "map.nc")
            acc.append(float((ds["top1"] == int(ds.attrs["class_id"])).mean()))
            mean.append(float(ds["score"].mean()))
        MAP_STATS[model] = (float(np.mean(acc)), float(np.mean(mean)))


# ----------------------------------------------------------------------------- main
def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--maps-dir", type=Path, default=ROOT / "results" / "maps")
    ap.add_argument("--cache", type=Path, default=ROOT / "results" / "compare_regions")
    ap.add_argument("--step", type=int, default=6)
    ap.add_argument("--real-mesh", default="mug")
    ap.add_argument("--no-real", action="store_true", help="skip real renderer runs")
    ap.add_argument("--no-real-srvr", action="store_true", help="skip the real SRVR runs")
    ap.add_argument("--out", type=Path, default=ROOT / "benchmarks" / "results" / "regions_real.md")
    ap.add_argument("--srvr-out", type=Path,
                    default=ROOT / "benchmarks" / "results" / "srvr_real.md")
    args = ap.parse_args()

    t0 = time.time()
    ensure_maps(args.maps_dir, MODELS, MESHES, args.step)
    collect_map_stats(args.maps_dir, MODELS, MESHES)
    map_rows = runs_on_maps(args.maps_dir, MODELS, MESHES)
    for r in map_rows:
        r["gt_box"] = ""
    lite0_map = [r for r in map_rows if r["model"] == "builtin:efficientnet_lite0"]

    real_rows: list[dict[str, Any]] = []
    if not args.no_real:
        real_rows = runs_real(args.maps_dir, MODELS[0], args.real_mesh,
                              [("ours", m) for m in METHODS] + [("ours-fine", "oir_b")],
                              args.cache / f"real_{MODELS[0]}_{args.real_mesh}.json")
    real_srvr: list[dict[str, Any]] = []
    if not args.no_real and not args.no_real_srvr:
        for model in MODELS:
            for mesh in MESHES:
                real_srvr += runs_real(args.maps_dir, model, mesh, REAL_SRVR,
                                       args.cache / f"real_{model}_{mesh}.json")

    # ---------------------------------------------------------------- regions_real.md
    da0 = {m: load_da(args.maps_dir, MODELS[0], m) for m in MESHES}
    for r in lite0_map + real_rows:
        x0 = [float(v) for v in r["start"].split(";")]
        lo, hi = gt_for(da0[r["mesh"][5:]], x0)
        r["gt_box"] = f"[{lo[0]:.0f}, {hi[0]:.0f}] x [{lo[1]:.0f}, {hi[1]:.0f}]"
    md = [
        "# Robust regions on a real model: methods vs dense-map ground truth",
        "",
        f"Generated by `scripts/compare_regions.py` ({time.strftime('%Y-%m-%d')}, CPU, 2 shared "
        "cores).  Model: the embedded EfficientNet-Lite0 (ImageNet weights); objects: the demo "
        f"meshes {', '.join('`demo:' + m + '`' for m in MESHES)} (classes coffee mug, vase, "
        "bucket, folding chair, dining table), rendered untextured as in the paper.",
        "",
        f"Ground truth: a dense semantic map per object ({args.step}-degree grid, azimuth "
        f"0..354 x elevation -10..86 = {360 // args.step} x {len(range(-10, 90, args.step))} "
        "poses) and its exact largest box of cells with score >= 0.5 containing the start "
        "cell (`ground_truth_box`, periodic azimuth).  Start points: the paper's "
        "(130,30) (50,20) (200,15) (310,50); search domain: the map's span [0, 360] x "
        "[-10, 86] (azimuth periodic for ours; the paper rules clip).  IoU is averaged over "
        "the starts whose GT box is non-empty (\"robust starts\", count in brackets); for the "
        "other starts the table counts how often the method correctly reported no region "
        "(`grew` false).  Paper variant: the printed rules with their defaults (lr 0.1, "
        "alpha 0.05, beta 0.0009, reg 0.1, 800 iterations, finite differences for OIR_W); "
        "ours: threshold 0.5, lattice flood fill + exact largest lattice box + face "
        "bisection with the default budget (3000 evaluations in 2-D); ours-fine: the same "
        "with `lattice=62` (a finer first lattice).",
        "",
        "## 1. On the interpolated dense maps (`map_score_fn`), 5 objects x 4 starts",
        "",
        *method_table(lite0_map),
        "",
        "Wall time on the map is the search's own overhead (interpolation is ~free); on the "
        "real renderer + model it is dominated by rendering and inference (section 2).",
        "",
        *findings(lite0_map),
        "",
    ]
    if real_rows:
        md += [
            f"## 2. Real renderer + model (`demo:{args.real_mesh}`, variant ours), vs the same "
            "map ground truth",
            "",
            "The score is re-rendered and re-classified at every point the search asks for "
            "(`SceneScore`, batched: one render + inference call per search step).  The map "
            "is a 6-degree sampling of this same function, so part of the IoU gap is the "
            "map's resolution (the real score has finer structure than the interpolated map).",
            "",
            *method_table(real_rows),
            "",
            "Per run: the real renderer + model, and the same search on the interpolated "
            "map (IoU only where the GT box is non-empty):",
            "",
            *per_run_table(sorted(real_rows + [
                r for r in lite0_map if r["mesh"] == f"demo:{args.real_mesh}"
                and (r["variant"], r["method"]) in {(q["variant"], q["method"])
                                                    for q in real_rows}],
                key=lambda r: (r["variant"], METHODS.index(r["method"]), start_idx(r),
                               r["source"] != "real"))),
            "",
        ]
    md += [
        "## 3. Every map run (EfficientNet-Lite0)",
        "",
        *per_run_table(sorted(lite0_map, key=lambda r: (MESHES.index(r["mesh"][5:]),
                                                        start_idx(r), r["variant"],
                                                        METHODS.index(r["method"])))),
        "",
        f"Total script time {time.time() - t0:.0f} s (maps and real runs cached under "
        "`results/`).",
    ]
    args.out.parent.mkdir(parents=True, exist_ok=True)
    args.out.write_text("\n".join(md) + "\n")
    log(f"wrote {args.out}")

    # ---------------------------------------------------------------- srvr_real.md
    smd = [
        "# SRVR: EfficientNet-Lite0 vs EfficientNet-Lite2 on the demo objects",
        "",
        f"Generated by `scripts/compare_regions.py` ({time.strftime('%Y-%m-%d')}).  SRVR = "
        "mean over the 5 demo objects x the paper's 4 start points (20 runs per row) of the "
        "region's volume / the domain's volume ([0, 360] x [-10, 86]); the 95% CI is a "
        "cluster bootstrap over objects (runs on one object are not independent), so with "
        "5 objects it is wide.  \"not grown\": runs whose region never grew (start not "
        "robust).  Class = the demo object's ImageNet class; threshold 0.5 (ours).",
        "",
        *gt_srvr_lines(map_rows, MODELS),
        *srvr_lines([r for r in map_rows if not (r["variant"] == "paper"
                                                 and r["method"] == "oir_w")],
                    "On the dense maps (interpolated scores)"),
    ]
    if real_srvr:
        smd += srvr_lines(real_srvr, "On the real renderer + model (variant ours)")
    args.srvr_out.write_text("\n".join(smd) + "\n")
    log(f"wrote {args.srvr_out}")


if __name__ == "__main__":
    main()
