"""The one place images are read and written: PNG/JPEG files, JPEG bytes, animated GIFs.

Every writer is atomic (a temporary file renamed into place) and takes ``(H, W, 3)`` uint8
RGB arrays; the readers return RGB. Drawing lives in `robustlens.figures`; this module only
encodes and decodes pixels.
"""

from __future__ import annotations

import io
import os
from collections.abc import Sequence
from pathlib import Path

import numpy as np
from PIL import Image

from .io import atomic_path

__all__ = ["check_image", "jpeg_bytes", "open_image", "read_rgb", "to_uint8", "write_gif", "write_image"]


def to_uint8(img: np.ndarray) -> np.ndarray:
    """``(H, W, 3)`` floats in [0, 1] (or uint8 already) -> uint8, rounded and clipped."""
    a = np.asarray(img)
    if a.dtype == np.uint8:
        return a
    return (np.clip(a, 0.0, 1.0) * 255 + 0.5).astype(np.uint8)


def write_image(path: str | os.PathLike[str], img: np.ndarray) -> Path:
    """Write ``img`` (``(H, W, 3)`` uint8, or floats in [0, 1]) atomically; the format
    follows the suffix (``.png``, ``.jpg``). Returns the path."""
    p = Path(path)
    with atomic_path(p) as tmp:
        Image.fromarray(to_uint8(img)).save(tmp, format=Image.registered_extensions()
                                            .get(p.suffix.lower(), "PNG"))
    return p


def read_rgb(path: str | os.PathLike[str]) -> np.ndarray:
    """The pixels of an image file as ``(H, W, 3)`` uint8 RGB."""
    with Image.open(path) as im:
        return np.asarray(im.convert("RGB")).copy()


def open_image(path: str | os.PathLike[str]) -> Image.Image:
    """An image file decoded into memory (its own mode: ``RGB``, ``L``, ...)."""
    with Image.open(path) as im:
        return im.copy()


def check_image(path: str | os.PathLike[str]) -> tuple[int, int]:
    """``(width, height)`` of an image file, after decoding it (a truncated file fails now,
    not an hour later); JPEGs are decoded at 1/8 scale, which still reads every byte of the
    entropy-coded data. Raises what Pillow raises on an unreadable file."""
    with Image.open(path) as im:
        size = im.size
        im.draft("RGB", (max(1, size[0] // 8), max(1, size[1] // 8)))
        im.load()
        return size


def jpeg_bytes(img: np.ndarray, size: int | None = None, quality: int = 82) -> bytes:
    """``(H, W, 3)`` pixels -> JPEG bytes, resized (Lanczos) to a ``size`` px square."""
    im = Image.fromarray(to_uint8(img))
    if size is not None and im.size != (size, size):
        im = im.resize((size, size), Image.Resampling.LANCZOS)
    buf = io.BytesIO()
    im.save(buf, format="JPEG", quality=quality)
    return buf.getvalue()


def write_gif(path: str | os.PathLike[str], frames: Sequence[np.ndarray], fps: float) -> Path:
    """An animated GIF of ``frames`` (each ``(H, W, 3)`` uint8) at ``fps``, looping forever,
    written atomically. Returns the path."""
    import imageio.v3 as iio

    p = Path(path)
    with atomic_path(p) as tmp:
        iio.imwrite(tmp, np.stack([to_uint8(f) for f in frames]), extension=".gif",
                    duration=int(round(1000 / fps)), loop=0)
    return p
