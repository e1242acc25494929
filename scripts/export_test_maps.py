"""Export semantic maps of a study as the small ``.npz`` files the region tests use.

    .venv/bin/robustlens run --out results/demo          # the default study (3-degree maps)
    .venv/bin/python scripts/export_test_maps.py results/demo tests/data/maps \\
        --pick efficientnet_lite1/pkg_pybullet_soccerball --prefix study3_

Each file holds ``score`` (azimuth x elevation, float32), ``azimuth`` and ``elevation``:
what `tests/test_regions_known.py` and `benchmarks/bench_regions.py --maps` read.
"""

from __future__ import annotations

import argparse
import sys
from pathlib import Path

import numpy as np


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("study", type=Path, help="a study folder written by `robustlens run`")
    ap.add_argument("out", type=Path, help="folder for the .npz files")
    ap.add_argument("--pick", action="append", default=[],
                    help="MODEL/MESH folder names under maps/ (substring of "
                         "builtin_efficientnet_lite1/pkg_pybullet_soccerball); default: all")
    ap.add_argument("--prefix", default="", help="file name prefix")
    args = ap.parse_args()

    from robustlens.semantic import load_map

    paths = sorted(args.study.glob("maps/*/*/map.nc"))
    if not paths:
        print(f"{args.study}: no maps/*/*/map.nc (run `robustlens run --out` first)",
              file=sys.stderr)
        return 2
    args.out.mkdir(parents=True, exist_ok=True)
    for p in paths:
        name = f"{p.parent.parent.name}/{p.parent.name}"
        if args.pick and not any(k in name for k in args.pick):
            continue
        da = load_map(p)["score"].transpose("azimuth", "elevation")
        model = p.parent.parent.name.removeprefix("builtin_").removeprefix("efficientnet_")
        mesh = p.parent.name.removeprefix("pkg_pybullet_").removeprefix("pkg_libero_")
        mesh = mesh.removeprefix("demo_")
        dest = args.out / f"{args.prefix}{model}_{mesh}.npz"
        np.savez_compressed(dest, score=da.values.astype(np.float32),
                            azimuth=da.azimuth.values, elevation=da.elevation.values)
        print(f"{name} -> {dest} ({dest.stat().st_size} bytes)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
