"""Semantic maps: score sweeps over scene parameters."""

from .grid import SweepAxis, parse_grid, parse_grids
from .maps import SemanticMap, load_map, save_map
from .score import RenderScore

__all__ = ["SweepAxis", "RenderScore", "SemanticMap", "load_map", "parse_grid", "parse_grids",
           "save_map"]
