"""Classifiers behind one registry (see :mod:`robustlens.models.registry`).

Importing this package registers every builtin model: each provider module below pushes its
models into the registry with ``@register_builtin`` (timm style); a provider that fails to
import is named by the error for its ``builtin:NAME`` and does not hide the others."""

from . import registry
from .base import Classifier
from .registry import (
    DEFAULT_SPEC,
    ModelOverrides,
    imagenet_labels,
    list_builtins,
    load_model,
    register_builtin,
)

with registry.provider("robustlens.models.builtins"):
    from . import builtins  # noqa: F401 (registers on import)
with registry.provider("robustlens.models.planted"):
    from . import planted  # noqa: F401 (registers on import)

__all__ = ["Classifier", "DEFAULT_SPEC", "ModelOverrides", "imagenet_labels", "list_builtins",
           "load_model", "register_builtin"]
