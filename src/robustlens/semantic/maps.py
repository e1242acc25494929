"""Semantic maps: the true-class score over a grid (or a random sample) of scene parameters.

Output is an :class:`xarray.Dataset` with variables ``score`` (softmax probability of the
class) and ``top1`` (predicted class id), dims named after the parameters, coordinates = grid
values; ``attrs`` record model, mesh, class, renderer settings, version and seed.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path

import numpy as np
import trimesh
import xarray as xr

from .. import __version__
from ..errors import BadInput
from ..io import atomic_path
from ..models import Classifier
from ..render import MeshRenderer
from ..render.scene import PARAMETERS
from .grid import GridAxis
from .score import RenderScore

ProgressFn = Callable[[int], None]


class SemanticMap:
    """Sweep the score of one class over a grid of semantic parameters.

    Args:
        axes: one :class:`GridAxis` per swept parameter (1..n).
        fixed: scalar values for the other scene parameters (defaults from the paper).
        batch_size: poses rendered/classified together; memory does not grow with the grid.
        samples: if set, score this many uniform random points inside the axes' ranges
            ``[start, stop)`` instead of the full grid (for n-D where grids explode).
        seed: random seed for ``samples``.

    Attributes (after :meth:`run`):
        map_: the :class:`xarray.Dataset`.
    """

    def __init__(self, axes: Sequence[GridAxis], fixed: Mapping[str, float] | None = None,
                 batch_size: int = 32, samples: int | None = None, seed: int = 0) -> None:
        if not axes:
            raise BadInput("--grid: give at least one parameter to sweep")
        self.axes = list(axes)
        self.fixed = dict(fixed or {})
        clash = set(self.fixed) & {a.name for a in self.axes}
        if clash:
            raise BadInput(f"--set {sorted(clash)[0]}: also swept by --grid; use one or the other")
        self.batch_size = batch_size
        if samples is not None and samples < 1:
            raise BadInput(f"--samples {samples}: expected a positive integer")
        self.samples = samples
        self.seed = seed

    def points(self) -> np.ndarray:
        """All poses to score, ``(N, n)``: the grid in C order, or the random sample."""
        if self.samples is None:
            mesh = np.meshgrid(*[a.values for a in self.axes], indexing="ij")
            return np.stack([m.ravel() for m in mesh], axis=1)
        rng = np.random.default_rng(self.seed)
        lo = np.array([a.start for a in self.axes])
        hi = np.array([min(a.stop, PARAMETERS[a.name].high) for a in self.axes])
        return lo + (hi - lo) * rng.random((self.samples, len(self.axes)))

    def run(self, classifier: Classifier, mesh: trimesh.Trimesh, class_id: int,
            renderer: MeshRenderer | None = None, progress: ProgressFn | None = None,
            mesh_name: str = "") -> xr.Dataset:
        """Render, classify and collect the map; ``progress(k)`` is called per batch of k poses."""
        pts = self.points()
        fn = RenderScore(classifier, mesh, class_id, [a.name for a in self.axes], self.fixed,
                         renderer, self.batch_size)
        scores = np.empty(len(pts), dtype=np.float32)
        top1 = np.empty(len(pts), dtype=np.int32)
        try:
            for sl, s, t in fn.iter_batches(pts):
                scores[sl], top1[sl] = s, t
                if progress:
                    progress(sl.stop - sl.start)
        finally:
            fn.close()
        if not np.all(np.isfinite(scores)):
            raise BadInput(f"model {classifier.spec!r}: produced non-finite scores")
        self.map_ = self._dataset(pts, scores, top1, classifier, class_id, fn.renderer, mesh_name)
        return self.map_

    def _dataset(self, pts: np.ndarray, scores: np.ndarray, top1: np.ndarray, clf: Classifier,
                 class_id: int, renderer: MeshRenderer, mesh_name: str) -> xr.Dataset:
        names = [a.name for a in self.axes]
        if self.samples is None:
            shape = tuple(len(a.values) for a in self.axes)
            coords = {a.name: (a.name, a.values) for a in self.axes}
            ds = xr.Dataset({"score": (names, scores.reshape(shape)),
                             "top1": (names, top1.reshape(shape))}, coords=coords)
        else:
            coords = {n: ("sample", pts[:, j]) for j, n in enumerate(names)}
            ds = xr.Dataset({"score": ("sample", scores), "top1": ("sample", top1)},
                            coords=coords)
        for n in names:
            par = PARAMETERS[n]
            ds[n].attrs.update(units=par.unit, long_name=par.description, valid_min=par.low,
                               valid_max=par.high, periodic=int(par.periodic))
        ds["score"].attrs.update(long_name=f"softmax probability of class {class_id} "
                                           f"({clf.labels[class_id]})", units="1")
        ds["top1"].attrs.update(long_name="predicted class id (argmax)")
        scene = {k: p.default for k, p in PARAMETERS.items() if k not in names}
        scene.update(self.fixed)
        ds.attrs.update(
            title=f"semantic map: {clf.labels[class_id]} on {mesh_name or 'mesh'}",
            model=clf.spec, model_weights_sha256=clf.weights_sha256 or "", runtime=clf.runtime,
            mesh=mesh_name, class_id=int(class_id), class_name=clf.labels[class_id],
            parameters=json.dumps(names), kind="sample" if self.samples else "grid",
            renderer=json.dumps({"name": "moderngl", "image_size": renderer.image_size,
                                 "msaa": renderer.msaa, "smooth": renderer.smooth}),
            scene=json.dumps(scene), robustlens_version=__version__, seed=int(self.seed),
            python=platform.python_version(),
        )
        return ds


def save_map(ds: xr.Dataset, path: str | Path) -> None:
    """Write ``ds`` as NetCDF (h5netcdf) atomically."""
    with atomic_path(path) as tmp:
        ds.to_netcdf(tmp, engine="h5netcdf")


def load_map(path: str | Path) -> xr.Dataset:
    """Read a ``map.nc`` (a folder holding one is accepted too)."""
    p = Path(path)
    if p.is_dir():
        p = p / "map.nc"
    if not p.is_file():
        raise BadInput(f"--map {path}: file not found (expected a map.nc written by `robustlens map`)")
    try:
        ds = xr.load_dataset(p, engine="h5netcdf")
    except Exception as exc:
        raise BadInput(f"--map {path}: not a readable NetCDF map ({type(exc).__name__})") from None
    if "score" not in ds:
        raise BadInput(f"--map {path}: has no 'score' variable")
    return ds

