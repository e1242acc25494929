"""Which meshes does a model recognise? Coarse pose sweep per mesh, with and without texture.

    .venv/bin/python scripts/recognition_table.py [--model builtin:efficientnet_lite0 ...]
        [--az-step 30] [--el-step 20] [--only pkg:libero/basket ...] [--out benchmarks/results/recognition.md]
    .venv/bin/python scripts/recognition_table.py --candidates   # procedural demo candidates

Objects: every ``pkg:`` catalog entry that is installed plus the shipped ``demo:`` meshes
(or, with ``--candidates``, every procedural object of ``make_demo_meshes.py``). For each
model and object it sweeps azimuth 0..360 x elevation -10..90 (the paper's domain; the stop
is exclusive) and reports, textured and plain white: the share of poses where the object's
ImageNet class is top-1, the best score of the class and its pose, the most frequent top-1.
Models default to the shipped EfficientNet-Lite builtins (Lite1 only when registered).

Demo-set criterion (column "demo?"): the class is top-1 at some pose and its top-1 share over
the domain is >= 20% (textured for pkg: meshes).
"""

from __future__ import annotations

import argparse
import sys
import tempfile
import time
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))

from robustlens.io import write_text_atomic  # noqa: E402
from robustlens.models import list_builtins, load_model  # noqa: E402
from robustlens.render import MeshRenderer, demo_class, demo_meshes, load_mesh  # noqa: E402
from robustlens.render.catalog import CATALOG  # noqa: E402
from robustlens.render.materials import materials_of  # noqa: E402
from robustlens.semantic import SemanticMap, parse_grids  # noqa: E402

CANDIDATE_CLASSES = {"mug": "coffee mug", "bottle": "water bottle", "wine_bottle": "wine bottle",
                     "vase": "vase", "bowl": "mixing bowl", "bucket": "bucket",
                     "table": "dining table", "chair": "folding chair", "barrel": "barrel"}
LITE = ["efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2"]


def objects(args: argparse.Namespace, tmp: Path) -> list[tuple[str, str, str]]:
    """(name shown, mesh spec or path, ImageNet class name) of every object to sweep."""
    if args.candidates:
        import make_demo_meshes

        out = []
        for name, make in make_demo_meshes.OBJECTS.items():
            path = tmp / f"{name}.glb"
            m = make()
            m.apply_transform(make_demo_meshes.Z_TO_Y)
            m.export(path)
            out.append((name, str(path), CANDIDATE_CLASSES[name]))
        return out
    out = [(spec, spec, e.class_name) for spec, e in CATALOG.items() if e.file() is not None]
    out += [(f"demo:{n}", f"demo:{n}", demo_class(f"demo:{n}")) for n in demo_meshes()]
    if args.only:
        out = [o for o in out if o[0] in args.only]
    return out


def sweep(clf, mesh, cls: int, axes, renderer) -> tuple[float, float, tuple, str, str]:
    ds = SemanticMap(axes).run(clf, mesh, cls, renderer=renderer).map_
    s, top = ds["score"].values, ds["top1"].values
    i = np.unravel_index(int(np.argmax(s)), s.shape)
    freq = Counter(top.ravel().tolist()).most_common(1)[0][0]
    pose = (float(axes[0].values[i[0]]), float(axes[1].values[i[1]]))
    return float((top == cls).mean()), float(s[i]), pose, clf.labels[int(top[i])], clf.labels[freq]


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__,
                                 formatter_class=argparse.RawDescriptionHelpFormatter)
    ap.add_argument("--model", action="append", default=None,
                    help="repeatable; default: the EfficientNet-Lite builtins")
    ap.add_argument("--az-step", type=float, default=30.0)
    ap.add_argument("--el-step", type=float, default=20.0)
    ap.add_argument("--only", nargs="*", default=None, help="object names to sweep")
    ap.add_argument("--candidates", action="store_true",
                    help="sweep the procedural candidates of make_demo_meshes.py instead")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    models = args.model or [f"builtin:{n}" for n in LITE if n in list_builtins()]
    axes = parse_grids([f"azimuth=0:360:{args.az_step:g}", f"elevation=-10:90:{args.el_step:g}"])
    n = len(axes[0].values) * len(axes[1].values)
    lines = [f"{n} poses per object and setting (azimuth 0:360:{args.az_step:g} x elevation "
             f"-10:90:{args.el_step:g}), distance 2.732, black background, light from above; "
             "'plain' = rendered white without texture (`load_mesh(..., texture=False)`). "
             "demo? = class top-1 at some pose and top-1 share >= 20% (textured).\n",
             "| object | ImageNet class | model | top-1 share textured | best score (top-1 there) "
             "at (az, el) | top-1 share plain | best plain | most frequent top-1 (textured) "
             "| demo? |",
             "|---|---|---|---:|---|---:|---:|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        objs = objects(args, Path(tmp))
        for spec in models:
            clf = load_model(spec)  # runtime auto: ONNX Runtime where it matches
            renderer = MeshRenderer(clf.input_size)
            for name, src, cls_name in objs:
                t0 = time.time()
                cls = clf.class_index(cls_name)
                tex_mesh = load_mesh(src)
                textured = materials_of(tex_mesh) is not None
                share, best, pose, best_top, freq = sweep(clf, tex_mesh, cls, axes, renderer)
                if textured:
                    p_share, p_best, *_ = sweep(clf, load_mesh(src, texture=False), cls, axes,
                                                renderer)
                else:
                    p_share, p_best = share, best
                ok = share >= 0.2 and share > 0
                lines.append(f"| {name} | {cls_name} ({cls}) | {clf.spec} | {share:.0%} | "
                             f"{best:.2f} ({best_top}) at ({pose[0]:g}, {pose[1]:g}) | "
                             f"{p_share:.0%} | {p_best:.2f} | {freq} | "
                             f"{'yes' if ok else 'no'} |")
                print(lines[-1], f"[{time.time() - t0:.0f} s]", flush=True)
            renderer.close()
    text = "\n".join(lines) + "\n"
    if args.out:
        write_text_atomic(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
