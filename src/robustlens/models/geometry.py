"""A classifier's preprocessing, one owner for renders, photos and boxes alike.

Every network is fed the way its weights were trained (see the adapters in
:mod:`robustlens.models.registry` and :mod:`robustlens.models.builtins`, which read it from
the source of the weights). :class:`EvalGeometry` holds the pixel part:

* **photos** (:meth:`EvalGeometry.images`): ``Resize(resize_size)`` of the shorter side,
  then ``CenterCrop(input_size)``, with the weights' interpolation (antialiased): the eval
  protocol of torchvision and timm. The crop cuts the same margin the model saw in training.
* **renders** (:meth:`EvalGeometry.renders`): a render is already a square image of the
  object framed by the camera, so it is only resized to ``input_size`` (no crop: cropping
  would cut into the object that the scene parameters frame); renders made at the input
  size pass unchanged.
* **boxes** (:meth:`EvalGeometry.boxes`): mapped with exactly the scale and offset of the
  photo's pixels.

The normalisation (``mean``, ``std``) lives on the :class:`~robustlens.models.base.Classifier`
beside it and is applied after either path.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import numpy as np
import torch
import torchvision.transforms.v2.functional as TF
from torchvision.transforms import InterpolationMode

from ..errors import BadInput

#: interpolation names accepted for ``interpolation`` (torch resizes tensors with these)
INTERPOLATIONS: dict[str, InterpolationMode] = {
    "bilinear": InterpolationMode.BILINEAR,
    "bicubic": InterpolationMode.BICUBIC,
    "nearest": InterpolationMode.NEAREST_EXACT,
}


def check_interpolation(name: object, model: str = "") -> str:
    """``name`` as an interpolation name (``bilinear``, ``bicubic``, ``nearest``; a
    torchvision ``InterpolationMode`` is accepted too), else BadInput naming the model."""
    text = name.value if isinstance(name, InterpolationMode) else str(name).strip().lower()
    if text == "nearest-exact":
        text = "nearest"
    if text not in INTERPOLATIONS:
        where = f" for model {model}" if model else ""
        raise BadInput(f"{name!r}{where}: unknown interpolation; expected one of "
                       f"{', '.join(INTERPOLATIONS)}", param="interpolation")
    return text


def imagenet_resize(input_size: int) -> int:
    """The torchvision ImageNet protocol's resize side for a crop of ``input_size``
    (224 -> 256: crop = 87.5 % of the shorter side)."""
    return int(round(input_size * 256 / 224))


def resize_for_crop(input_size: int, crop_pct: float) -> int:
    """The resize side that a centre crop of ``crop_pct`` of the shorter side needs, as timm
    computes it (``floor(input_size / crop_pct)``)."""
    if not 0.0 < crop_pct <= 1.0:
        raise BadInput(f"{crop_pct}: expected a crop fraction in (0, 1]", param="crop_pct")
    return int(math.floor(input_size / crop_pct))


@dataclass(frozen=True)
class EvalGeometry:
    """``Resize(resize_size)`` + ``CenterCrop(input_size)`` for ``(3, H, W)`` photos and
    ``(K, 4)`` pixel boxes of the same photo; a plain resize to ``input_size`` for renders.

    ``squash=True`` (timm's ``crop_mode="squash"``) resizes both sides to ``resize_size``
    before the crop instead of keeping the aspect ratio.
    """

    resize_size: int
    input_size: int
    interpolation: str = "bilinear"
    squash: bool = False

    @property
    def mode(self) -> InterpolationMode:
        return INTERPOLATIONS[self.interpolation]

    def crop(self, width: int, height: int) -> tuple[float, float, float, float]:
        """For a photo of ``width x height``: ``(scale_x, scale_y, x_offset, y_offset)`` such
        that a pixel coordinate ``(u, v)`` maps to ``(u * scale_x - x_offset, v * scale_y -
        y_offset)`` in the ``S x S`` input."""
        if self.squash:
            new_w = new_h = self.resize_size
        elif width <= height:  # torchvision truncates the long side of the resize
            new_w = self.resize_size
            new_h = int(self.resize_size * height / width)
        else:
            new_h = self.resize_size
            new_w = int(self.resize_size * width / height)
        off_x = int(round((new_w - self.input_size) / 2.0))
        off_y = int(round((new_h - self.input_size) / 2.0))
        return new_w / width, new_h / height, float(off_x), float(off_y)

    def images(self, image: torch.Tensor) -> torch.Tensor:
        """Photos: ``(3, H, W)`` (or ``(B, 3, H, W)``) in [0, 1] -> ``(.., 3, S, S)``; a photo
        already ``S x S`` with ``resize_size == input_size`` passes unchanged."""
        h, w = image.shape[-2:]
        s = self.input_size
        if (h, w) == (s, s) and self.resize_size == s:
            return image
        size = [self.resize_size, self.resize_size] if self.squash else [self.resize_size]
        x = TF.resize(image, size, interpolation=self.mode, antialias=True)
        x = TF.center_crop(x, [s, s])
        return x.clamp_(0.0, 1.0)  # bicubic overshoots; the uint8 pipelines clamp too

    def renders(self, images: torch.Tensor) -> torch.Tensor:
        """Renders: ``(B, 3, H, W)`` in [0, 1] -> ``(B, 3, S, S)`` by a resize of the whole
        frame (no crop); images already ``S x S`` pass unchanged."""
        s = self.input_size
        if tuple(images.shape[-2:]) == (s, s):
            return images
        x = TF.resize(images, [s, s], interpolation=self.mode, antialias=True)
        return x.clamp_(0.0, 1.0)

    def boxes(self, boxes: np.ndarray, width: int, height: int) -> np.ndarray:
        """``(K, 4)`` boxes of a ``width x height`` photo -> ``(K, 4)`` float64 in the
        ``S x S`` input, clipped to ``[0, S]`` (boxes cropped away get zero area)."""
        sx, sy, ox, oy = self.crop(int(width), int(height))
        b = np.asarray(boxes, np.float64).reshape(-1, 4) * np.array([sx, sy, sx, sy]) \
            - np.array([ox, oy, ox, oy])
        return np.clip(b, 0.0, float(self.input_size))
