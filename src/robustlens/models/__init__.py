"""Classifiers behind one registry (see :mod:`robustlens.models.registry`)."""

from .base import Classifier
from .registry import (
    DEFAULT_SPEC,
    ModelOverrides,
    imagenet_labels,
    list_builtins,
    load_model,
    register_builtin,
)

__all__ = ["Classifier", "DEFAULT_SPEC", "ModelOverrides", "imagenet_labels", "list_builtins",
           "load_model", "register_builtin"]
