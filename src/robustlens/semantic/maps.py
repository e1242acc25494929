"""Semantic maps: the true-class score over a grid (or a random sample) of scene parameters.

Output is an :class:`xarray.Dataset` with variables ``score`` (softmax probability of the
class), ``top1`` (predicted class id) and ``margin`` (``score`` minus the best other class's
probability: >= 0 where the class is the top-1), dims named after the parameters, coordinates = grid
values; ``attrs`` record model, mesh, class, renderer settings, version and seed.
"""

from __future__ import annotations

import json
import platform
from collections.abc import Callable, Iterator, Mapping, Sequence
from pathlib import Path
from typing import Any

import numpy as np
import trimesh
import xarray as xr

from .. import __version__
from ..errors import BadInput, printable, ref
from ..estimator import Estimator, check_int
from ..io import atomic_path
from ..models import Classifier
from ..render import MeshRenderer
from ..render.scene import PARAMETERS, check_values
from .grid import SweepAxis, as_axes, grid_chunks, n_poses
from .score import RenderScore

ProgressFn = Callable[[int], None]


class SemanticMap(Estimator):
    """Sweep the score of one class over a grid of semantic parameters.

    An estimator in scikit-learn's sense: the constructor stores its parameters as given,
    :meth:`run` (and :meth:`check`, which it calls) validates them, :meth:`get_params` /
    :meth:`set_params` read and change them by name.

    Args:
        axes: the swept parameters (1..n): ``{"azimuth": values, ...}`` (arrays of strictly
            increasing values or ``"START:STOP:STEP"`` strings), or :class:`SweepAxis` objects
            / ``"NAME=START:STOP:STEP"`` strings (see :func:`~robustlens.semantic.grid.as_axes`).
        fixed: scalar values for the other scene parameters (defaults from the paper).
        batch_size: poses rendered/classified together; memory does not grow with the grid.
        samples: if set, score this many uniform random points inside the axes' ranges
            ``[start, stop)`` instead of the full grid (for n-D where grids explode).
        seed: random seed for ``samples``.

    Attributes (after :meth:`check`): ``axes_`` (the :class:`SweepAxis` list) and ``fixed_``.
    Attributes (after :meth:`run`, which returns the estimator):
        map_: the :class:`xarray.Dataset`.
        n_poses_: how many poses were scored.
    """

    def __init__(self, axes: Mapping[str, Any] | Sequence[SweepAxis | str] | None = None,
                 fixed: Mapping[str, float] | None = None, batch_size: int = 32,
                 samples: int | None = None, seed: int = 0) -> None:
        self.axes = axes
        self.fixed = fixed
        self.batch_size = batch_size
        self.samples = samples
        self.seed = seed

    def check(self) -> SemanticMap:
        """Validate the parameters into ``axes_`` and ``fixed_``; returns ``self``. BadInput
        names the parameter (``axes``, ``fixed``, ``batch_size``, ``samples``, ``seed``)."""
        if self.axes is None or len(self.axes) == 0:
            raise BadInput(": give at least one parameter to sweep", param="axes")
        axes = as_axes(self.axes)
        fixed = dict(self.fixed or {})
        for k, v in fixed.items():
            check_values(str(k), _number(k, v), "fixed")
        clash = set(fixed) & {a.name for a in axes}
        if clash:
            raise BadInput(f"{sorted(clash)[0]}: also swept ({ref('axes')}); use one or the "
                           f"other", param="fixed")
        check_int(self.batch_size, "batch_size", 1)
        if self.samples is not None:
            check_int(self.samples, "samples", 1, "a positive integer")
        check_int(self.seed, "seed", 0, "an integer >= 0")
        self.axes_, self.fixed_ = axes, {str(k): float(v) for k, v in fixed.items()}
        return self

    def n_poses(self) -> int:
        """How many poses :meth:`run` scores (grid points or samples)."""
        self.check()
        return int(self.samples) if self.samples is not None else n_poses(self.axes_)

    def chunks(self, batch: int | None = None) -> Iterator[np.ndarray]:
        """The poses, ``(<= batch, n)`` at a time, in :meth:`points` order, generated lazily:
        memory stays one batch however many poses there are."""
        self.check()
        batch = batch or self.batch_size
        if self.samples is None:
            yield from grid_chunks(self.axes_, batch)
            return
        rng = np.random.default_rng(self.seed)
        lo = np.array([a.start for a in self.axes_])
        hi = np.array([min(a.stop, PARAMETERS[a.name].high) for a in self.axes_])
        for start in range(0, self.samples, batch):
            k = min(batch, self.samples - start)
            yield lo + (hi - lo) * rng.random((k, len(self.axes_)))

    def points(self) -> np.ndarray:
        """All poses to score, ``(N, n)``: the grid in C order, or the random sample (small
        maps only; :meth:`run` streams :meth:`chunks`)."""
        return np.concatenate(list(self.chunks(max(self.n_poses(), 1))), axis=0)

    def run(self, classifier: Classifier, mesh: trimesh.Trimesh, class_id: int,
            renderer: MeshRenderer | None = None, progress: ProgressFn | None = None,
            mesh_name: str = "") -> SemanticMap:
        """Render, classify and collect the map into :attr:`map_`; returns ``self``.
        ``progress(k)`` is called per batch of k poses.

        A model that returns a non-finite score stops the run at that batch (BadInput)."""
        n = self.n_poses()  # validates (axes_, fixed_)
        fn = RenderScore(classifier, mesh, class_id, [a.name for a in self.axes_], self.fixed_,
                         renderer, self.batch_size)
        scores = np.empty(n, dtype=np.float32)
        top1 = np.empty(n, dtype=np.int32)
        margins = np.empty(n, dtype=np.float32)
        # the random sample's coordinates are part of the result; a grid's are its axes
        pts = np.empty((n, len(self.axes_))) if self.samples is not None else None

        done = [0]

        def chunks() -> Iterator[np.ndarray]:
            for c in self.chunks():
                if pts is not None:
                    pts[done[0]:done[0] + len(c)] = c
                    done[0] += len(c)
                yield c

        try:
            for sl, s, t, m in fn.iter_chunks(chunks()):
                if not np.all(np.isfinite(s)):
                    raise BadInput(f"produced non-finite scores (NaN or inf) at poses "
                                   f"{sl.start}..{sl.stop - 1}", param="model",
                                   value=repr(classifier.spec))
                scores[sl], top1[sl], margins[sl] = s, t, m
                if progress:
                    progress(sl.stop - sl.start)
        finally:
            fn.close()
        self.map_ = self.dataset(pts, scores, top1, margins, classifier, class_id, fn.renderer,
                                 mesh_name)
        self.n_poses_ = n
        return self

    def dataset(self, pts: np.ndarray | None, scores: np.ndarray, top1: np.ndarray,
                margins: np.ndarray, clf: Classifier, class_id: int, renderer: MeshRenderer,
                mesh_name: str) -> xr.Dataset:
        """The map's :class:`xarray.Dataset` from per-pose ``scores``, ``top1`` and
        ``margins`` ``(N,)`` (grid C order; ``pts`` ``(N, n)`` for a random sample)."""
        names = [a.name for a in self.axes_]
        if self.samples is None:
            shape = tuple(len(a.values) for a in self.axes_)
            coords = {a.name: (a.name, a.values) for a in self.axes_}
            dims: Any = names
        else:
            assert pts is not None
            coords = {n: ("sample", pts[:, j]) for j, n in enumerate(names)}
            shape, dims = (len(scores),), "sample"
        ds = xr.Dataset({"score": (dims, scores.reshape(shape)),
                         "top1": (dims, top1.reshape(shape)),
                         "margin": (dims, margins.reshape(shape))}, coords=coords)
        for n in names:
            par = PARAMETERS[n]
            ds[n].attrs.update(units=par.unit, long_name=par.description, valid_min=par.low,
                               valid_max=par.high, periodic=int(par.periodic))
        ds["score"].attrs.update(long_name=f"softmax probability of class {class_id} "
                                           f"({clf.labels[class_id]})", units="1")
        ds["top1"].attrs.update(long_name="predicted class id (argmax)")
        ds["margin"].attrs.update(long_name=f"probability of class {class_id} minus the "
                                            f"largest probability of any other class "
                                            f"(>= 0 where it is the top-1)", units="1")
        scene = {k: p.default for k, p in PARAMETERS.items() if k not in names}
        scene.update(self.fixed_)
        ds.attrs.update(
            title=f"semantic map: {clf.labels[class_id]} on {mesh_name or 'mesh'}",
            model=clf.spec, model_weights_sha256=clf.weights_sha256 or "", runtime=clf.runtime,
            preprocessing=json.dumps(clf.preprocessing()),
            mesh=mesh_name, class_id=int(class_id), class_name=clf.labels[class_id],
            parameters=json.dumps(names), kind="sample" if self.samples else "grid",
            renderer=json.dumps({"name": "moderngl", "image_size": renderer.image_size,
                                 "msaa": renderer.msaa, "smooth": renderer.smooth}),
            scene=json.dumps(scene), robustlens_version=__version__, seed=int(self.seed),
            python=platform.python_version(),
        )
        # a latin-1 file name arrives as surrogate escapes, which HDF5 cannot store
        ds.attrs.update({k: printable(v) for k, v in ds.attrs.items() if isinstance(v, str)})
        return ds


def _number(name: Any, value: Any) -> np.ndarray:
    try:
        return np.asarray([float(value)], dtype=np.float64)
    except (TypeError, ValueError):
        raise BadInput(f"{name}={value!r}: expected a number", param="fixed") from None


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
        # param and value apart from the reason: a report shows exc.message by the file
        raise BadInput("file not found (expected a map.nc written by `robustlens map`)",
                       param="map", value=path)
    try:
        ds = xr.load_dataset(p, engine="h5netcdf")
    except Exception as exc:
        raise BadInput(f"not a readable NetCDF map ({type(exc).__name__})", param="map",
                       value=path) from None
    if "score" not in ds:
        raise BadInput("has no 'score' variable", param="map", value=path)
    return ds

