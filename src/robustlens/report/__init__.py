"""Study reports: a self-contained HTML report (figures: `robustlens.figures`)."""

from ..figures import (
    class_ranking_figure,
    map_regions_figure,
    score_curves_figure,
    srvr_figure,
    style,
    turntable_gif,
)
from .html import build_report, load_study

__all__ = ["build_report", "class_ranking_figure", "load_study", "map_regions_figure",
           "score_curves_figure", "srvr_figure", "style", "turntable_gif"]
