"""The classifier contract every model adapter returns.

A :class:`Classifier` bundles a plain ``nn.Module`` (normalised images -> logits)
with what is needed to use it honestly: its eval geometry (resize + centre crop),
normalisation, class labels and the layer used for class-activation maps.
"""

from __future__ import annotations

import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .. import paper
from ..errors import BadInput, ref
from .geometry import EvalGeometry
from .labels import LabelIndex


@dataclass
class Classifier:
    """A classifier ready for robustness analysis.

    Attributes:
        module: ``nn.Module`` mapping normalised images ``(B, 3, S, S)`` to logits ``(B, C)``.
        spec: the model spec string it was loaded from (e.g. ``"default"``, ``"timm:resnet18"``).
        input_size: side ``S`` of the square network input.
        resize_size: eval transform for photographs = ``Resize(resize_size)`` then
            ``CenterCrop(input_size)`` (the torchvision / timm eval protocol).
        interpolation: the resize's interpolation (``bilinear``, ``bicubic``, ``nearest``),
            for photos and for renders not made at the input size.
        squash: photos are resized on both sides to ``resize_size`` before the crop (timm's
            ``crop_mode="squash"``) instead of keeping their aspect ratio.
        mean, std: per-channel normalisation applied to ``[0, 1]`` images.
        preprocessing_source: where the preprocessing above was read from (the checkpoint's
            own preset, a documented default, or user overrides), for provenance.
        labels: class names, index = class id.
        target_layer: dotted module path of the CAM layer (``None`` when the model has no
            accessible layers, e.g. ONNX).
        differentiable: whether gradients flow to the input (False for ONNX).
        weights_sha256: hash of the weight file, when known (provenance and keys).
        source_sha256: hash of the model's source file (``python:`` models), when known.
        channels_last: feed NHWC-strided tensors (set by :meth:`to` for eager CPU models:
            ~1.5x faster convolutions with oneDNN, same numbers).
        forward_only: optional engine for forward-only passes (normalised images -> logits),
            used by :meth:`probs`; set by :func:`robustlens.models.runtime.prepare_runtime`
            (ONNX Runtime). Gradients (CAMs, :meth:`logits`) always use ``module``.
        runtime: the engine :meth:`probs` runs on (``"torch"`` or ``"onnxruntime"``).
    """

    module: nn.Module
    spec: str
    input_size: int = paper.IMAGE_SIZE
    resize_size: int = 256
    mean: tuple[float, float, float] = (0.485, 0.456, 0.406)
    std: tuple[float, float, float] = (0.229, 0.224, 0.225)
    labels: list[str] = field(default_factory=list)
    target_layer: str | None = None
    differentiable: bool = True
    weights_sha256: str | None = None
    interpolation: str = "bilinear"
    squash: bool = False
    preprocessing_source: str = "robustlens default (ImageNet mean/std, bilinear, crop 0.875)"
    source_sha256: str | None = None
    device: torch.device = field(default_factory=lambda: torch.device("cpu"))
    channels_last: bool = False
    forward_only: nn.Module | None = None
    runtime: str = "torch"

    # ------------------------------------------------------------------ basics
    @property
    def num_classes(self) -> int:
        return len(self.labels)

    def to(self, device: str | torch.device) -> Classifier:
        self.device = torch.device(device)
        self.module.to(self.device)
        eager = not isinstance(self.module, torch.jit.ScriptModule) and self.differentiable
        self.channels_last = eager and self.device.type == "cpu"
        if self.channels_last:
            self.module.to(memory_format=torch.channels_last)
        return self

    def normalize(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in [0, 1] -> normalised ``(B, 3, S, S)`` on the model's device.

        Images that are not ``S x S`` are resized whole to the input size with the model's
        interpolation (:meth:`EvalGeometry.renders`: renders frame the object, so they are
        not cropped); photos are cropped before this by :meth:`EvalGeometry.images`.
        """
        x = self.geometry.renders(images.to(self.device, dtype=torch.float32))
        mean = torch.tensor(self.mean, device=x.device).view(1, 3, 1, 1)
        std = torch.tensor(self.std, device=x.device).view(1, 3, 1, 1)
        x = (x - mean) / std
        return x.contiguous(memory_format=torch.channels_last) if self.channels_last else x

    def logits(self, images: torch.Tensor, forward_only: bool = False) -> torch.Tensor:
        """``(B, 3, H, W)`` in [0, 1] -> logits ``(B, C)``; checks the output shape.

        ``forward_only=True`` runs the :attr:`forward_only` engine when one is set (no
        gradients); otherwise the PyTorch ``module``."""
        engine = self.forward_only if forward_only and self.forward_only is not None \
            else self.module
        out = engine(self.normalize(images))
        if isinstance(out, (tuple, list)):
            out = out[0]
        if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != images.shape[0]:
            shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise BadInput(
                f"output has shape {shape}, expected (B, C) logits with B={images.shape[0]}",
                param="model", value=repr(self.spec))
        if self.labels and out.shape[1] != len(self.labels):
            raise BadInput(
                f"outputs {out.shape[1]} classes but has {len(self.labels)} labels (see "
                f"{ref('labels')})", param="model", value=repr(self.spec))
        return out

    @torch.no_grad()
    def probs(self, images: torch.Tensor) -> torch.Tensor:
        """``(B, 3, H, W)`` in [0, 1] -> softmax probabilities ``(B, C)`` (no grad)."""
        return self.logits(images, forward_only=True).float().softmax(dim=1)

    # ----------------------------------------------------------- class lookup
    @property
    def label_index(self) -> LabelIndex:
        """The label lookup (ids, names, unique synonyms, wnids) the dataset readers share."""
        return LabelIndex(self.labels)

    def class_index(self, cls: int | str) -> int:
        """Resolve a class id (int or digit string), an exact/unique label name or an ImageNet
        wnid (see :class:`~robustlens.models.labels.LabelIndex`)."""
        if isinstance(cls, int) or (isinstance(cls, str) and cls.strip().lstrip("-").isdigit()):
            idx = int(cls)
            n = self.num_classes
            if not 0 <= idx < n:
                raise BadInput(f"{cls}: class id out of range for model {self.spec!r} "
                               f"({n} classes), expected 0..{n - 1}", param="class")
            return idx
        found = self.label_index.resolve(cls, f"{cls!r}", param="class")
        if found is not None:
            return found
        raise BadInput(f"{cls!r}: unknown class name for model {self.spec!r} "
                       f"(expected a class id 0..{self.num_classes - 1} or an exact label)", param="class")

    # ------------------------------------------------------------- CAM layer
    def layer(self, path: str | None = None) -> nn.Module:
        """Resolve the dotted module path ``path`` (default: ``target_layer``)."""
        path = path or self.target_layer
        if not path:
            raise BadInput(f": required for model {self.spec!r} (it has no target layer)",
                           param="target_layer")
        mod: nn.Module = self.module
        for part in path.split("."):
            if part.isdigit() and isinstance(mod, (nn.Sequential, nn.ModuleList)):
                idx = int(part)
                if idx >= len(mod):
                    raise BadInput(f"{path!r}: index {idx} out of range in model "
                                   f"{self.spec!r}", param="target_layer")
                mod = mod[idx]
            elif hasattr(mod, part) and isinstance(getattr(mod, part), nn.Module):
                mod = getattr(mod, part)
            else:
                raise BadInput(f"{path!r}: no module {part!r} in model {self.spec!r}"
                               f" (see its layers: `robustlens layers`, or"
                               f" Classifier.layer_shapes())", param="target_layer")
        return mod

    @torch.no_grad()
    def layer_shapes(self) -> list[tuple[str, str, tuple[int, ...] | None]]:
        """``(dotted path, module type, output shape)`` of every named submodule for one
        ``(1, 3, S, S)`` input, in definition order; the shape is None for a module the
        forward pass did not call (or one whose output is not a tensor).  This is the list
        ``--target-layer`` accepts (``robustlens layers --model SPEC`` prints it)."""
        if not isinstance(self.module, nn.Module):
            raise BadInput(f"model {self.spec!r} has no PyTorch modules (e.g. ONNX): no layers")
        named = [(n, m) for n, m in self.module.named_modules() if n]
        shapes: dict[str, tuple[int, ...]] = {}
        handles = []
        for name, mod in named:
            def hook(_m: nn.Module, _i: object, out: object, name: str = name) -> None:
                if isinstance(out, torch.Tensor) and name not in shapes:
                    shapes[name] = tuple(out.shape)
            try:
                handles.append(mod.register_forward_hook(hook))
            except RuntimeError:  # TorchScript submodules take no Python hooks
                pass
        try:
            x = torch.zeros(1, 3, self.input_size, self.input_size)
            self.module(self.normalize(x))
        finally:
            for h in handles:
                h.remove()
        return [(n, type(m).__name__, shapes.get(n)) for n, m in named]

    # ------------------------------------------------------ eval geometry
    @property
    def geometry(self) -> EvalGeometry:
        """The eval geometry: photos (pixels and boxes: Resize + CenterCrop) and renders
        (a resize to the input size), with the model's interpolation."""
        return EvalGeometry(self.resize_size, self.input_size, self.interpolation, self.squash)

    def preprocessing(self) -> dict[str, Any]:
        """How inputs are prepared for this model: sizes, interpolation, normalisation and
        where they were read from (JSON-able, for provenance and keys)."""
        return {"input_size": self.input_size, "resize_size": self.resize_size,
                "interpolation": self.interpolation, "squash": self.squash,
                "mean": [float(v) for v in self.mean], "std": [float(v) for v in self.std],
                "source": self.preprocessing_source}

    def describe(self) -> str:
        """One line for ``-v``: the preprocessing, where it came from, and the key every
        cached result of this model hangs on."""
        from ..fingerprint import model_key

        p = self.preprocessing()
        return (f"model {self.spec}: input {p['input_size']} px (photos: resize "
                f"{p['resize_size']}, centre crop), {p['interpolation']}, mean "
                f"{[round(v, 4) for v in p['mean']]}, std {[round(v, 4) for v in p['std']]}, "
                f"from {p['source']}; CAM layer {self.target_layer or '-'}; runtime "
                f"{self.runtime}; weights sha256 {(self.weights_sha256 or '-')[:12]}; "
                f"identity key {model_key(self)[:12]}")

    def identity(self, runtime: bool = True) -> dict[str, Any]:
        """Everything about this model that changes its outputs: spec, weight hash, source
        hash, preprocessing, labels (hashed), CAM layer and (``runtime=True``) the engine of
        forward passes.  Every key that depends on a model is built from this, in
        :mod:`robustlens.fingerprint` (:func:`~robustlens.fingerprint.model_key`)."""
        ident: dict[str, Any] = {
            "spec": self.spec, "weights_sha256": self.weights_sha256,
            "source_sha256": self.source_sha256,
            "preprocessing": {k: v for k, v in self.preprocessing().items() if k != "source"},
            "labels_sha256": hashlib.sha256("\n".join(self.labels).encode()).hexdigest(),
            "target_layer": self.target_layer}
        if runtime:
            ident["runtime"] = self.runtime
        return ident


def check_image_batch(images: torch.Tensor, name: str = "images") -> None:
    """Raise BadInput unless ``images`` is ``(B, 3, H, W)``."""
    if images.ndim != 4 or images.shape[1] != 3:
        raise BadInput(f": expected a (B, 3, H, W) tensor, got shape {tuple(images.shape)}",
                       param=name)


def as_list(x: Sequence[float] | str, n: int, name: str) -> tuple[float, ...]:
    """Parse ``"0.5,0.5,0.5"`` or a sequence into ``n`` floats, naming ``name`` on error."""
    if isinstance(x, str):
        parts = [p for p in x.split(",") if p.strip()]
        try:
            vals = tuple(float(p) for p in parts)
        except ValueError:
            raise BadInput(f"{x!r}: expected {n} comma-separated numbers", param=name) from None
    else:
        vals = tuple(float(v) for v in x)
    if len(vals) != n:
        raise BadInput(f"{x!r}: expected {n} comma-separated numbers, got {len(vals)}",
                       param=name)
    return vals
