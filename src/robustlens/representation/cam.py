"""Class activation maps of the TRUE class, computed by the ``grad-cam`` package.

Methods (``method=``):

* ``gradcam++`` (default): Grad-CAM++ (``pytorch_grad_cam.GradCAMPlusPlus``);
* ``gradcam``: Grad-CAM;
* ``scorecam``: Score-CAM (one extra forward per CAM-layer channel, in batches of
  ``scorecam_batch``);
* ``smooth``: Grad-CAM++ with grad-cam's test-time-augmentation smoothing
  (``aug_smooth=True``: horizontal flip x brightness factors 0.9/1/1.1, six passes, maps
  flipped back and averaged).  It stands in for the paper's SmoothGrad-CAM++, which grad-cam
  does not implement; ``eigen_smooth`` was not chosen because its principal component has an
  arbitrary sign and does not target a class.

Every map is for ``ClassifierOutputTarget(true_class)``, ReLU'd, min-max normalised to [0, 1]
and bilinearly upsampled to ``S x S`` by grad-cam itself.

Speed: the CAM layer's output is detached and made a leaf before the rest of the network, so
the backward pass runs only through the head above the CAM layer (the maps are identical,
they only need d logit / d activation), and parameter gradients are never accumulated.
"""

from __future__ import annotations

import contextlib
import types
from collections.abc import Iterator, Sequence
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import BadInput
from ..models.base import Classifier, check_image_batch
from .cam_methods import CAM_METHODS, check_cam_method  # noqa: F401 (re-exported)


def check_cam_model(classifier: Classifier, target_layer: str | None = None) -> nn.Module:
    """The CAM layer module; BadInput when the model cannot give CAMs."""
    if not classifier.differentiable:
        raise BadInput("is not differentiable (e.g. ONNX): CAMs need gradients; use a PyTorch "
                       "model spec", param="model", value=repr(classifier.spec))
    if isinstance(classifier.module, torch.jit.ScriptModule) and not (target_layer or
                                                                      classifier.target_layer):
        raise BadInput(f": required for model {classifier.spec!r} (no CAM layer known)",
                       param="target_layer")
    return classifier.layer(target_layer)


class _Logits(nn.Module):
    """``module`` with its first output taken, plus an anchor parameter that tells grad-cam the
    device (grad-cam reads the first parameter)."""

    def __init__(self, module: nn.Module, device: torch.device) -> None:
        super().__init__()
        self.anchor = nn.Parameter(torch.zeros(0, device=device), requires_grad=False)
        self.net = module

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.net(x)
        return out[0] if isinstance(out, (tuple, list)) else out


def _cut_graph(_m: nn.Module, _inp: Any, out: Any) -> Any:
    """Forward hook: make the CAM layer output a fresh leaf so backward stops there."""
    if isinstance(out, torch.Tensor) and torch.is_grad_enabled():
        return out.detach().requires_grad_(True).clone()
    return None


class _Sink(list):
    def append(self, _x: Any) -> None:  # noqa: D401 - drop
        pass


_NO_TQDM = types.SimpleNamespace(tqdm=lambda it, *a, **k: it)


@contextlib.contextmanager
def _frozen(module: nn.Module) -> Iterator[None]:
    flags = [(p, p.requires_grad) for p in module.parameters()]
    for p, _ in flags:
        p.requires_grad_(False)
    try:
        yield
    finally:
        for p, f in flags:
            p.requires_grad_(f)


@contextlib.contextmanager
def _graph_cut(layer: nn.Module) -> Iterator[None]:
    """While open: the CAM layer's output is a fresh leaf (see :func:`_cut_graph`)."""
    hook = layer.register_forward_hook(_cut_graph)
    try:
        yield
    finally:
        hook.remove()


@contextlib.contextmanager
def _cam_for(method: str, model: nn.Module, layer: nn.Module, scorecam_batch: int
             ) -> Iterator[Any]:
    """A grad-cam object whose activation/gradient hooks are released on exit."""
    cam = _make_cam(method, model, layer, scorecam_batch)
    try:
        yield cam
    finally:
        cam.activations_and_grads.release()


