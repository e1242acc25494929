"""Semantic maps in chunks of poses: persisted one by one, resumable, runnable anywhere.

A map's poses (grid C order, see `SemanticMap.points`) are cut into consecutive chunks of at
most ``chunk_size`` poses. Each finished chunk is written atomically as a small ``.npz`` in
``FOLDER/.chunks/`` together with a key (the model's whole identity, mesh, class,
parameters, fixed values, chunk size, the poses themselves), so a run killed with ``kill -9`` and started
again recomputes only the missing chunks of that map. The chunk files are removed once
``map.nc`` is written (by :func:`clear_chunks`).

Who computes a chunk is up to an *executor* (`robustlens.study.executor`): in-process, in
one overlapped render/classify pipeline over all missing poses, or as Ray tasks on a cluster.
"""

from __future__ import annotations

import hashlib
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import trimesh
import xarray as xr

from ..errors import BadInput
from ..fingerprint import model_key
from ..io import atomic_path
from ..models import Classifier
from ..render import MeshRenderer
from .maps import SemanticMap
from .score import RenderScore

DEFAULT_CHUNK_SIZE = 256
CHUNK_DIR = ".chunks"
#: what a chunk file holds (scores, top1, margins); a chunk of another format is recomputed
CHUNK_FORMAT = 2

Log = Callable[[str], None]
ProgressFn = Callable[[int], None]
#: ``(scores (k,) float32, top1 (k,) int32, margins (k,) float32)`` of one chunk
ChunkOutputs = tuple[np.ndarray, np.ndarray, np.ndarray]
#: ``on_chunk(start, stop, scores, top1, margins)``
OnChunk = Callable[[int, int, np.ndarray, np.ndarray, np.ndarray], None]


