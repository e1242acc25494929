"""Robust regions: the largest box around a start point on which a classifier stays right.

Public API
----------
- `find_region` / `RobustRegion`: grow a box around ``x0`` (methods "naive", "oir_b",
  "oir_w"; variants "paper" (reference rules) and "ours" (default)).
- `RegionResult`: bounds, volume, evaluation / call counts, trace, flags; ``to_dict``.
- `robustlens.regions.ground_truth`: exact largest boxes on dense semantic maps,
  ``iou``, ``map_score_fn``.
- `robustlens.regions.srvr`: the semantic robustness volume ratio with a bootstrap CI.
- `robustlens.regions.scene`: searches over scene parameters (``SceneScore``,
  ``regions_for_mesh``) and their validation.
- `robustlens.regions.records`: ``regions.json`` and SRVR run rows as typed records.
"""

from robustlens.regions.core import METHODS, VARIANTS, RobustRegion, find_region
from robustlens.regions.ground_truth import (
    bad_cell_share,
    ground_truth_box,
    iou,
    largest_box,
    map_domain,
    map_score_fn,
)
from robustlens.regions.result import RegionResult, box_volume
from robustlens.regions.srvr import PAPER_DOMAIN, PAPER_STARTS, SRVRSummary, srvr

__all__ = [
    "METHODS",
    "PAPER_DOMAIN",
    "PAPER_STARTS",
    "VARIANTS",
    "RegionResult",
    "RobustRegion",
    "SRVRSummary",
    "bad_cell_share",
    "box_volume",
    "find_region",
    "ground_truth_box",
    "iou",
    "largest_box",
    "map_domain",
    "map_score_fn",
    "srvr",
]

