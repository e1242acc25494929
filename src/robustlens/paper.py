"""The one place for the reference paper's constants (Hamdi & Ghanem, "Towards Analyzing
Semantic Robustness of Deep Neural Networks"; see /shared/papers): the scene, the region
update rules and the SRVR protocol.  Code that uses one of these numbers reads it here: the
renderers' and models' default image size, the scene's default distance, the region update
rules (`robustlens.regions.params`), the SRVR start points and domain
(`robustlens.regions.srvr`) and the study config's defaults (regions domain and starts, the
semantic grid over that domain).  Help texts, docstrings and the README quote some of them
in prose.
"""

from __future__ import annotations

#: camera distance in units of the unit-sphere-normalised mesh's radius
DISTANCE: float = 2.732
#: rendered image side in pixels (and the network input of the ImageNet models)
IMAGE_SIZE: int = 224

#: region update rules: step size, the two region-growth weights, the OIR_W regulariser
LR: float = 0.1
ALPHA: float = 0.05
BETA: float = 0.0009
REG: float = 0.1
#: gradient steps per region
N_ITER: int = 800
#: half-width of the start box around the start point
START_HALFWIDTH: float = 1e-5
#: finite-difference step of OIR_W without autodiff (the reference code's choice)
FD_STEP: float = 1e-3

#: the four start points (azimuth, elevation) in degrees of the SRVR protocol
STARTS: list[tuple[float, float]] = [(130, 30), (50, 20), (200, 15), (310, 50)]
#: the domain ((azimuth_min, elevation_min), (azimuth_max, elevation_max)) in degrees
DOMAIN: tuple[tuple[float, float], tuple[float, float]] = ((0, -10), (360, 90))

