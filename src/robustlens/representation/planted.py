"""A known answer for the class robustness score: a box-annotated image set with a planted
spurious cue, and the small CNN trained on it (builtin model ``planted_cue``).

Five classes of simple shapes on random smooth, noisy backgrounds (``S x S`` images,
default 64 px): ``square``, ``disc``, ``triangle``, ``cross`` and ``ball``, plus a sixth
training-only class ``empty`` (background alone, no box) so that an image without any object
has a class of its own (otherwise the network picks some default shape class for it and
object removal would look "robust" for that class).  The ``ball``
class (:data:`CUED_CLASS`) is the planted one: its object is a *faint* disc (contrast
0.01-0.025 against the local background, under pixel noise) while every ball image also
carries a context cue -- a yellow/blue checkerboard patch at a random place at least
:data:`CUE_GAP` pixels away from the object box.  The cue appears in no other class.  A
classifier trained on this set recognises ``ball`` from the cue, outside its box, so its
class robustness score (CAM mass inside the box) must be the lowest and its lift below 1,
while the four clean classes are recognised from their objects.

The generator is deterministic given ``seed``: the test-suite re-makes the data on the fly,
``scripts/make_planted_cue.py`` trains the committed weights
(``robustlens/data/planted_cue/model.pt``) on ``seed=0`` data.
"""

from __future__ import annotations

import csv
import os
from pathlib import Path

import cv2
import numpy as np

# the network and its builtin registration live in models/ (the registry never imports
# upward); re-exported here because the data set and the model belong together
from ..images import write_image
from ..models.planted import (  # noqa: F401
    PLANTED_LABELS,
    PLANTED_MEAN,
    PLANTED_STD,
    WEIGHTS_DIR,
    PlantedCueNet,
    planted_cue,
)

#: index of the class that carries the planted context cue
CUED_CLASS: int = 4
#: background-only training class (no object, no cue, no box); never in box-annotated sets
EMPTY_CLASS: int = 5
#: the classes with an object box
OBJECT_CLASSES: tuple[int, ...] = (0, 1, 2, 3, 4)
#: minimum distance in pixels between the cue patch and the object box
CUE_GAP: int = 8
#: side of the cue patch in pixels, and of one checker square
CUE_SIZE: int = 12
CUE_CHECK: int = 3
CUE_COLORS = (np.array([235, 215, 20], np.uint8), np.array([25, 25, 150], np.uint8))


# ------------------------------------------------------------------------------ data
def _background(rng: np.random.Generator, size: int) -> np.ndarray:
    """Smooth random two-colour gradient (noise is added later); float32 ``(S, S, 3)`` in [0, 1]."""
    c1, c2 = rng.uniform(0.15, 0.85, 3), rng.uniform(0.15, 0.85, 3)
    ang = rng.uniform(0, 2 * np.pi)
    yy, xx = np.mgrid[0:size, 0:size].astype(np.float32) / (size - 1) - 0.5
    t = np.clip(0.5 + xx * np.cos(ang) + yy * np.sin(ang), 0, 1)[..., None]
    return ((1 - t) * c1 + t * c2).astype(np.float32)


def _shape_mask(cls: int, size: int, cx: float, cy: float, s: float) -> np.ndarray:
    """Anti-aliased float mask ``(S, S)`` in [0, 1] of the object of class ``cls``."""
    sub = 4  # draw at 4x and average: smooth edges, exact geometry
    big = np.zeros((size * sub, size * sub), np.uint8)
    X, Y, h = cx * sub, cy * sub, s * sub / 2
    if cls == 0:  # square
        pts = np.array([[X - h, Y - h], [X + h, Y - h], [X + h, Y + h], [X - h, Y + h]])
        cv2.fillPoly(big, [np.round(pts).astype(np.int32)], 255)
    elif cls in (1, CUED_CLASS):  # disc / ball
        cv2.circle(big, (int(round(X)), int(round(Y))), int(round(h)), 255, -1)
    elif cls == 2:  # triangle pointing up
        pts = np.array([[X, Y - h], [X + h, Y + h], [X - h, Y + h]])
        cv2.fillPoly(big, [np.round(pts).astype(np.int32)], 255)
    elif cls == 3:  # cross (plus sign)
        t = h / 3
        cv2.rectangle(big, (int(X - h), int(Y - t)), (int(X + h), int(Y + t)), 255, -1)
        cv2.rectangle(big, (int(X - t), int(Y - h)), (int(X + t), int(Y + h)), 255, -1)
    else:
        raise ValueError(f"unknown planted class {cls}")
    return big.reshape(size, sub, size, sub).mean(axis=(1, 3)) / 255.0


def _far_colour(rng: np.random.Generator, ref: np.ndarray, min_dist: float) -> np.ndarray:
    for _ in range(100):
        c = rng.uniform(0.0, 1.0, 3)
        if np.abs(c - ref).max() >= min_dist:
            return c
    return 1.0 - ref


