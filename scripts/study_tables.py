"""Print the README's study tables (markdown) from a study folder written by `robustlens run`.

    .venv/bin/python scripts/study_tables.py results/demo

* SRVR per criterion, method and start set, one column per model (bootstrap CI, never grew);
* calibration per model over all its map poses (top-1 accuracy, mean top-1 confidence,
  mean true-class score, share with score >= 0.5);
* class robustness (CRS) per class and model on each dataset.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import pandas as pd

from robustlens.regions.criterion import calibration, pooled_calibration
from robustlens.semantic import load_map
from robustlens.study.layout import StudyLayout


def _short(spec: str) -> str:
    return spec.split(":")[-1].replace("efficientnet_lite", "Lite")


def srvr_tables(root: Path) -> str:
    df = pd.read_csv(root / "srvr" / "srvr.csv")
    runs = pd.read_csv(root / "srvr" / "srvr_runs.csv")
    if "criterion" not in df.columns:
        df["criterion"], runs["criterion"] = "score", "score"
    models = list(dict.fromkeys(df["model"]))
    lines = ["| criterion | method | starts | " + " | ".join(_short(m) for m in models)
             + " | never grew (" + " / ".join(_short(m) for m in models) + ") |",
             "|---|---|---|" + "---|" * len(models) + "---|"]
    for (crit, meth, starts), sub in df.groupby(["criterion", "method", "starts"], sort=False):
        best = sub["srvr"].max()
        cells, grew = [], []
        for m in models:
            r = sub[sub["model"] == m]
            if r.empty:
                cells.append("—")
                grew.append("—")
                continue
            r = r.iloc[0]
            v = f"{r['srvr']:.3f} [{r['srvr_low']:.3f}, {r['srvr_high']:.3f}]"
            cells.append(f"**{v}**" if r["srvr"] == best else v)
            grew.append(f"{r['frac_not_grown']:.0%}")
        lines.append(f"| {crit} | {meth} | {'paper' if starts == 'fixed' else starts} | "
                     + " | ".join(cells) + " | " + " / ".join(grew) + " |")
    return "\n".join(lines)


def calibration_table(root: Path) -> str:
    lay = StudyLayout(root)
    per: dict[str, list[dict[str, float]]] = {}
    for _key, p in lay.find("maps", "map.nc", 2):
        ds = load_map(p)
        per.setdefault(str(ds.attrs["model"]), []).append(calibration(ds))
    lines = ["| model | poses | top-1 accuracy | mean top-1 confidence | confidence − accuracy "
             "| mean true-class score | share score ≥ 0.5 |", "|---|---:|---:|---:|---:|---:|---:|"]
    for model, cals in per.items():
        c = pooled_calibration(cals)

        def f(v: float | None, sign: str = "") -> str:
            return "—" if v is None else f"{v:{sign}.3f}"

        acc, conf = c["accuracy"], c["confidence"]
        gap = conf - acc if acc is not None and conf is not None else None
        lines.append(f"| {_short(model)} | {int(c['poses'] or 0)} | {f(acc)} | {f(conf)} | "
                     f"{f(gap, '+')} | {f(c['mean_score'])} | {f(c['score_robust'])} |")
    return "\n".join(lines)


def _markdown(df: pd.DataFrame) -> str:
    def cell(v: object) -> str:
        return f"{v:.2f}" if isinstance(v, float) else str(v)

    rows = ["| " + " | ".join(df.columns) + " |", "|" + "---|" * len(df.columns)]
    rows += ["| " + " | ".join(cell(v) for v in r) + " |" for r in df.itertuples(index=False)]
    return "\n".join(rows)


def crs_table(root: Path) -> str:
    out = []
    for model_dir in sorted((root / "representation").glob("*")):
        for f in sorted(model_dir.glob("*/*/class_scores.csv")):
            df = pd.read_csv(f)
            top1 = (df["top1"] * df["n"]).sum() / df["n"].sum() if "n" in df.columns else \
                df["top1"].mean()
            out.append(f"{model_dir.name} {f.parent.parent.name} {f.parent.name}: "
                       f"top-1 over the set {top1:.0%}")
            cols = [c for c in ("class_name", "n", "top1", "crs", "crs_low", "crs_high",
                                "crs_correct", "lift") if c in df.columns]
            out.append(_markdown(df[cols]))
    return "\n\n".join(out)


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("study", type=Path)
    args = ap.parse_args(argv)
    root = args.study
    if not (root / "srvr" / "srvr.csv").is_file():
        print(f"{root}: no srvr/srvr.csv (expected a study folder from `robustlens run`)",
              file=sys.stderr)
        return 2
    print("## SRVR\n\n" + srvr_tables(root) + "\n")
    print("## Calibration\n\n" + calibration_table(root) + "\n")
    print("## CRS\n\n" + crs_table(root))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