def _make_cam(method: str, model: nn.Module, layer: nn.Module, scorecam_batch: int) -> Any:
    from pytorch_grad_cam import GradCAM, GradCAMPlusPlus, ScoreCAM

    if method == "scorecam":
        import pytorch_grad_cam.score_cam as sc_mod

        class _QuietScoreCAM(ScoreCAM):
            """grad-cam's Score-CAM without its tqdm bar and without keeping the activations
            of every masked forward (which grad-cam's hook would otherwise store)."""

            def get_cam_weights(self, *args: Any, **kwargs: Any) -> np.ndarray:
                aag = self.activations_and_grads
                kept, orig = aag.activations, sc_mod.tqdm
                aag.activations, sc_mod.tqdm = _Sink(), _NO_TQDM
                try:
                    return super().get_cam_weights(*args, **kwargs)
                finally:
                    aag.activations, sc_mod.tqdm = kept, orig

        cam = _QuietScoreCAM(model=model, target_layers=[layer])
        cam.batch_size = scorecam_batch
        return cam
    cls = GradCAM if method == "gradcam" else GradCAMPlusPlus
    return cls(model=model, target_layers=[layer])


def compute_cams(classifier: Classifier, images01: torch.Tensor, class_ids: Sequence[int] | np.ndarray
                 | torch.Tensor, method: str = "gradcam++", *, target_layer: str | None = None,
                 scorecam_batch: int = 32) -> np.ndarray:
    """CAMs of the given (true) classes.

    Args:
        classifier: a differentiable :class:`Classifier`.
        images01: ``(B, 3, S, S)`` images in [0, 1] (other sizes are resized by
            ``classifier.normalize``).
        class_ids: ``(B,)`` class per image (the true class).
        method: one of :data:`CAM_METHODS`.
        target_layer: CAM layer path (default ``classifier.target_layer``).
        scorecam_batch: masked images per forward for Score-CAM.

    Returns:
        ``(B, S, S)`` float32 maps in [0, 1] (all zero when the class has no positive evidence).
    """
    return compute_cams_and_logits(classifier, images01, class_ids, method,
                                   target_layer=target_layer, scorecam_batch=scorecam_batch)[0]


def compute_cams_and_logits(classifier: Classifier, images01: torch.Tensor,
                            class_ids: Sequence[int] | np.ndarray | torch.Tensor,
                            method: str = "gradcam++", *, target_layer: str | None = None,
                            scorecam_batch: int = 32) -> tuple[np.ndarray, torch.Tensor]:
    """Like :func:`compute_cams`, also returning the logits ``(B, C)`` (CPU, float32) of the
    unmodified images (reused from the CAM's own forward pass when possible)."""
    method = check_cam_method(method)
    layer = check_cam_model(classifier, target_layer)
    check_image_batch(images01)
    ids = [int(c) for c in (class_ids.tolist() if hasattr(class_ids, "tolist") else class_ids)]
    if len(ids) != images01.shape[0]:
        raise BadInput(f": {len(ids)} classes for {images01.shape[0]} images", param="class_ids")
    n = classifier.num_classes
    bad = [c for c in ids if not 0 <= c < n]
    if bad:
        raise BadInput(f"out of range for model {classifier.spec!r} (0..{n - 1})",
                       param="class_ids", value=bad[0])
    if not ids:
        s = classifier.input_size
        return np.zeros((0, s, s), np.float32), torch.zeros((0, n))
    from pytorch_grad_cam.utils.model_targets import ClassifierOutputTarget

    x = classifier.normalize(images01)
    model = _Logits(classifier.module, classifier.device)
    chunk = len(ids) if method != "scorecam" else 1
    cams, logits = [], []
    with _frozen(classifier.module), _graph_cut(layer):
        i = 0
        while i < len(ids):
            with _cam_for(method, model, layer, scorecam_batch) as cam:
                sl = slice(i, i + chunk)
                targets = [ClassifierOutputTarget(c) for c in ids[sl]]
                with torch.enable_grad():
                    maps = cam(input_tensor=x[sl], targets=targets,
                               aug_smooth=method == "smooth")
                if method == "smooth":
                    with torch.no_grad():
                        out = model(x[sl])
                else:
                    out = cam.outputs
                logits.append(out.detach().float().cpu())
                cams.append(np.asarray(maps, np.float32))
                if method == "scorecam" and i == 0:
                    chunk = _scorecam_chunk(cam, x.shape[-1])
            i = sl.stop
    out_cams = np.concatenate(cams, axis=0)
    out_cams = np.nan_to_num(out_cams, nan=0.0)
    return out_cams, torch.cat(logits, dim=0)


def _scorecam_chunk(cam: Any, size: int, budget_bytes: float = 1.0e9) -> int:
    """Images per Score-CAM call so that grad-cam's (B, C, 3, S, S) masked batch fits."""
    acts: Any = getattr(cam.activations_and_grads, "activations", None)
    try:
        channels = int(acts[0].shape[1])
    except (TypeError, IndexError, AttributeError):
        return 1
    per_image = channels * size * size * 4 * 4  # upsampled maps + masked RGB copies, float32
    return max(1, int(budget_bytes // per_image))
