"""Semantic scene parameters: a registry with units, valid ranges and paper defaults.

Each parameter is a scalar. A *scene batch* is a mapping ``name -> array (B,)``; any
parameter left out takes its default. Defaults follow Hamdi & Ghanem (2020): camera at
distance 2.732 from a unit-sphere-normalised mesh, 224 x 224 image, white object, light
from above (ambient 0.5 + directional 0.5, as in neural_renderer).
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass

import numpy as np

from .. import paper
from ..errors import BadInput


@dataclass(frozen=True)
class SceneParameter:
    """One semantic parameter of the scene."""

    name: str
    unit: str
    low: float
    high: float
    default: float
    description: str
    periodic: bool = False

    @property
    def label(self) -> str:
        """Axis label with unit, e.g. ``azimuth (deg)``."""
        return f"{self.name} ({self.unit})" if self.unit else self.name


PARAMETERS: dict[str, SceneParameter] = {}


def register_parameter(p: SceneParameter) -> SceneParameter:
    """Add a parameter to the registry (renderers must know how to use it)."""
    PARAMETERS[p.name] = p
    return p


for _p in [
    SceneParameter("azimuth", "deg", 0.0, 360.0, 0.0,
                   "camera angle around the object's vertical (+y) axis; 0 = camera on +z",
                   periodic=True),
    SceneParameter("elevation", "deg", -90.0, 90.0, 0.0,
                   "camera angle above the horizontal plane"),
    SceneParameter("distance", "radii", 1.05, 100.0, paper.DISTANCE,
                   "camera distance from the centre, in units of the mesh's bounding radius"),
    SceneParameter("fov", "deg", 5.0, 150.0, 60.0, "vertical field of view of the camera"),
    SceneParameter("light_azimuth", "deg", 0.0, 360.0, 0.0,
                   "direction the directional light comes from, around +y", periodic=True),
    SceneParameter("light_elevation", "deg", -90.0, 90.0, 90.0,
                   "elevation the light comes from; 90 = from above"),
    SceneParameter("light_intensity", "", 0.0, 2.0, 0.5, "directional light intensity"),
    SceneParameter("ambient", "", 0.0, 1.0, 0.5, "ambient light intensity"),
    SceneParameter("object_r", "", 0.0, 1.0, 1.0, "object colour, red channel"),
    SceneParameter("object_g", "", 0.0, 1.0, 1.0, "object colour, green channel"),
    SceneParameter("object_b", "", 0.0, 1.0, 1.0, "object colour, blue channel"),
    SceneParameter("background_r", "", 0.0, 1.0, 0.0, "background colour, red channel"),
    SceneParameter("background_g", "", 0.0, 1.0, 0.0, "background colour, green channel"),
    SceneParameter("background_b", "", 0.0, 1.0, 0.0, "background colour, blue channel"),
]:
    register_parameter(_p)

#: convenience groups: ``object_color=0.8,0.2,0.2`` sets the three channels
GROUPS = {"object_color": ("object_r", "object_g", "object_b"),
          "background_color": ("background_r", "background_g", "background_b")}


def get_parameter(name: str, param: str = "parameter") -> SceneParameter:
    """Look up a registered parameter, raising a BadInput listing the known names."""
    try:
        return PARAMETERS[name]
    except KeyError:
        raise BadInput(f"{name!r}: unknown scene parameter; expected one of "
                       f"{', '.join(PARAMETERS)}", param=param) from None


def check_values(name: str, values: np.ndarray, param: str = "parameter") -> None:
    """Raise BadInput (with ``param``) when any value is non-finite or outside the
    parameter's valid range."""
    p = get_parameter(name, param)
    v = np.asarray(values, dtype=np.float64)
    if not np.all(np.isfinite(v)):
        raise BadInput(f"{name}: values must be finite", param=param)
    eps = 1e-9 * max(1.0, abs(p.high - p.low))
    bad = (v < p.low - eps) | (v > p.high + eps)
    if np.any(bad):
        raise BadInput(f"{name}={v[bad].flat[0]:g}: outside the valid range "
                       f"[{p.low:g}, {p.high:g}] {p.unit}".rstrip(), param=param)


def scene_batch(params: Mapping[str, np.ndarray | float], batch: int | None = None,
                fixed: Mapping[str, float] | None = None) -> dict[str, np.ndarray]:
    """Complete a partial batch: every registered parameter as a float64 array ``(B,)``.

    ``params`` hold per-pose values (arrays of length B or scalars); ``fixed`` holds scalar
    overrides of the defaults. Unknown names and out-of-range values raise BadInput.
    """
    lengths = {len(np.atleast_1d(v)) for v in params.values() if np.ndim(v) > 0}
    if batch is None:
        batch = max(lengths) if lengths else 1
    if lengths - {batch, 1}:
        raise BadInput(f": parameter arrays have different lengths {sorted(lengths)}",
                       param="params")
    out: dict[str, np.ndarray] = {}
    for name, p in PARAMETERS.items():
        v = params.get(name, (fixed or {}).get(name, p.default))
        arr = np.broadcast_to(np.asarray(v, dtype=np.float64), (batch,)).copy()
        out[name] = arr
    for names, where in ((params, "params"), (fixed or {}, "fixed")):
        for name in names:
            get_parameter(name, where)
            check_values(name, out[name], where)
    return out


def parse_assignments(items: list[str] | tuple[str, ...], param: str = "fixed"
                      ) -> dict[str, float]:
    """Parse ``["distance=3", "object_color=0.8,0.2,0.2"]`` into scalar parameter values;
    BadInput with ``param`` (the caller's name for the assignments)."""
    out: dict[str, float] = {}
    for item in items:
        name, sep, val = item.partition("=")
        name = name.strip()
        if not sep:
            raise BadInput(f"{item!r}: expected NAME=VALUE", param=param)
        try:
            vals = [float(x) for x in val.split(",")]
        except ValueError:
            raise BadInput(f"{item!r}: expected numbers after '='", param=param) from None
        if name in GROUPS:
            if len(vals) != 3:
                raise BadInput(f"{item!r}: expected three numbers r,g,b in [0, 1]", param=param)
            for ch, v in zip(GROUPS[name], vals, strict=True):
                check_values(ch, np.array([v]), param)
                out[ch] = v
            continue
        if len(vals) != 1:
            raise BadInput(f"{item!r}: expected one number", param=param)
        check_values(name, np.array(vals), param)
        out[name] = vals[0]
    return out
