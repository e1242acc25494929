"""Renderer throughput, textured vs untextured, and mesh load times.

    .venv/bin/python benchmarks/bench_render.py [--size 224] [--batch 32] [--out benchmarks/results/render.md]

For each mesh: load time with and without texture, images/s of the same geometry rendered
textured and plain white, and their ratio. Target: textured >= 0.7 x untextured rate.
``pkg:`` meshes are skipped when their package is not installed.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np

from robustlens.io import write_text_atomic
from robustlens.render import MeshRenderer, load_mesh
from robustlens.render.catalog import CATALOG

MESHES = ["pkg:pybullet/soccerball", "pkg:libero/yellow_bowl", "pkg:libero/basket"]


def rate(fn, n_items: int, repeats: int = 4) -> tuple[float, float]:
    """(images per wall second, images per CPU second of this process, all threads), best of
    ``repeats``. CPU time is the steadier measure on a shared machine."""
    fn()  # warm-up (uploads the mesh and textures)
    wall = cpu = float("inf")
    for _ in range(repeats):
        t, c = time.perf_counter(), time.process_time()
        fn()
        wall = min(wall, time.perf_counter() - t)
        cpu = min(cpu, time.process_time() - c)
    return n_items / wall, n_items / cpu


def timed(fn):
    t = time.perf_counter()
    out = fn()
    return out, time.perf_counter() - t


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--out", default=None)
    args = ap.parse_args()
    renderer = MeshRenderer(args.size)
    rng = np.random.default_rng(0)
    params = {"azimuth": rng.uniform(0, 360, args.batch), "elevation": rng.uniform(-10, 90, args.batch)}
    lines = [f"{platform.processor() or platform.machine()}, {args.size}x{args.size}, batch "
             f"{args.batch}, best of 4 (Mesa llvmpipe unless a GPU driver is present). img/CPU-s "
             "= images per CPU second of the process (all threads): steadier than wall time "
             "when the machine is shared. 'tinted' = textured with object_color 0.8,1,1 (the "
             "linear-light multiply runs per pixel).\n",
             "| mesh | faces | load textured (s) | load plain (s) | plain img/s (img/CPU-s) "
             "| textured img/s (img/CPU-s) | tinted img/CPU-s | textured / plain (CPU) "
             "| tinted / plain (CPU) |",
             "|---|---:|---:|---:|---:|---:|---:|---:|---:|"]
    for spec in MESHES:
        if spec in CATALOG and CATALOG[spec].file() is None:
            continue
        tex, t_tex = timed(lambda s=spec: load_mesh(s))
        plain, t_plain = timed(lambda s=spec: load_mesh(s, texture=False))
        w_plain, c_plain = rate(lambda m=plain: renderer.render(m, params), args.batch)
        w_tex, c_tex = rate(lambda m=tex: renderer.render(m, params), args.batch)
        _, c_tint = rate(lambda m=tex: renderer.render(m, params, {"object_r": 0.8}), args.batch)
        lines.append(f"| {spec} | {len(tex.faces)} | {t_tex:.2f} | {t_plain:.2f} | "
                     f"{w_plain:.0f} ({c_plain:.0f}) | {w_tex:.0f} ({c_tex:.0f}) | {c_tint:.0f} | "
                     f"{c_tex / c_plain:.2f} | {c_tint / c_plain:.2f} |")
        print(lines[-1], flush=True)
    renderer.close()
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        write_text_atomic(args.out, text)


if __name__ == "__main__":
    main()
