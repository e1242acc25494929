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

MESHES = ["demo:mug", "pkg:pybullet/soccerball", "pkg:libero/yellow_bowl", "pkg:libero/basket"]


def rate(fn, n_items: int, repeats: int = 3) -> float:
    fn()  # warm-up (uploads the mesh and textures)
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n_items / best


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
             f"{args.batch}, best of 3 (Mesa llvmpipe unless a GPU driver is present)\n",
             "| mesh | faces | load textured (s) | load plain (s) | textured img/s | plain img/s "
             "| textured / plain |",
             "|---|---:|---:|---:|---:|---:|---:|"]
    for spec in MESHES:
        if spec in CATALOG and CATALOG[spec].file() is None:
            continue
        tex, t_tex = timed(lambda s=spec: load_mesh(s))
        plain, t_plain = timed(lambda s=spec: load_mesh(s, texture=False))
        r_tex = rate(lambda m=tex: renderer.render(m, params), args.batch)
        r_plain = rate(lambda m=plain: renderer.render(m, params), args.batch)
        lines.append(f"| {spec} | {len(tex.faces)} | {t_tex:.2f} | {t_plain:.2f} | {r_tex:.0f} | "
                     f"{r_plain:.0f} | {r_tex / r_plain:.2f} |")
        print(lines[-1], flush=True)
    renderer.close()
    text = "\n".join(lines) + "\n"
    print(text)
    if args.out:
        write_text_atomic(args.out, text)


if __name__ == "__main__":
    main()
