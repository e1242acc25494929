"""Which demo objects does a model recognise? Coarse pose sweep per candidate mesh.

    .venv/bin/python scripts/recognition_table.py [--model default] [--out benchmarks/results/recognition.md]

Builds every candidate of ``make_demo_meshes.py`` (shipped or not), sweeps azimuth 0:360:15 x
elevation -10:90:10 and prints a markdown table: intended ImageNet class, share of poses where
it is top-1, best score of the class and its pose, the most frequent top-1 label. Objects
whose class is never top-1 are not shipped.
"""

from __future__ import annotations

import argparse
import sys
import tempfile
from collections import Counter
from pathlib import Path

import numpy as np

sys.path.insert(0, str(Path(__file__).resolve().parent))
import make_demo_meshes  # noqa: E402

from robustlens.io import write_text_atomic  # noqa: E402
from robustlens.models import load_model  # noqa: E402
from robustlens.render import load_mesh  # noqa: E402
from robustlens.semantic import SemanticMap, parse_grids  # noqa: E402

INTENDED = {"mug": "coffee mug", "bottle": "water bottle", "wine_bottle": "wine bottle",
            "vase": "vase", "bowl": "mixing bowl", "bucket": "bucket", "table": "dining table",
            "chair": "folding chair", "barrel": "barrel"}


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__)
    ap.add_argument("--model", default="default")
    ap.add_argument("--out", type=Path, default=None)
    args = ap.parse_args()
    clf = load_model(args.model)
    axes = parse_grids(["azimuth=0:360:15", "elevation=-10:90:10"])
    lines = [f"Model `{clf.spec}`, {len(axes[0].values) * len(axes[1].values)} poses per object "
             "(azimuth 0:360:15 x elevation -10:90:10), distance 2.732, white object, black "
             "background, light from above.\n",
             "| object | ImageNet class | top-1 share | best score (top-1 there) | at (az, el) "
             "| most frequent top-1 | shipped |",
             "|---|---|---:|---:|---|---|---|"]
    with tempfile.TemporaryDirectory() as tmp:
        for name, make in make_demo_meshes.OBJECTS.items():
            path = Path(tmp) / f"{name}.glb"
            m = make()
            m.apply_transform(make_demo_meshes.Z_TO_Y)
            m.export(path)
            mesh = load_mesh(path)
            cls = clf.class_index(INTENDED[name])
            ds = SemanticMap(axes).run(clf, mesh, cls)
            s, top = ds["score"].values, ds["top1"].values
            share = float((top == cls).mean())
            i = np.unravel_index(int(np.argmax(s)), s.shape)
            best_top = clf.labels[int(top[i])]
            freq = Counter(top.ravel().tolist()).most_common(1)[0][0]
            shipped = name in make_demo_meshes.SHIPPED
            lines.append(f"| {name} | {INTENDED[name]} ({cls}) | {share:.0%} | {s[i]:.2f} "
                         f"({best_top}) | ({axes[0].values[i[0]]:g}, {axes[1].values[i[1]]:g}) "
                         f"| {clf.labels[freq]} | {'yes' if shipped else 'no'} |")
            print(lines[-1], flush=True)
    text = "\n".join(lines) + "\n"
    if args.out:
        write_text_atomic(args.out, text)
    print(text)


if __name__ == "__main__":
    main()
