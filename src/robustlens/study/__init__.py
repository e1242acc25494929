"""The main job: a whole study from one config file.

``Study`` (the runner) is imported lazily, so that reading a study folder's layout
(`robustlens.study.layout`, used by the report) loads no model code.
"""

from typing import Any

from .config import StudyConfig, load_config
from .layout import StudyLayout, slug

__all__ = ["Study", "StudyConfig", "StudyLayout", "load_config", "slug"]


def __getattr__(name: str) -> Any:
    if name == "Study":
        from .runner import Study

        return Study
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
