"""Representation robustness: class robustness scores from CAMs and object boxes
(Szyc, Walkowiak & Maciejewski, ECML PKDD 2021), a planted-cue known answer, and attacks.

Main entry points (imported lazily: ``import robustlens.representation`` loads none of
them until one is used; the planted-cue *model* is the builtin in `robustlens.models.planted`)::

    from robustlens.representation import ClassRobustness, load_dataset, compute_cams, run_attacks
"""

from __future__ import annotations

import importlib
from typing import Any

_EXPORTS = {
    "ClassRobustness": "scores", "image_scores": "scores", "class_scores": "scores",
    "bootstrap_ci": "scores",
    "BoxDataset": "datasets", "BoxItem": "datasets", "load_dataset": "datasets",
    "map_boxes": "datasets", "prepare_batch": "datasets",
    "CAM_METHODS": "cam", "compute_cams": "cam",
    "run_attacks": "attacks", "remove_object": "attacks",
    "make_planted_dataset": "planted", "planted_arrays": "planted",
}

__all__ = sorted(_EXPORTS)


def __getattr__(name: str) -> Any:
    if name in _EXPORTS:
        return getattr(importlib.import_module(f"{__name__}.{_EXPORTS[name]}"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
