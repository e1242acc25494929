"""The main job: a whole study from one config file."""

from .config import StudyConfig, load_config
from .runner import Study, slug

__all__ = ["Study", "StudyConfig", "load_config", "slug"]
