"""Robust regions in 3-D and 4-D (variant "ours", default budget), printed as tables.

* Anisotropic off-centre plateaus: products of sigmoids whose edge widths differ by
  100x between dims (seeded, 10 per n), start inside the true box; the largest box is
  solved by constrained optimisation.  Targets (issue 20): IoU >= 0.9 with <= 50% of
  the paper variant's evaluations.
* Real 3-D semantic maps (tests/data/maps3d, made by scripts/make_maps3d.py: azimuth x
  elevation x distance or light elevation, 10-degree grids, EfficientNet-Lite0/1/2 on
  demo and real meshes) used as piecewise-constant black boxes; exact largest box by
  exhaustive search.  Targets: volume >= 0.9 of the exact box on average, >= 0.7
  worst, <= 2% bad cells in the box.  The search was tuned looking at all but the
  maps in ``make_maps3d.HELD_OUT``.

    .venv/bin/python benchmarks/bench_regions_nd.py
"""

from __future__ import annotations

import sys
import time
from pathlib import Path

import numpy as np
import xarray as xr

ROOT = Path(__file__).resolve().parents[1]
sys.path.insert(0, str(ROOT / "tests"))

from test_regions import Plateau  # noqa: E402

from robustlens.regions import (  # noqa: E402
    bad_cell_share,
    find_region,
    ground_truth_box,
    iou,
    map_domain,
    map_score_fn,
)

T = 0.5
METHODS = ("naive", "oir_b", "oir_w")
PAPER_EVALS = {"naive": lambda n: 800 * 2**n, "oir_b": lambda n: 1600 * 2**n,
               "oir_w": lambda n: 800 * 2**n * (1 + 2 * n)}
sys.path.insert(0, str(ROOT / "scripts"))
from make_maps3d import HELD_OUT  # noqa: E402


def plateau_cases(n: int, k: int, seed: int) -> list[tuple[np.ndarray, ...]]:
    """Seeded anisotropic plateaus: edge widths 0.1 .. 10 (100x) and a start inside."""
    rng = np.random.default_rng(seed)
    dom = (np.zeros(n), np.full(n, 100.0))
    out = []
    for _ in range(k):
        c = rng.uniform(30, 70, n)
        half = rng.uniform(8, 30, n)
        w = 10 ** rng.uniform(-1, 1, n)
        w[rng.integers(n)] = 0.1
        w[(rng.integers(n - 1) + 1 + int(np.argmin(w))) % n] = 10.0
        w = np.minimum(w, half / 2)
        lo, hi = c - half, c + half
        tl, th = Plateau(lo, hi, w).true_box(T, *dom)
        x0 = tl + rng.uniform(0.15, 0.85, n) * (th - tl)
        out.append((lo, hi, w, x0))
    return out


def load_map(path: Path) -> xr.DataArray:
    z = np.load(path)
    dims = [str(d) for d in z["dims"]]
    return xr.DataArray(z["score"].astype(np.float64), dims=dims,
                        coords={d: z[d] for d in dims}, name="score")


def plateau_table() -> None:
    print("| n | method | IoU mean / min | vol ratio min | evaluations max / paper's | converged |")
    print("|---|---|---|---|---|---|")
    for n in (3, 4):
        dom = (np.zeros(n), np.full(n, 100.0))
        for m in METHODS:
            rows = []
            for lo, hi, w, x0 in plateau_cases(n, 10, n):
                f = Plateau(lo, hi, w)
                truth = f.true_box(T, *dom)
                r = find_region(f, x0, dom, method=m)
                rows.append((iou(r.box, truth), r.volume / float(np.prod(truth[1] - truth[0])),
                             r.n_evaluations, r.converged))
            a = np.array(rows, dtype=float)
            print(f"| {n} | {m} | {a[:, 0].mean():.3f} / {a[:, 0].min():.3f} | "
                  f"{a[:, 1].min():.3f} | {int(a[:, 2].max())} / {PAPER_EVALS[m](n)} "
                  f"({a[:, 2].max() / PAPER_EVALS[m](n):.0%}) | {a[:, 3].mean():.0%} |")


def map_table(k: int = 8) -> None:
    print("| map | method | vol ratio mean / min | runs < 0.7 | IoU mean | bad cells max "
          "| runs > 2% bad | evaluations max | s |")
    print("|---|---|---|---|---|---|---|---|---:|")
    for path in sorted((ROOT / "tests" / "data" / "maps3d").glob("*.npz")):
        da = load_map(path)
        per = [d for d in da.dims if d in ("azimuth", "light_azimuth")]
        fn = map_score_fn(da, periodic=per, method="nearest")
        dom = map_domain(da, periodic=per)
        good = np.argwhere(da.values >= T)
        if len(good) == 0:
            print(f"| {path.stem} | - | no pose scores >= {T} | | | | |")
            continue
        pick = good[np.random.default_rng(0).choice(len(good), size=min(k, len(good)),
                                                    replace=False)]
        pidx = [da.dims.index(d) for d in per]
        for m in METHODS:
            vols, ious, bads, evs = [], [], [], []
            t0 = time.perf_counter()
            for idx in pick:
                x0 = np.array([float(da[d].values[j]) for d, j in zip(da.dims, idx, strict=True)])
                gt = ground_truth_box(da, x0, T, periodic=per)
                r = find_region(fn, x0, dom, method=m, periodic=pidx)
                vgt = float(np.prod(gt[1] - gt[0]))
                vols.append(r.volume / vgt if vgt > 0 else 1.0)
                ious.append(iou(r.box, gt, period=[360.0 if d in per else None
                                                   for d in da.dims]))
                bads.append(bad_cell_share(da, r.lower, r.upper, T, per))
                evs.append(r.n_evaluations)
            tag = path.stem + (" (held out)" if path.stem in HELD_OUT else "")
            v, b = np.array(vols), np.array(bads)
            print(f"| {tag} | {m} | {v.mean():.2f} / {v.min():.2f} | {(v < 0.7).sum()} / "
                  f"{len(v)} | {np.mean(ious):.2f} | {b.max():.1%} | {(b > 0.02).sum()} | "
                  f"{max(evs)} | {time.perf_counter() - t0:.1f} |")


def main() -> None:
    print("## Regions in n-D: anisotropic plateaus (edge widths 100x apart)\n")
    plateau_table()
    print("\n## Regions in 3-D: real semantic maps as black boxes\n")
    map_table()


if __name__ == "__main__":
    main()
