"""Runtimes for forward-only passes: eager PyTorch vs ONNX Runtime (vs torch.compile).

    .venv/bin/python benchmarks/bench_runtime.py [--full] [--model default] [--mesh demo:mug]

Measures, for the default model on the CPU:
  1. classifier-only images/s at batch 8/32/64: eager torch, ONNX Runtime; torch.compile at
     batch 32 with --full (its compile alone takes ~1.5 min on 2 cores);
  2. the semantic-map pipeline (render overlapped with inference) at batch 8/32/64 on ORT,
     and its ratio to ORT classifier-only (target >= 0.85);
  3. ORT thread settings in the map pipeline (intra-op threads x spinning);
  4. end-to-end `robustlens map` wall time (a subprocess: import, load, export/parity, map,
     write) for --runtime torch vs the default (target >= 2.5x) and max |score difference|;
  5. peak RSS of a 4,080-pose map (and with --full a 16,320-pose one) in subprocesses
     (resource.getrusage).
Writes the tables to benchmarks/results/runtime.md (about 6 min on the shared 2-core machine;
--full about 20 min: the 4,080-pose map on eager torch alone takes 6-7 min).
"""

from __future__ import annotations

import argparse
import os
import platform
import subprocess
import sys
import tempfile
import time
import warnings
from pathlib import Path

import numpy as np
import torch

from robustlens.models import load_model
from robustlens.models import runtime as rt
from robustlens.render import MeshRenderer, load_mesh
from robustlens.semantic import SemanticMap, parse_grids

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_maps import rate  # noqa: E402  (best-of-n items/s, the same in every benchmark)

HERE = Path(__file__).resolve().parent
RSS_SCRIPT = """
import resource, sys, time
from robustlens.models import load_model
from robustlens.models.runtime import prepare_runtime
from robustlens.render import MeshRenderer, load_mesh
from robustlens.semantic import SemanticMap, parse_grids
clf = prepare_runtime(load_model(sys.argv[1], runtime="torch"), sys.argv[2], log=lambda m: None)
mesh = load_mesh(sys.argv[3]); renderer = MeshRenderer(image_size=clf.input_size)
smap = SemanticMap(parse_grids(sys.argv[4].split()), batch_size=32)
smap.run(clf, mesh, 504, renderer)  # warm-up: two full batches reach the steady state
def status(key):  # VmHWM: ru_maxrss would keep the parent's peak across fork + exec
    for line in open("/proc/self/status"):
        if line.startswith(key + ":"):
            return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024
base = status("VmHWM")
t = time.perf_counter()
ds = SemanticMap(parse_grids(sys.argv[5].split()), batch_size=32).run(clf, mesh, 504,
                                                                     renderer).map_
dt = time.perf_counter() - t
peak = status("VmHWM")
print(ds["score"].size, base, peak, dt, clf.runtime)
"""


def map_rate(clf, mesh, renderer, batch: int, poses: int) -> float:
    smap = SemanticMap(parse_grids([f"azimuth=0:360:{360 / poses}"]), batch_size=batch)
    return rate(lambda: smap.run(clf, mesh, 504, renderer), poses, repeats=2)


def ort_forward(clf, threads: int, spin: bool) -> rt.OrtForward:
    os.environ["ROBUSTLENS_ORT_THREADS"] = str(threads)
    os.environ["ROBUSTLENS_ORT_SPIN"] = "1" if spin else "0"
    try:
        path, _ = rt.cached_export(clf, log=lambda m: None)
        return rt.OrtForward(path)
    finally:
        os.environ.pop("ROBUSTLENS_ORT_THREADS")
        os.environ.pop("ROBUSTLENS_ORT_SPIN")


def cli_map(args: list[str], out: Path) -> float:
    t = time.perf_counter()
    cli = [sys.executable, "-c", "from robustlens.cli import main; main()"]
    subprocess.run([*cli, "-q", "map", "--mesh", ARGS.mesh, "--model", ARGS.model, "--out",
                    str(out), *args], check=True, stdout=subprocess.DEVNULL,
                   stderr=subprocess.DEVNULL)
    return time.perf_counter() - t