def chunk_bounds(n: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(n)`` in order, each at most ``chunk_size``."""
    if chunk_size < 1:
        raise BadInput(f"{chunk_size}: expected a positive integer", param="chunk_size")
    return [(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]


def geometry_digest(mesh: trimesh.Trimesh) -> str:
    """Hash of everything about a loaded (normalised) mesh that is rendered: geometry and its
    colour (material parts, factors, textures, UVs, vertex colours). Two meshes of the same
    geometry and other textures get other digests (chunk keys and the Ray mesh cache)."""
    from ..render.materials import materials_of

    h = hashlib.sha256()
    h.update(np.ascontiguousarray(mesh.vertices, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(mesh.faces, dtype=np.int64).tobytes())
    h.update(type(getattr(mesh, "visual", None)).__name__.encode())
    mat = materials_of(mesh)
    if mat is not None:
        h.update(np.ascontiguousarray(mat.uv, dtype=np.float32).tobytes())
        h.update(np.ascontiguousarray(mat.vertex_color, dtype=np.float32).tobytes())
        for part in mat.parts:
            h.update(f"{part.start}:{part.stop}:{part.name}".encode())
            h.update(np.ascontiguousarray(part.color, dtype=np.float32).tobytes())
            if part.texture is not None:
                h.update(str(part.texture.shape).encode())
                h.update(np.ascontiguousarray(part.texture).tobytes())
    return h.hexdigest()[:32]


@dataclass(frozen=True)
class MapJob:
    """Everything that defines a map's numbers (not where it is computed).

    Attributes:
        names: the swept parameters, in the column order of ``points``.
        points: ``(N, n)`` poses in C order.
        fixed: the other scene parameters.
        class_id, batch_size: as for `RenderScore`.
        chunk_size: poses per chunk.
    """

    names: tuple[str, ...]
    points: np.ndarray
    fixed: dict[str, float]
    class_id: int
    batch_size: int
    chunk_size: int

    def bounds(self) -> list[tuple[int, int]]:
        return chunk_bounds(len(self.points), self.chunk_size)

    def key(self, clf: Classifier, mesh_hash: str) -> str:
        """Chunks from another model (any setting of its identity: weights, source,
        preprocessing, labels, layer, runtime), mesh, class, grid or chunking are not
        reused."""
        poses = hashlib.sha256(np.ascontiguousarray(self.points, dtype=np.float64).tobytes())
        return model_key(clf, mesh_hash, self.class_id, self.names,
                         sorted(self.fixed.items()), self.chunk_size, poses.hexdigest(),
                         CHUNK_FORMAT)[:24]


class ChunkRunner(Protocol):
    """How the missing chunks get computed (see `robustlens.study.executor`)."""

    def map_chunks(self, clf: Classifier, mesh: trimesh.Trimesh, mesh_hash: str, job: MapJob,
                   todo: list[tuple[int, int]], renderer: MeshRenderer,
                   on_chunk: OnChunk, progress: ProgressFn | None) -> None:
        """Compute chunks ``todo`` and call ``on_chunk(start, stop, scores, top1, margins)``
        for each as soon as it is finished (any order)."""


def _empty(n: int) -> ChunkOutputs:
    return (np.empty(n, dtype=np.float32), np.empty(n, dtype=np.int32),
            np.empty(n, dtype=np.float32))


def compute_chunk(clf: Classifier, mesh: trimesh.Trimesh, job: MapJob, start: int, stop: int,
                  renderer: MeshRenderer) -> ChunkOutputs:
    """Scores ``(k,)`` float32, top-1 ids ``(k,)`` int32 and margins ``(k,)`` float32 of
    poses ``start:stop``."""
    pts = job.points[start:stop]
    fn = RenderScore(clf, mesh, job.class_id, list(job.names), job.fixed, renderer,
                     job.batch_size)
    scores, top1, margins = _empty(len(pts))
    try:
        for sl, s, t, m in fn.iter_batches(pts):
            scores[sl], top1[sl], margins[sl] = s, t, m
    finally:
        fn.close()
    return scores, top1, margins


def compute_chunks_inline(clf: Classifier, mesh: trimesh.Trimesh, job: MapJob,
                          todo: Sequence[tuple[int, int]], renderer: MeshRenderer,
                          on_chunk: OnChunk, progress: ProgressFn | None = None) -> None:
    """All of ``todo`` in one overlapped render/classify pipeline (batch k+1 rendered while
    batch k is classified), handing each chunk to ``on_chunk`` as soon as it is complete.

    With nothing to resume, the batches are exactly those of `SemanticMap.run` when
    ``chunk_size`` is a multiple of ``batch_size``, so the numbers are identical.
    """
    if not todo:
        return
    idx = np.concatenate([np.arange(a, b) for a, b in todo])
    owner = np.concatenate([np.full(b - a, i) for i, (a, b) in enumerate(todo)])
    scores, top1, margins = _empty(len(idx))
    left = np.array([b - a for a, b in todo])
    offsets = np.concatenate([[0], np.cumsum(left)])
    fn = RenderScore(clf, mesh, job.class_id, list(job.names), job.fixed, renderer,
                     job.batch_size)
    try:
        for sl, s, t, m in fn.iter_batches(job.points[idx]):
            scores[sl], top1[sl], margins[sl] = s, t, m
            for i, k in zip(*np.unique(owner[sl], return_counts=True), strict=True):
                left[i] -= k
                if left[i] == 0:
                    a, b = todo[i]
                    own = slice(offsets[i], offsets[i + 1])
                    on_chunk(a, b, scores[own].copy(), top1[own].copy(), margins[own].copy())
            if progress:
                progress(sl.stop - sl.start)
    finally:
        fn.close()


# ------------------------------------------------------------------ persistence
def _chunk_path(folder: Path, start: int, stop: int) -> Path:
    return folder / CHUNK_DIR / f"chunk_{start:09d}_{stop:09d}.npz"


def save_chunk(folder: Path, key: str, start: int, stop: int, scores: np.ndarray,
               top1: np.ndarray, margins: np.ndarray) -> None:
    """Write one finished chunk atomically (complete or absent, even under kill -9)."""
    with atomic_path(_chunk_path(folder, start, stop)) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, key=np.array(key), scores=np.asarray(scores, np.float32),
                     top1=np.asarray(top1, np.int32), margins=np.asarray(margins, np.float32))


def load_chunks(folder: Path, key: str,
                bounds: Sequence[tuple[int, int]]) -> dict[tuple[int, int], ChunkOutputs]:
    """The finished chunks of this map (same key and bounds, every array of the right
    length); anything else is ignored and recomputed."""
    out: dict[tuple[int, int], ChunkOutputs] = {}
    for a, b in bounds:
        p = _chunk_path(folder, a, b)
        if not p.is_file():
            continue
        try:
            with np.load(p) as z:
                if str(z["key"]) != key or any(z[v].shape != (b - a,)
                                               for v in ("scores", "top1", "margins")):
                    continue
                out[(a, b)] = (z["scores"].astype(np.float32), z["top1"].astype(np.int32),
                               z["margins"].astype(np.float32))
        except Exception:  # a foreign or damaged file: recompute that chunk
            continue
    return out


def clear_chunks(folder: Path) -> None:
    """Remove ``FOLDER/.chunks`` (after ``map.nc`` is written)."""
    shutil.rmtree(Path(folder) / CHUNK_DIR, ignore_errors=True)


# ------------------------------------------------------------------ the whole map
def run_chunked_map(smap: SemanticMap, clf: Classifier, mesh: trimesh.Trimesh, class_id: int,
                    folder: str | Path, runner: ChunkRunner | None = None,
                    renderer: MeshRenderer | None = None, *,
                    chunk_size: int = DEFAULT_CHUNK_SIZE, mesh_name: str = "",
                    label: str = "map", log: Log | None = None,
                    progress: ProgressFn | None = None, resume: bool = True) -> xr.Dataset:
    """`SemanticMap.run`, but chunked, persisted per chunk in ``folder/.chunks`` and resumed.

    Logs ``resumed map MODEL MESH at K/N poses`` when finished chunks were found;
    ``resume=False`` (``--force``) deletes them first and computes every chunk. The
    returned dataset equals ``smap.run(...).map_`` (same coordinates and attributes; scores
    within float round-off of a different batch split). Call :func:`clear_chunks` after
    the map is saved.
    """
    folder = Path(folder)
    renderer = renderer or MeshRenderer(image_size=clf.input_size)
    points = smap.points()  # validates the estimator (axes_, fixed_)
    job = MapJob(tuple(a.name for a in smap.axes_), points, dict(smap.fixed_),
                 int(class_id), smap.batch_size, int(chunk_size))
    bounds = job.bounds()
    mhash = geometry_digest(mesh)
    key = job.key(clf, mhash)
    n = len(job.points)
    scores, top1, margins = _empty(n)
    if not resume:
        clear_chunks(folder)
    done = load_chunks(folder, key, bounds)
    for (a, b), (s, t, m) in done.items():
        scores[a:b], top1[a:b], margins[a:b] = s, t, m
    if done:
        k = sum(b - a for a, b in done)
        if log:
            log(f"resumed {label} {clf.spec} {mesh_name} at {k}/{n} poses")
        if progress:
            progress(k)
    todo = [ab for ab in bounds if ab not in done]

    def on_chunk(a: int, b: int, s: np.ndarray, t: np.ndarray, m: np.ndarray) -> None:
        save_chunk(folder, key, a, b, s, t, m)
        scores[a:b], top1[a:b], margins[a:b] = s, t, m

    if todo:
        if runner is None:
            compute_chunks_inline(clf, mesh, job, todo, renderer, on_chunk, progress)
        else:
            runner.map_chunks(clf, mesh, mhash, job, todo, renderer, on_chunk, progress)
    if not np.all(np.isfinite(scores)):
        raise BadInput("produced non-finite scores", param="model", value=repr(clf.spec))
    smap.map_ = smap.dataset(job.points, scores, top1, margins, clf, class_id, renderer,
                             mesh_name)
    return smap.map_


def chunk_files(folder: str | Path) -> list[Path]:
    """The chunk files currently persisted for ``folder`` (for tests and tools)."""
    return sorted((Path(folder) / CHUNK_DIR).glob("chunk_*.npz"))


__all__ = ["DEFAULT_CHUNK_SIZE", "MapJob", "chunk_bounds", "chunk_files",
                      "clear_chunks", "compute_chunk", "compute_chunks_inline", "load_chunks",
                      "geometry_digest", "run_chunked_map", "save_chunk"]
