"""Semantic-map throughput: renderer, classifier, the overlapped map pipeline, batch-1 loop.

    .venv/bin/python benchmarks/bench_maps.py [--model SPEC] [--mesh demo:mug] [--batch 32]

Prints a markdown table. Target: map poses/s >= 0.85 x classifier-only images/s (rendering
overlaps inference: the next batch is rendered while the current one is classified).
The classifier here runs on eager PyTorch; bench_runtime.py measures the ONNX Runtime path.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np
import torch

from robustlens.models import load_model
from robustlens.render import MeshRenderer, load_mesh
from robustlens.semantic import SemanticMap, parse_grids


def rate(fn, n_items: int, repeats: int = 3) -> float:
    fn()  # warm-up
    best = float("inf")
    for _ in range(repeats):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return n_items / best


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="default")
    ap.add_argument("--mesh", default="demo:mug")
    ap.add_argument("--batch", type=int, default=32)
    ap.add_argument("--poses", type=int, default=256)
    ap.add_argument("--device", default="cpu")
    args = ap.parse_args()

    clf = load_model(args.model, device=args.device)
    mesh = load_mesh(args.mesh)
    renderer = MeshRenderer(image_size=clf.input_size)
    b = args.batch
    az = np.linspace(0, 360, b, endpoint=False)
    images = renderer.render(mesh, {"azimuth": az})

    r_render = rate(lambda: renderer.render(mesh, {"azimuth": az}), b)
    r_clf = rate(lambda: clf.probs(images), b)
    step = 360.0 / args.poses
    axes = parse_grids([f"azimuth=0:360:{step}"])
    smap = SemanticMap(axes, batch_size=b)
    r_map = rate(lambda: smap.run(clf, mesh, 504, renderer), len(axes[0].values), repeats=2)

    def loop1() -> None:
        for a in az[:8]:
            img = renderer.render(mesh, {"azimuth": np.array([a])})
            clf.probs(img)

    r_loop = rate(loop1, 8, repeats=2)
    ratio = r_map / r_clf
    dev = torch.cuda.get_device_name() if args.device.startswith("cuda") else \
        f"CPU ({torch.get_num_threads()} threads)"
    print(f"model {clf.spec}, mesh {args.mesh} ({len(mesh.faces)} faces), "
          f"{clf.input_size} px, batch {b}, {dev}, {platform.machine()}\n")
    print("| stage | images/s |")
    print("|---|---:|")
    print(f"| render only (moderngl, 4x MSAA) | {r_render:.1f} |")
    print(f"| classifier only (batch {b}) | {r_clf:.1f} |")
    print(f"| semantic map, render overlapped with inference ({len(axes[0].values)} poses) "
          f"| {r_map:.1f} |")
    print(f"| batch-1 render-then-classify loop | {r_loop:.1f} |")
    print(f"\nmap / classifier-only = {ratio:.2f} (target >= 0.85): "
          f"{'PASS' if ratio >= 0.85 else 'FAIL'}")


if __name__ == "__main__":
    main()
