"""The eval geometry of a classifier, one owner for pixels and boxes alike:
``Resize(resize_size)`` (shorter side) then ``CenterCrop(input_size)``, the torchvision
ImageNet protocol.  :meth:`EvalGeometry.images` transforms photos, :meth:`EvalGeometry.boxes`
maps their ``(x0, y0, x1, y1)`` boxes with exactly the same scale and crop offset."""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF


def imagenet_resize(input_size: int) -> int:
    """The torchvision ImageNet protocol's resize side for a crop of ``input_size``
    (224 -> 256: crop = 87.5 % of the shorter side)."""
    return int(round(input_size * 256 / 224))


@dataclass(frozen=True)
class EvalGeometry:
    """``Resize(resize_size)`` + ``CenterCrop(input_size)`` for ``(3, H, W)`` images and
    ``(K, 4)`` pixel boxes of the same photo."""

    resize_size: int
    input_size: int

    def crop(self, width: int, height: int) -> tuple[float, float, float]:
        """For a photo of ``width x height``: ``(scale, x_offset, y_offset)`` such that a pixel
        coordinate ``u`` maps to ``u * scale - offset`` in the ``S x S`` input."""
        # torchvision truncates the long side of the resize and rounds the crop offset
        if width <= height:
            new_w = self.resize_size
            new_h = int(self.resize_size * height / width)
        else:
            new_h = self.resize_size
            new_w = int(self.resize_size * width / height)
        sx, sy = new_w / width, new_h / height
        off_x = int(round((new_w - self.input_size) / 2.0))
        off_y = int(round((new_h - self.input_size) / 2.0))
        # sx and sy differ only by the truncation of the long side (< 1 px)
        return (sx + sy) / 2.0, float(off_x), float(off_y)

    def images(self, image: torch.Tensor) -> torch.Tensor:
        """``(3, H, W)`` (or ``(B, 3, H, W)``) in [0, 1] -> ``(.., 3, S, S)``; a photo already
        ``S x S`` with ``resize_size == input_size`` passes unchanged."""
        h, w = image.shape[-2:]
        s = self.input_size
        if (h, w) == (s, s) and self.resize_size == s:
            return image
        x = TF.resize(image, [self.resize_size], antialias=True)
        x = TF.center_crop(x, [s, s])
        return x.clamp_(0.0, 1.0)

    def boxes(self, boxes: np.ndarray, width: int, height: int) -> np.ndarray:
        """``(K, 4)`` boxes of a ``width x height`` photo -> ``(K, 4)`` float64 in the
        ``S x S`` input, clipped to ``[0, S]`` (boxes cropped away get zero area)."""
        scale, ox, oy = self.crop(int(width), int(height))
        b = np.asarray(boxes, np.float64).reshape(-1, 4) * scale - np.array([ox, oy, ox, oy])
        return np.clip(b, 0.0, float(self.input_size))
