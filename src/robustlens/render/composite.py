"""Box-annotated photos made from meshes: demo objects rendered onto procedural backgrounds.

The object's box comes from its projected silhouette, so it is exact. Written in the plain
CSV layout (``image,label,xmin,ymin,xmax,ymax``) that ``robustlens score --data`` reads.
"""

from __future__ import annotations

import csv
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from ..errors import BadInput
from ..io import atomic_path
from .gl import MeshRenderer
from .mesh import demo_class, load_mesh


def procedural_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A smooth random colour field with blobs and fine texture, ``(size, size, 3)`` in [0, 1]."""
    yy, xx = np.mgrid[0:size, 0:size] / size
    c0, c1 = rng.random(3), rng.random(3)
    angle = rng.uniform(0, 2 * np.pi)
    t = (np.cos(angle) * xx + np.sin(angle) * yy)
    t = (t - t.min()) / max(np.ptp(t), 1e-6)
    img = c0[None, None] * (1 - t[..., None]) + c1[None, None] * t[..., None]
    for _ in range(int(rng.integers(2, 6))):  # soft blobs
        cx, cy, r = rng.random(), rng.random(), rng.uniform(0.05, 0.3)
        w = np.exp(-((xx - cx) ** 2 + (yy - cy) ** 2) / (2 * r * r))[..., None]
        img = img * (1 - 0.6 * w) + 0.6 * w * rng.random(3)[None, None]
    noise = ndimage.gaussian_filter(rng.standard_normal((size, size, 3)), sigma=(1.5, 1.5, 0))
    return np.clip(img + 0.06 * noise, 0.0, 1.0)


def make_rendered_dataset(out_dir: str | os.PathLike[str], meshes: Sequence[str],
                          classes: Sequence[str] | None = None, n_per_object: int = 8,
                          size: int = 256, seed: int = 0,
                          elevation_range: tuple[float, float] = (0.0, 40.0)) -> Path:
    """Render each mesh ``n_per_object`` times (random azimuth/elevation/scale/position) onto
    procedural backgrounds; write PNGs and ``boxes.csv`` (label = class name). Returns the CSV.

    ``classes`` default to the demo meshes' known ImageNet classes.
    """
    out = Path(out_dir)
    if classes is None:
        classes = [demo_class(m) or "" for m in meshes]
        missing = [m for m, c in zip(meshes, classes, strict=True) if not c]
        if missing:
            raise BadInput(f"--mesh {missing[0]}: not a demo mesh; give its class")
    if len(classes) != len(meshes):
        raise BadInput("classes: expected one class per mesh")
    rng = np.random.default_rng(seed)
    renderer = MeshRenderer(image_size=size)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    for mesh_spec, cls in zip(meshes, classes, strict=True):
        mesh = load_mesh(mesh_spec)
        n = n_per_object
        pose = {"azimuth": rng.uniform(0, 360, n), "elevation": rng.uniform(*elevation_range, n),
                "distance": rng.uniform(2.4, 4.0, n)}
        black = renderer.render(mesh, pose)
        white = renderer.render(mesh, pose, fixed={"background_r": 1.0, "background_g": 1.0,
                                                   "background_b": 1.0})
        # coverage alpha: 0 where the background shows through, 1 on the object
        alpha = (1.0 - (white - black).mean(dim=1, keepdim=True)).clamp(0, 1)
        for i in range(n):
            a = alpha[i, 0].numpy()
            ys, xs = np.nonzero(a > 0.5)
            if len(xs) == 0:
                continue
            # move the object at random, but never across the border (np.roll wraps around)
            shift = np.array([rng.integers(-ys.min(), size - ys.max()),
                              rng.integers(-xs.min(), size - xs.max())])
            a = np.roll(a, tuple(shift), axis=(0, 1))
            obj = np.roll(black[i].permute(1, 2, 0).numpy(), tuple(shift), axis=(0, 1))
            bg = procedural_background(rng, size)
            img = obj + (1 - a[..., None]) * bg  # black render = premultiplied colour
            ys, xs = np.nonzero(a > 0.5)
            name = f"{Path(str(mesh_spec)).stem.replace('demo:', '')}_{i:03d}.png"
            Image.fromarray((np.clip(img, 0, 1) * 255 + 0.5).astype(np.uint8)).save(
                out / "images" / name)
            rows.append([f"images/{name}", cls, int(xs.min()), int(ys.min()), int(xs.max()) + 1,
                         int(ys.max()) + 1])
    csv_path = out / "boxes.csv"
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "label", "xmin", "ymin", "xmax", "ymax"])
        w.writerows(rows)
    return csv_path