def main() -> None:
    global ARGS
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="default")
    ap.add_argument("--mesh", default="demo:mug")
    ap.add_argument("--full", action="store_true",
                    help="also torch.compile, the 4,080-pose end-to-end map and the 16,320-pose "
                         "RSS map")
    ap.add_argument("--only", choices=["throughput", "e2e", "rss"], default=None,
                    help="run one section only")
    ARGS = args = ap.parse_args()
    warnings.simplefilter("ignore")
    lines: list[str] = []

    def out(s: str = "") -> None:
        print(s, flush=True)
        lines.append(s)

    clf = load_model(args.model, runtime="torch")
    mesh = load_mesh(args.mesh)
    renderer = MeshRenderer(image_size=clf.input_size)
    t = time.perf_counter()
    said: list[str] = []
    rt.prepare_runtime(clf, "onnxruntime", log=said.append)
    t_prep = time.perf_counter() - t
    ort = clf.forward_only
    assert clf.runtime == "onnxruntime"
    out(f"model {clf.spec}, mesh {args.mesh}, {clf.input_size} px, {os.cpu_count()} CPU cores, "
        f"torch {torch.__version__} ({torch.get_num_threads()} threads), "
        f"onnxruntime {__import__('onnxruntime').__version__} ({rt.ort_threads()} intra-op "
        f"threads, no spinning), {platform.machine()}; ONNX export + parity check "
        f"{t_prep:.1f} s ({'cache hit' if 'cached' in said[-1] else 'new export'})\n")
    if args.only in (None, "throughput"):
        throughput(args, clf, ort, mesh, renderer, out)
    renderer.close()
    if args.only in (None, "e2e"):
        end_to_end(args, out)
    if args.only in (None, "rss"):
        peak_rss(args, out)
    out("\n(2-core machine shared with other jobs while measured: absolute numbers are noisy, "
        "ratios within one run are the comparable part)")
    res = HERE / "results"
    res.mkdir(exist_ok=True)
    name = "runtime.md" if args.only is None else f"runtime_{args.only}.md"
    (res / name).write_text("\n".join(lines) + "\n")


