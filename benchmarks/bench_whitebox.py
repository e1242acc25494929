"""White-box OIR_W: cost and accuracy of one score gradient, Mitsuba vs finite differences.

    .venv/bin/python benchmarks/bench_whitebox.py [--mesh demo:mug] [--size 224] [--seeds 3]
        [--out benchmarks/results/whitebox.md]

For the default model on one mesh at the pose (130, 30), gradient of the true-class score
with respect to (azimuth, elevation), per degree:

* cost: seconds per gradient (after the JIT warm-up) for several Mitsuba spp settings
  (primal / adjoint), against central finite differences (1 degree) with moderngl
  (4 renders + 4 classifications, batched) and with Mitsuba at the same spp;
* accuracy: the Mitsuba gradient's mean and spread over ``--seeds`` sampler seeds, next to
  the moderngl finite difference and the finite difference of the Mitsuba renderer itself.

CPU (``llvm_ad_rgb``) here. ``--variant cuda_ad_rgb`` runs the CUDA variant (written,
untested: no GPU was available when this was written). Prints a skip line when the
white-box extra is not installed.
"""

from __future__ import annotations

import argparse
import platform
import time

import numpy as np


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--mesh", default="demo:mug")
    ap.add_argument("--size", type=int, default=224)
    ap.add_argument("--seeds", type=int, default=3)
    ap.add_argument("--spp", default="16/4,64/16,256/32")
    ap.add_argument("--variant", default="llvm_ad_rgb")
    ap.add_argument("--out", default=None)
    a = ap.parse_args()
    from robustlens.render.diff import backend_problem

    problem = backend_problem(a.variant)
    if problem:
        print(f"skipped: {problem}")
        return
    from robustlens.models import load_model
    from robustlens.regions.scene import SceneScore
    from robustlens.regions.whitebox import WhiteBoxScore
    from robustlens.render import MeshRenderer, demo_class, load_mesh
    from robustlens.render.diff import DiffMeshRenderer, llvm_in_use

    clf = load_model()
    mesh = load_mesh(a.mesh)
    cid = clf.class_index(demo_class(a.mesh) or 504)
    names = ["azimuth", "elevation"]
    dom = (np.array([0.0, -10.0]), np.array([360.0, 90.0]))
    x = np.array([[130.0, 30.0]])
    h = 1.0
    stencil = np.array([[x[0, 0] + h, x[0, 1]], [x[0, 0] - h, x[0, 1]],
                        [x[0, 0], x[0, 1] + h], [x[0, 0], x[0, 1] - h]])

    def fd(fn) -> np.ndarray:
        s = fn(stencil)
        return np.array([(s[0] - s[1]) / (2 * h), (s[2] - s[3]) / (2 * h)])

    gl = MeshRenderer(a.size)
    with SceneScore(clf, mesh, cid, names, dom, renderer=gl) as sc:
        fd(sc)
        t = time.perf_counter()
        g_gl = fd(sc)
        t_gl = time.perf_counter() - t
    rows = []
    for setting in a.spp.split(","):
        spp, spp_grad = (int(v) for v in setting.split("/"))
        r = DiffMeshRenderer(a.size, spp=spp, spp_grad=spp_grad, variant=a.variant)
        wb = WhiteBoxScore(clf, mesh, cid, names, dom, renderer=r)
        wb.value_and_grad(x)  # JIT warm-up
        grads, times = [], []
        for seed in range(a.seeds):
            r.seed = seed
            t = time.perf_counter()
            grads.append(wb.value_and_grad(x)[1][0])
            times.append(time.perf_counter() - t)
        t = time.perf_counter()
        g_fd_mi = fd(wb)
        t_fd_mi = time.perf_counter() - t
        g = np.array(grads)
        rows.append((f"{spp}/{spp_grad}", float(np.median(times)), t_fd_mi, g.mean(0), g.std(0),
                     g_fd_mi))
    lines = [f"# White-box gradient: {a.mesh}, class {cid}, {a.size} px, pose (130, 30), "
             f"{clf.spec}; {platform.processor() or platform.machine()}, {a.variant}, "
             f"libLLVM {llvm_in_use() if a.variant.startswith('llvm') else '-'}", "",
             "| gradient | spp (primal/adjoint) | s per gradient | d score/d azimuth (per deg) "
             "| d score/d elevation (per deg) |",
             "|---|---|---|---|---|",
             f"| FD 1 deg, moderngl | 4 MSAA | {t_gl:.2f} | {g_gl[0]:+.4f} | {g_gl[1]:+.4f} |"]
    for name, t_ad, t_fd, mean, std, g_fd_mi in rows:
        lines.append(f"| Mitsuba AD, {a.seeds} seeds (mean ± sd) | {name} | {t_ad:.2f} | "
                     f"{mean[0]:+.4f} ± {std[0]:.4f} | {mean[1]:+.4f} ± {std[1]:.4f} |")
        lines.append(f"| FD 1 deg, Mitsuba (seed {a.seeds - 1}) | {name} | {t_fd:.2f} | "
                     f"{g_fd_mi[0]:+.4f} | {g_fd_mi[1]:+.4f} |")
    text = "\n".join(lines)
    print(text)
    if a.out:
        from robustlens.io import write_text_atomic

        write_text_atomic(a.out, text + "\n")


if __name__ == "__main__":
    main()
