"""Throughput of class-robustness scoring vs a plain forward + backward pass.

    .venv/bin/python benchmarks/bench_cam.py [--device cpu] [--quick]

Prints a markdown table (images/s) for the embedded default model (EfficientNet-Lite0,
224 px) and the planted-cue CNN (64 px):

* ``fwd+bwd``: ``module(normalize(x))``, true-class logits summed, ``backward()`` to the
  parameters -- the reference;
* ``gradcam++ scoring``: :func:`compute_cams_and_logits` (Grad-CAM++ maps of the true class
  plus the logits) and the per-image scores, same batch; ratio = its speed / the reference
  (target >= 0.7x);
* ``smooth`` (Grad-CAM++ with test-time augmentation, 6 passes) and ``scorecam`` (one masked
  forward per CAM-layer channel).  For the ImageNet model (1280 channels, minutes per image on
  CPU) Score-CAM is estimated as (channels + 1) x the measured no-grad forward time per image
  unless ``--full`` is given.

Input decoding is excluded (tensors are prepared once).  Runs in well under 3 minutes on
2 CPU cores.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable
from typing import Any

import numpy as np
import torch

from robustlens.models import load_model
from robustlens.representation.cam import compute_cams_and_logits
from robustlens.representation.scores import image_scores, prediction_scores


def _time(fn: Callable[[], object], reps: int, warmup: bool = True) -> float:
    if warmup:
        fn()
    best = float("inf")
    for _ in range(reps):
        t = time.perf_counter()
        fn()
        best = min(best, time.perf_counter() - t)
    return best


def _layer_channels(clf: Any, x: torch.Tensor) -> int:
    seen: list[int] = []
    h = clf.layer().register_forward_hook(lambda _m, _i, o: seen.append(int(o.shape[1])))
    try:
        with torch.no_grad():
            clf.module(clf.normalize(x))
    finally:
        h.remove()
    return seen[0]


def bench(spec: str, batch: int, scorecam_images: int, reps: int, device: str
          ) -> list[tuple[str, str, int, float, str]]:
    clf = load_model(spec, device=device)
    s = clf.input_size
    g = torch.Generator().manual_seed(0)
    x = torch.rand(batch, 3, s, s, generator=g)
    y = torch.randint(0, clf.num_classes, (batch,), generator=g)
    masks = np.zeros((batch, s, s), bool)
    masks[:, s // 4: 3 * s // 4, s // 4: 3 * s // 4] = True
    params = [p for p in clf.module.parameters()]

    def fwd_bwd() -> None:
        for p in params:
            p.grad = None
        out = clf.module(clf.normalize(x))
        out.gather(1, y.to(out.device)[:, None]).sum().backward()

    def scoring(method: str, n: int) -> Callable[[], None]:
        def run() -> None:
            cams, logits = compute_cams_and_logits(clf, x[:n], y[:n], method, scorecam_batch=64)
            image_scores(cams, masks[:n])
            prediction_scores(logits, y[:n].numpy())
        return run

    rows = []
    t_ref = _time(fwd_bwd, reps)
    ref = batch / t_ref
    rows.append((spec, "fwd+bwd (reference)", batch, ref, "1.00x"))
    for method, n, r in [("gradcam++", batch, reps), ("gradcam", batch, reps),
                         ("smooth", batch, 1), ("scorecam", scorecam_images, 1)]:
        if n == 0:  # Score-CAM too slow to time here: channels x a no-grad forward
            channels = _layer_channels(clf, x[:1])
            with torch.no_grad():
                t_fwd = _time(lambda: clf.module(clf.normalize(x)), reps) / batch
            ips = 1.0 / ((channels + 1) * t_fwd)
            rows.append((spec, f"scorecam scoring (est. {channels}+1 forwards)", 1, ips,
                         f"{ips / ref:.3f}x"))
            continue
        t = _time(scoring(method, n), r, warmup=method in ("gradcam++", "gradcam"))
        ips = n / t
        rows.append((spec, f"{method} scoring", n, ips, f"{ips / ref:.3f}x"))
    for p in params:
        p.grad = None
    return rows


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--device", default="cpu")
    ap.add_argument("--quick", action="store_true", help="fewer repetitions")
    ap.add_argument("--full", action="store_true",
                    help="time Score-CAM on the ImageNet model too (minutes per image on CPU)")
    args = ap.parse_args()
    reps = 1 if args.quick else 2
    t0 = time.perf_counter()
    rows = bench("planted_cue", 64, 16, reps, args.device)
    rows += bench("default", 8, 1 if args.full else 0, reps, args.device)
    print(f"\ndevice: {args.device}, torch threads: {torch.get_num_threads()}\n")
    print("| model | method | images | images/s | s/image | vs fwd+bwd |")
    print("|---|---|---:|---:|---:|---:|")
    for spec, method, b, ips, ratio in rows:
        print(f"| {spec} | {method} | {b} | {ips:.3g} | {1 / ips:.3g} | {ratio} |")
    print(f"\ntotal {time.perf_counter() - t0:.0f} s")


if __name__ == "__main__":
    main()