def throughput(args, clf, ort, mesh, renderer, out) -> None:

    # ---------------------------------------------------------------- 1 + 2
    out("| batch | eager torch img/s | ORT img/s | map on ORT poses/s | map/ORT | map on torch poses/s |")
    out("|---:|---:|---:|---:|---:|---:|")
    ratios = {}
    for b in (8, 32, 64):
        images = renderer.render(mesh, {"azimuth": np.linspace(0, 360, b, endpoint=False)})
        x = clf.normalize(images)
        with torch.no_grad():
            r_torch = rate(lambda x=x: clf.module(x), b, repeats=2)
        r_ort = rate(lambda x=x: ort(x), b)
        r_map = map_rate(clf, mesh, renderer, b, max(128, 4 * b))
        r_map_torch = "–"
        if b == 32:
            clf.forward_only = None
            r_map_torch = f"{map_rate(clf, mesh, renderer, b, 64):.1f}"
            clf.forward_only = ort
        ratios[b] = r_map / r_ort
        out(f"| {b} | {r_torch:.1f} | {r_ort:.1f} | {r_map:.1f} | {r_map / r_ort:.2f} | "
            f"{r_map_torch} |")
    out(f"\nmap / ORT classifier-only at batch 32 = {ratios[32]:.2f} (target >= 0.85): "
        f"{'PASS' if ratios[32] >= 0.85 else 'FAIL'}")

    # ---------------------------------------------------------------- torch.compile
    if args.full:
        x = clf.normalize(renderer.render(mesh, {"azimuth": np.linspace(0, 360, 32,
                                                                          endpoint=False)}))
        t = time.perf_counter()
        try:
            comp = torch.compile(clf.module, dynamic=False)
            with torch.no_grad():
                y = comp(x)
                ref = clf.module(x)
            t_comp = time.perf_counter() - t
            d = float((y.softmax(1) - ref.softmax(1)).abs().max())
            with torch.no_grad():
                r_comp = rate(lambda: comp(x), 32, repeats=2)
            out(f"\ntorch.compile (inductor, CPU), batch 32: {r_comp:.1f} img/s after "
                f"{t_comp:.0f} s compiling; max |Δ softmax| vs eager {d:.0e}")
        except Exception as exc:  # a missing compiler etc.: report, do not fail the bench
            out(f"\ntorch.compile failed: {type(exc).__name__}: {str(exc).splitlines()[0][:120]}")

    # ---------------------------------------------------------------- 3 threads
    out("\n| ORT intra-op threads | spinning | classifier img/s (b=32) | map poses/s (b=32) |")
    out("|---:|---|---:|---:|")
    images = renderer.render(mesh, {"azimuth": np.linspace(0, 360, 32, endpoint=False)})
    x = clf.normalize(images)
    for threads, spin in ((1, False), (2, False), (2, True)):
        f = ort_forward(clf, threads, spin)
        clf.forward_only = f
        out(f"| {threads} | {'on' if spin else 'off'} | {rate(lambda f=f: f(x), 32):.1f} | "
            f"{map_rate(clf, mesh, renderer, 32, 160):.1f} |")
    clf.forward_only = ort


def end_to_end(args, out) -> None:
    from robustlens.semantic import load_map

    grids = [("azimuth=0:360:6", "elevation=-10:90:12")]
    if args.full:
        grids.append(("azimuth=0:360:3", "elevation=-10:90:3"))
    out("\n| end-to-end `robustlens map` (process start to map.nc + png) | poses | --runtime "
        "torch s | default (auto) s | speed-up | max abs score difference |")
    out("|---|---:|---:|---:|---:|---:|")
    for g in grids:
        grid = [x for kv in g for x in ("--grid", kv)]
        with tempfile.TemporaryDirectory() as tmp:
            t_torch = cli_map([*grid, "--runtime", "torch"], Path(tmp) / "torch")
            t_auto = cli_map(grid, Path(tmp) / "auto")
            a, b_ = load_map(Path(tmp) / "auto"), load_map(Path(tmp) / "torch")
            diff = float(np.abs(a["score"].values - b_["score"].values).max())
        out(f"| {' x '.join(g)} (auto -> {a.attrs['runtime']}) | {a['score'].size:,} | "
            f"{t_torch:.1f} | {t_auto:.1f} | {t_torch / t_auto:.1f}x | {diff:.1e} |")
    out("\ntargets: speed-up >= 2.5x, max abs score difference <= 2e-3")


def peak_rss(args, out) -> None:
    out("\n| map | poses | wall s | poses/s | peak RSS after a 72-pose warm-up MiB | "
        "peak RSS after the map MiB |")
    out("|---|---:|---:|---:|---:|---:|")
    sizes = [("3° grid", "azimuth=0:360:3 elevation=-10:90:3")]
    if args.full:
        sizes.append(("0.75° x 3° grid", "azimuth=0:360:0.75 elevation=-10:90:3"))
    for name, grid_s in sizes:
        r = subprocess.run([sys.executable, "-c", RSS_SCRIPT, args.model, "auto", args.mesh,
                            "azimuth=0:360:5", grid_s], capture_output=True, text=True,
                           check=True)
        n_, base, peak, dt, used = r.stdout.split()
        out(f"| {name} ({used}) | {int(n_):,} | {float(dt):.0f} | {int(n_) / float(dt):.1f} | "
            f"{float(base):.0f} | {float(peak):.0f} |")


if __name__ == "__main__":
    main()
