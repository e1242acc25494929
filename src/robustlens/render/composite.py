"""Box-annotated photos made from meshes: objects rendered onto real photographic backgrounds
(BSD-licensed photos shipped inside the scikit-image wheel, cropped away from any object) or
onto procedural colour fields.

The object's box comes from its projected silhouette, so it is exact. Written in the plain
CSV layout (``image,label,xmin,ymin,xmax,ymax``) that ``robustlens score --data`` reads.
"""

from __future__ import annotations

import csv
import functools
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image
from scipy import ndimage

from ..errors import BadInput
from ..images import open_image, write_image
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


# Object-free crops of the photos in ``skimage/data`` (x0, y0, x1, y1 in source pixels),
# chosen by eye: sky between the launch towers, the wooden table beside the espresso cup, the
# garage wall and shelves behind the motorcycle, and three full-frame textures. None of them
# shows an ImageNet object of the demo classes.
PHOTO_CROPS: tuple[tuple[str, tuple[int, int, int, int]], ...] = (
    ("rocket.jpg", (338, 0, 432, 330)),
    ("rocket.jpg", (92, 0, 188, 300)),
    ("coffee.png", (478, 0, 600, 400)),
    ("motorcycle_left.png", (0, 0, 170, 100)),
    ("motorcycle_left.png", (545, 0, 741, 92)),
    ("brick.png", (0, 0, 512, 512)),
    ("grass.png", (0, 0, 512, 512)),
    ("gravel.png", (0, 0, 512, 512)),
)


@functools.cache
def _photo(name: str) -> Image.Image:
    """A scikit-image sample photo, decoded once (mode ``RGB``, or ``L`` for grey ones)."""
    try:
        import skimage
    except ImportError:  # pragma: no cover - a dependency
        raise BadInput("background 'photo' needs scikit-image (pip install scikit-image)") from None
    path = Path(skimage.__file__).parent / "data" / name
    if not path.is_file():
        raise BadInput(f"background photo {path} is missing; reinstall scikit-image")
    return open_image(path)


def photo_background(rng: np.random.Generator, size: int) -> np.ndarray:
    """A random square crop of an object-free region of a real photo, resized to
    ``(size, size, 3)`` in [0, 1], flipped at random; grey photos get a random tint."""
    name, (x0, y0, x1, y1) = PHOTO_CROPS[int(rng.integers(len(PHOTO_CROPS)))]
    src = _photo(name)
    side = int(min(x1 - x0, y1 - y0) * rng.uniform(0.7, 1.0))
    cx = int(rng.integers(x0, x1 - side + 1))
    cy = int(rng.integers(y0, y1 - side + 1))
    crop = src.crop((cx, cy, cx + side, cy + side)).convert("RGB")
    img = np.asarray(crop.resize((size, size), Image.Resampling.BICUBIC), dtype=np.float32) / 255.0
    if rng.random() < 0.5:
        img = img[:, ::-1]
    if src.mode == "L":  # a grey texture (brick, grass, gravel): tint it
        img = img * (0.7 + 0.3 * rng.random(3))[None, None]
    return np.clip(img, 0.0, 1.0)


BACKGROUNDS = {"photo": photo_background, "procedural": procedural_background}


def make_rendered_dataset(out_dir: str | os.PathLike[str], meshes: Sequence[str],
                          classes: Sequence[str] | None = None, n_per_object: int = 8,
                          size: int = 256, seed: int = 0,
                          elevation_range: tuple[float, float] = (10.0, 50.0),
                          distance_range: tuple[float, float] = (2.0, 3.0),
                          background: str = "photo",
                          ups: Sequence[str] | None = None) -> Path:
    """Render each mesh ``n_per_object`` times (random azimuth/elevation/scale/position) onto
    ``background`` (``"photo"``: real photos, ``"procedural"``: random colour fields); write
    PNGs and ``boxes.csv`` (label = class name). Returns the CSV.

    Poses are drawn uniformly: any azimuth, ``elevation_range`` and ``distance_range`` (the
    defaults are product-photo poses, from slightly above with the object filling much of
    the frame: at the paper's distance, 2.732, many objects are too small to be recognised
    on a busy background). ``classes`` default to the meshes' known ImageNet classes; ``ups`` give each mesh's up
    axis (default: the mesh's own, as :func:`load_mesh` resolves it).
    """
    if background not in BACKGROUNDS:
        raise BadInput(f"background {background!r}: expected one of {', '.join(BACKGROUNDS)}")
    make_background = BACKGROUNDS[background]
    out = Path(out_dir)
    if classes is None:
        classes = [demo_class(m) or "" for m in meshes]
        missing = [m for m, c in zip(meshes, classes, strict=True) if not c]
        if missing:
            raise BadInput(f"{missing[0]}: not a demo mesh; give its class", param="mesh")
    if len(classes) != len(meshes):
        raise BadInput("classes: expected one class per mesh")
    from ..study.layout import slug  # the one file-name rule (lazy: study sits above render)

    rng = np.random.default_rng(seed)
    renderer = MeshRenderer(image_size=size)
    (out / "images").mkdir(parents=True, exist_ok=True)
    rows = []
    ups_: list[str | None] = list(ups) if ups is not None else [None] * len(meshes)
    for j, (mesh_spec, cls, up) in enumerate(zip(meshes, classes, ups_, strict=True)):
        mesh = load_mesh(mesh_spec) if up is None else load_mesh(mesh_spec, up=up)
        n = n_per_object
        pose = {"azimuth": rng.uniform(0, 360, n), "elevation": rng.uniform(*elevation_range, n),
                "distance": rng.uniform(*distance_range, n)}
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
            bg = make_background(rng, size)
            img = obj + (1 - a[..., None]) * bg  # black render = premultiplied colour
            ys, xs = np.nonzero(a > 0.5)
            stem = slug(Path(str(mesh_spec).split(':')[-1]).stem)
            name = f"{j:02d}_{stem}_{i:03d}.png"  # two meshes may share a file name
            write_image(out / "images" / name, img)
            rows.append([f"images/{name}", cls, int(xs.min()), int(ys.min()), int(xs.max()) + 1,
                         int(ys.max()) + 1])
    csv_path = out / "boxes.csv"
    with atomic_path(csv_path) as tmp, open(tmp, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "label", "xmin", "ymin", "xmax", "ymax"])
        w.writerows(rows)
    return csv_path