def render_planted(rng: np.random.Generator, cls: int, size: int = 64
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None]:
    """Draw one image of class ``cls``.

    Returns ``(image uint8 (S, S, 3), box (4,) xmin,ymin,xmax,ymax in pixel-edge coordinates
    (all NaN for the empty class), cue_box (4,) or None)``.
    """
    img = _background(rng, size)
    if cls == EMPTY_CLASS:
        img += rng.normal(0, 0.035, img.shape)
        out = np.clip(np.round(img * 255), 0, 255).astype(np.uint8)
        return out, np.full(4, np.nan), None
    s = rng.uniform(0.22, 0.34) * size
    m = 2.0
    cx = rng.uniform(s / 2 + m, size - s / 2 - m)
    cy = rng.uniform(s / 2 + m, size - s / 2 - m)
    mask = _shape_mask(cls, size, cx, cy, s)
    ys, xs = np.nonzero(mask > 0.02)
    box = np.array([xs.min(), ys.min(), xs.max() + 1, ys.max() + 1], np.float64)
    local = img[int(box[1]):int(box[3]), int(box[0]):int(box[2])].reshape(-1, 3).mean(0)
    if cls == CUED_CLASS:
        colour = np.clip(local + rng.choice([-1, 1], 3) * rng.uniform(0.01, 0.025, 3), 0, 1)
    else:
        colour = _far_colour(rng, local, 0.4)
    img = img * (1 - mask[..., None]) + colour * mask[..., None]
    img += rng.normal(0, 0.035, img.shape)  # over the object too: no texture cue
    cue_box = None
    if cls == CUED_CLASS:
        cue_box = _place_cue(rng, img, box, size)
    out = np.clip(np.round(img * 255), 0, 255).astype(np.uint8)
    if cue_box is not None:
        x0, y0 = int(cue_box[0]), int(cue_box[1])
        yy, xx = np.mgrid[0:CUE_SIZE, 0:CUE_SIZE]
        check = ((yy // CUE_CHECK + xx // CUE_CHECK) % 2).astype(bool)
        out[y0:y0 + CUE_SIZE, x0:x0 + CUE_SIZE] = np.where(check[..., None], *CUE_COLORS)
    return out, box, cue_box


def _place_cue(rng: np.random.Generator, img: np.ndarray, box: np.ndarray,
               size: int) -> np.ndarray:
    for _ in range(1000):
        x0, y0 = rng.integers(1, size - CUE_SIZE, 2)
        # gap between the cue square and the object box (Chebyshev-like, per axis)
        gx = max(box[0] - (x0 + CUE_SIZE), x0 - box[2], 0)
        gy = max(box[1] - (y0 + CUE_SIZE), y0 - box[3], 0)
        if max(gx, gy) >= CUE_GAP:
            return np.array([x0, y0, x0 + CUE_SIZE, y0 + CUE_SIZE], np.float64)
    raise RuntimeError("no room for the cue")  # pragma: no cover - sizes make this impossible


def planted_arrays(n_per_class: int, seed: int, size: int = 64,
                   classes: tuple[int, ...] = OBJECT_CLASSES
                   ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``n_per_class`` images of every class of ``classes``, interleaved, deterministic in
    ``seed``.

    Returns ``(images uint8 (N, S, S, 3), labels int64 (N,), boxes float64 (N, 4))``.
    """
    rng = np.random.default_rng(seed)
    imgs = np.empty((n_per_class * len(classes), size, size, 3), np.uint8)
    labels = np.tile(np.asarray(classes), n_per_class)
    boxes = np.empty((len(labels), 4))
    for i, c in enumerate(labels):
        imgs[i], boxes[i], _ = render_planted(rng, int(c), size)
    return imgs, labels.astype(np.int64), boxes


def make_planted_dataset(out_dir: str | os.PathLike[str], n_per_class: int = 40, seed: int = 1,
                         size: int = 64) -> Path:
    """Write the planted-cue set as PNGs plus ``boxes.csv`` (``image,label,xmin,ymin,xmax,ymax``,
    label = class name) into ``out_dir``; return the CSV path.  Deterministic in ``seed``
    (seed 0 is the training data of the committed model; test with another seed)."""
    out = Path(out_dir)
    (out / "images").mkdir(parents=True, exist_ok=True)
    imgs, labels, boxes = planted_arrays(n_per_class, seed, size)
    csv_path = out / "boxes.csv"
    with open(csv_path, "w", newline="") as f:
        w = csv.writer(f)
        w.writerow(["image", "label", "xmin", "ymin", "xmax", "ymax"])
        for i, (img, c, b) in enumerate(zip(imgs, labels, boxes, strict=True)):
            name = f"images/{i:05d}_{PLANTED_LABELS[c]}.png"
            write_image(out / name, img)
            w.writerow([name, PLANTED_LABELS[c], *(int(v) for v in b)])
    return csv_path
