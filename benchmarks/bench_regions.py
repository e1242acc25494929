"""Benchmark: robust-region methods x variants on analytic plateaus (1-D..4-D) and a map.

Run:  .venv/bin/python benchmarks/bench_regions.py [--overhead-ms 1.0] [--quick]
      [--maps "tests/data/maps/*.npz"] [--starts 8]

Real maps: every ``--maps`` file (``.npz`` with ``score`` (azimuth x elevation),
``azimuth``, ``elevation``; saved from ``robustlens map`` 6-degree runs) is used as a
black box twice: piecewise constant (nearest cell; the exact largest box is a box of
cells, `ground_truth_box`) and interpolated (`map_score_fn`; reference box = the exact
largest box on a 0.5-degree resampling of the interpolated map, 0.1-degree for boxes
under 6 degrees; starts whose reference box is thinner than 1.5 degrees -- a start scoring just above the threshold -- are
left out of the means and counted).  Starts: the paper's 4 (where robust) plus
``--starts`` seeded random robust cells per map.  "bad cells" = share of map cells
whose centre lies in the box and scores below the threshold (worst over runs); the
next column counts only cells below ``threshold - 0.02`` (an interpolated map's
below-threshold pocket around a cell scoring 0.49 is a fraction of a degree wide).

Every score function sleeps ``--overhead-ms`` per *call* (a stand-in for the fixed
cost of one renderer + classifier batch), so the wall time shows why sending a
whole step in one call matters.  "pts/call" is evaluations per call, i.e. how many
times fewer calls are made than by an implementation that scores one point (corner)
per call; "wall if 1 pt/call" is the measured wall time plus the overhead of those
extra calls.  One row per dimension is also *measured* one point per call.
Prints markdown tables.
"""

from __future__ import annotations

import argparse
import math
import time
from collections.abc import Callable

import numpy as np
from scipy.optimize import minimize

from robustlens.regions import (
    bad_cell_share,
    find_region,
    ground_truth_box,
    iou,
    map_domain,
    map_score_fn,
)
from robustlens.regions.srvr import PAPER_STARTS

METHODS = ("naive", "oir_b", "oir_w")
VARIANTS = ("paper", "ours")
LO = np.array([20.0, 10.0, 30.0, 40.0])
HI = np.array([60.0, 45.0, 90.0, 70.0])
W = np.array([0.6, 0.3, 0.9, 0.45])


def _sig(z: np.ndarray) -> np.ndarray:
    return 0.5 * (1.0 + np.tanh(0.5 * z))


class Plateau:
    """prod_i sig((x_i - l_i)/w_i) sig((u_i - x_i)/w_i): a soft box, height 1."""

    def __init__(self, lo: np.ndarray, hi: np.ndarray, w: np.ndarray) -> None:
        self.l, self.u, self.w = lo, hi, w
        self.n = lo.size

    def __call__(self, x: np.ndarray) -> np.ndarray:
        return (_sig((x - self.l) / self.w) * _sig((self.u - x) / self.w)).prod(axis=1)

    def half_width(self, i: int, tau: float) -> float:
        half = (self.u[i] - self.l[i]) / 2
        k = math.exp(-2 * half / self.w[i])
        s = 1 / tau - 1 - k
        return half + self.w[i] * math.log((s + math.sqrt(max(s * s - 4 * k, 0.0))) / 2)

    def true_box(self, t: float, dlo: np.ndarray, dhi: np.ndarray) -> tuple[np.ndarray, ...]:
        """Largest box with score >= t: per-dim levels tau_i, prod tau_i = t, max volume."""
        c = (self.l + self.u) / 2

        def box(taus: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
            h = np.array([self.half_width(i, taus[i]) for i in range(self.n)])
            return np.maximum(c - h, dlo), np.minimum(c + h, dhi)

        if self.n == 1:
            return box(np.array([t]))

        def neg_log_vol(lt: np.ndarray) -> float:
            lo, hi = box(np.exp(lt))
            return -float(np.sum(np.log(np.maximum(hi - lo, 1e-300))))

        pmax = _sig((self.u - self.l) / 2 / self.w) ** 2
        bounds = [(math.log(t), math.log(p) - 1e-12) for p in pmax]
        r = minimize(
            neg_log_vol,
            np.full(self.n, math.log(t) / self.n),
            method="SLSQP",
            bounds=bounds,
            constraints=[{"type": "eq", "fun": lambda lt: lt.sum() - math.log(t)}],
            options={"ftol": 1e-12, "maxiter": 300},
        )
        return box(np.exp(r.x))


def with_overhead(f: Callable[[np.ndarray], np.ndarray], ms: float) -> Callable:
    def g(x: np.ndarray) -> np.ndarray:
        if ms > 0:
            time.sleep(ms / 1000.0)
        return f(x)

    return g


def one_point_per_call(f: Callable[[np.ndarray], np.ndarray], ms: float) -> Callable:
    """What an unbatched implementation costs: every point is its own call."""

    def g(x: np.ndarray) -> np.ndarray:
        out = np.empty(len(x))
        for i in range(len(x)):
            if ms > 0:
                time.sleep(ms / 1000.0)
            out[i] = f(x[i : i + 1])[0]
        return out

    return g


def run_case(f, x0, dom, truth, method, variant, ms, period=None, **kw):
    t0 = time.perf_counter()
    res = find_region(with_overhead(f, ms), x0, dom, method=method, variant=variant, **kw)
    wall = time.perf_counter() - t0
    return {
        "method": method,
        "variant": variant,
        "iou": iou(res.box, truth, period=period),
        "vol": res.volume
        / max(float(np.prod(np.asarray(truth[1]) - np.asarray(truth[0]))), 1e-300),
        "evals": res.n_evaluations,
        "calls": res.n_calls,
        "ratio": res.n_evaluations / max(res.n_calls, 1),
        "wall": wall,
        "wall_unbatched": wall + (res.n_evaluations - res.n_calls) * ms / 1000.0,
        "grew": res.grew,
    }


def table(rows: list[dict], first: str) -> str:
    head = (
        f"| {first} | method | variant | IoU | vol/true | evals | calls | pts/call "
        "| wall (s) | wall if 1 pt/call (s) |"
    )
    lines = [head, "|" + "---|" * 10]
    for r in rows:
        lines.append(
            f"| {r['case']} | {r['method']} | {r['variant']} | {r['iou']:.3f} | {r['vol']:.3f} "
            f"| {r['evals']} | {r['calls']} | {r['ratio']:.1f} | {r['wall']:.2f} "
            f"| {r['wall_unbatched']:.2f} |"
        )
    return "\n".join(lines)


def soft_map():
    import xarray as xr

    az = np.arange(0.0, 360.0, 3.0)
    el = np.arange(-10.0, 90.0 + 1e-9, 3.0)
    a, e = np.meshgrid(az, el, indexing="ij")
    d = np.abs(((a - 20.0 + 180.0) % 360.0) - 180.0)
    vals = _sig((40 - d) / 4) * _sig((e - 5) / 3) * _sig((60 - e) / 3)
    return xr.DataArray(
        vals, dims=("azimuth", "elevation"), coords={"azimuth": az, "elevation": el}, name="score"
    )


# ------------------------------------------------------------------ real maps
def load_npz(path: str):
    import xarray as xr

    z = np.load(path)
    return xr.DataArray(z["score"].astype(np.float64), dims=("azimuth", "elevation"),
                        coords={"azimuth": z["azimuth"], "elevation": z["elevation"]},
                        name="score")


def map_runs(paths: list[str], n_random: int, t: float = 0.5) -> list[dict]:
    import xarray as xr

    rows = []
    for path in paths:
        da = load_npz(path)
        name = path.rsplit("/", 1)[-1].removesuffix(".npz")
        dom = map_domain(da, periodic=["azimuth"])
        good = np.argwhere(da.values >= t)
        if not len(good):
            continue
        rng = np.random.default_rng(0)
        pick = good[rng.choice(len(good), size=min(n_random, len(good)), replace=False)]
        starts = [(float(da.azimuth[i]), float(da.elevation[j])) for i, j in pick]
        starts += [tuple(map(float, p)) for p in PAPER_STARTS]
        for kind in ("constant", "interpolated"):
            fn = map_score_fn(da, periodic=["azimuth"],
                              method="nearest" if kind == "constant" else "linear")
            ref = da
            if kind == "interpolated":
                az = np.arange(0.0, 360.0, 0.5)
                el = np.arange(dom[0][1], dom[1][1] + 1e-9, 0.5)
                a, e = np.meshgrid(az, el, indexing="ij")
                ref = xr.DataArray(fn(np.c_[a.ravel(), e.ravel()]).reshape(a.shape),
                                   dims=("azimuth", "elevation"),
                                   coords={"azimuth": az, "elevation": el})
            for x0 in starts:
                if fn(np.array([x0]))[0] < t:
                    continue  # both variants are compared on robust starts only
                gt = ground_truth_box(ref, x0, t, periodic=["azimuth"])
                if kind == "interpolated" and np.min(gt[1] - gt[0]) < 6.0:
                    gt = fine_reference(fn, x0, gt, dom, t)
                degenerate = bool(np.min(gt[1] - gt[0]) < 1.5)
                gv = float(np.prod(gt[1] - gt[0]))
                for variant in VARIANTS:
                    for method in METHODS:
                        kw = {"periodic": [0], "threshold": t} if variant == "ours" else {}
                        t0 = time.perf_counter()
                        r = find_region(fn, x0, dom, method=method, variant=variant, **kw)
                        wall = time.perf_counter() - t0
                        rows.append({
                            "map": name, "kind": kind, "variant": variant, "method": method,
                            "x0": x0, "degenerate": degenerate,
                            "vol": r.volume / gv if gv > 0 else float("nan"),
                            "iou": iou(r.box, gt, period=[360.0, None]),
                            "bad": bad_cell_share(da, r.lower, r.upper, t, [0]),
                            "bad_clear": bad_cell_share(da, r.lower, r.upper, t - 0.02, [0]),
                            "evals": r.n_evaluations, "calls": r.n_calls, "wall": wall,
                            "converged": r.converged,
                        })
    return rows


def fine_reference(fn, x0, gt, dom, t: float, step: float = 0.1):
    """A small reference box again on a ``step``-degree resampling of a window around it
    (half a 0.5-degree cell of padding per side is a large error on a 2-degree box)."""
    import xarray as xr

    lo = np.asarray(gt[0]) - 2.0
    hi = np.asarray(gt[1]) + 2.0
    lo[1], hi[1] = max(lo[1], dom[0][1]), min(hi[1], dom[1][1])
    az = np.arange(lo[0], hi[0] + 1e-9, step)
    el = np.arange(lo[1], hi[1] + 1e-9, step)
    a, e = np.meshgrid(az, el, indexing="ij")
    win = xr.DataArray(fn(np.c_[a.ravel(), e.ravel()]).reshape(a.shape),
                       dims=("azimuth", "elevation"), coords={"azimuth": az, "elevation": el})
    x = (float(np.clip(x0[0], az[0], az[-1])) if x0[0] >= lo[0] else x0[0] + 360.0, x0[1])
    return ground_truth_box(win, x, t)


def map_table(rows: list[dict]) -> str:
    lines = [
        "| score | method | variant | runs | volume / exact: mean | worst | IoU mean | "
        "worst bad cells | ... below t - 0.02 | not converged | evaluations / region | "
        "wall ms / region |",
        "|---|---|---|---|---|---|---|---|---|---|---|---|",
    ]
    for kind in ("constant", "interpolated"):
        for method in METHODS:
            for variant in VARIANTS:
                sel = [r for r in rows if (r["kind"], r["method"], r["variant"])
                       == (kind, method, variant) and not r["degenerate"]]
                if not sel:
                    continue
                v = np.array([r["vol"] for r in sel])
                lines.append(
                    f"| {kind} | {method} | {variant} | {len(sel)} | {v.mean():.3f} | "
                    f"{v.min():.3f} | {np.mean([r['iou'] for r in sel]):.3f} | "
                    f"{max(r['bad'] for r in sel):.1%} | "
                    f"{max(r['bad_clear'] for r in sel):.1%} | "
                    f"{sum(not r['converged'] for r in sel)} | "
                    f"{np.mean([r['evals'] for r in sel]):.0f} | "
                    f"{1000 * np.mean([r['wall'] for r in sel]):.0f} |"
                )
    n_deg = len({(r["map"], r["x0"]) for r in rows if r["degenerate"]})
    lines.append(f"\n{n_deg} interpolated start(s) left out: reference box thinner than 1.5 "
                 "degrees (start scoring just above the threshold).")
    return "\n".join(lines)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--overhead-ms", type=float, default=1.0, help="sleep per score_fn call")
    ap.add_argument("--quick", action="store_true", help="skip the one-point-per-call runs")
    ap.add_argument("--maps", default="tests/data/maps/*.npz",
                    help="glob of real maps (.npz) used as black boxes; '' to skip")
    ap.add_argument("--starts", type=int, default=8, help="random robust starts per map")
    ap.add_argument("--nd", action="store_true",
                    help="also print the n-D tables (bench_regions_nd.py): 3-D / 4-D "
                         "plateaus and real 3-D maps against issue 20's targets")
    args = ap.parse_args()
    ms = args.overhead_ms
    t_start = time.perf_counter()

    rows = []
    for n in (1, 2, 3, 4):
        f = Plateau(LO[:n], HI[:n], W[:n])
        dom = (np.zeros(n), np.full(n, 100.0))
        x0 = LO[:n] + 0.3 * (HI[:n] - LO[:n])
        truth = f.true_box(0.5, *dom)
        for method in METHODS:
            for variant in VARIANTS:
                rows.append({"case": f"{n}-D", **run_case(f, x0, dom, truth, method, variant, ms)})
    print(f"## Analytic soft plateaus (product of sigmoids, score >= 0.5), {ms:g} ms per call\n")
    print(table(rows, "dims"))

    da = soft_map()
    start = (350.0, 30.0)
    truth = ground_truth_box(da, start, periodic=["azimuth"])
    f = map_score_fn(da, periodic=["azimuth"])
    map_rows = []
    for method in METHODS:
        for variant in VARIANTS:
            kw = {"periodic": [0]} if variant == "ours" else {}
            r = run_case(f, start, f.domain, truth, method, variant, ms, [360.0, None], **kw)
            map_rows.append({"case": "map", **r})
    print(
        "\n## 2-D semantic map (azimuth periodic, 3-degree grid, soft edges), start "
        f"{start}, truth = ground_truth_box\n"
    )
    print(table(map_rows, "case"))

    if not args.quick:
        print("\n## Measured one point per call (ours, oir_b) vs batched\n")
        print("| dims | evals | batched calls | batched wall (s) | 1-pt/call wall (s) | speed-up |")
        print("|---|---|---|---|---|---|")
        for n in (2, 3, 4):
            f = Plateau(LO[:n], HI[:n], W[:n])
            dom = (np.zeros(n), np.full(n, 100.0))
            x0 = LO[:n] + 0.3 * (HI[:n] - LO[:n])
            t0 = time.perf_counter()
            res = find_region(with_overhead(f, ms), x0, dom, method="oir_b")
            wb = time.perf_counter() - t0
            t0 = time.perf_counter()
            find_region(one_point_per_call(f, ms), x0, dom, method="oir_b")
            wu = time.perf_counter() - t0
            print(
                f"| {n}-D | {res.n_evaluations} | {res.n_calls} | {wb:.2f} | {wu:.2f} "
                f"| {wu / wb:.1f}x |"
            )
    if args.maps:
        import glob

        paths = sorted(glob.glob(args.maps))
        rows = map_runs(paths, args.starts)
        print(f"\n## Real semantic maps as black boxes ({len(paths)} maps, "
              f"{', '.join(p.rsplit('/', 1)[-1][:-4] for p in paths)})\n")
        print(map_table(rows))
    print(f"\n(total benchmark time {time.perf_counter() - t_start:.1f} s)")
    if args.nd:
        import bench_regions_nd

        print()
        bench_regions_nd.main()


if __name__ == "__main__":
    main()
