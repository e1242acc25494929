"""Semantic maps in chunks of poses: persisted one by one, resumable, runnable anywhere.

A map's poses (grid C order, see `SemanticMap.points`) are cut into consecutive chunks of at
most ``chunk_size`` poses. Each finished chunk is written atomically as a small ``.npz`` in
``FOLDER/.chunks/`` together with a key (model weights, mesh geometry, class, parameters,
fixed values, chunk size, the poses themselves), so a run killed with ``kill -9`` and started
again recomputes only the missing chunks of that map. The chunk files are removed once
``map.nc`` is written (by :func:`clear_chunks`).

Who computes a chunk is up to an *executor* (`robustlens.study.executor`): in-process, in
one overlapped render/classify pipeline over all missing poses, or as Ray tasks on a cluster.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import Protocol

import numpy as np
import trimesh
import xarray as xr

from ..errors import BadInput
from ..io import atomic_path
from ..models import Classifier
from ..render import MeshRenderer
from .maps import SemanticMap
from .score import RenderScore

DEFAULT_CHUNK_SIZE = 256
CHUNK_DIR = ".chunks"

Log = Callable[[str], None]
ProgressFn = Callable[[int], None]


def chunk_bounds(n: int, chunk_size: int = DEFAULT_CHUNK_SIZE) -> list[tuple[int, int]]:
    """``[(start, stop), ...]`` covering ``range(n)`` in order, each at most ``chunk_size``."""
    if chunk_size < 1:
        raise BadInput(f"chunk_size {chunk_size}: expected a positive integer")
    return [(s, min(s + chunk_size, n)) for s in range(0, n, chunk_size)]


def mesh_digest(mesh: trimesh.Trimesh) -> str:
    """Hash of a (normalised) mesh's geometry and the kind of its visuals."""
    h = hashlib.sha256()
    h.update(np.ascontiguousarray(mesh.vertices, dtype=np.float64).tobytes())
    h.update(np.ascontiguousarray(mesh.faces, dtype=np.int64).tobytes())
    h.update(type(getattr(mesh, "visual", None)).__name__.encode())
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
        """Chunks from another model, mesh, class, grid or chunking are not reused."""
        h = hashlib.sha256(json.dumps([clf.spec, clf.weights_sha256, mesh_hash, self.class_id,
                                       self.names, sorted(self.fixed.items()),
                                       self.chunk_size], default=str).encode())
        h.update(np.ascontiguousarray(self.points, dtype=np.float64).tobytes())
        return h.hexdigest()[:24]


class ChunkRunner(Protocol):
    """How the missing chunks get computed (see `robustlens.study.executor`)."""

    def map_chunks(self, clf: Classifier, mesh: trimesh.Trimesh, mesh_hash: str, job: MapJob,
                   todo: list[tuple[int, int]], renderer: MeshRenderer,
                   on_chunk: Callable[[int, int, np.ndarray, np.ndarray], None],
                   progress: ProgressFn | None) -> None:
        """Compute chunks ``todo`` and call ``on_chunk(start, stop, scores, top1)`` for each
        as soon as it is finished (any order)."""


def compute_chunk(clf: Classifier, mesh: trimesh.Trimesh, job: MapJob, start: int, stop: int,
                  renderer: MeshRenderer) -> tuple[np.ndarray, np.ndarray]:
    """Scores ``(k,)`` float32 and top-1 ids ``(k,)`` int32 of poses ``start:stop``."""
    pts = job.points[start:stop]
    fn = RenderScore(clf, mesh, job.class_id, list(job.names), job.fixed, renderer,
                     job.batch_size)
    scores = np.empty(len(pts), dtype=np.float32)
    top1 = np.empty(len(pts), dtype=np.int32)
    try:
        for sl, s, t in fn.iter_batches(pts):
            scores[sl], top1[sl] = s, t
    finally:
        fn.close()
    return scores, top1


def compute_chunks_inline(clf: Classifier, mesh: trimesh.Trimesh, job: MapJob,
                          todo: Sequence[tuple[int, int]], renderer: MeshRenderer,
                          on_chunk: Callable[[int, int, np.ndarray, np.ndarray], None],
                          progress: ProgressFn | None = None) -> None:
    """All of ``todo`` in one overlapped render/classify pipeline (batch k+1 rendered while
    batch k is classified), handing each chunk to ``on_chunk`` as soon as it is complete.

    With nothing to resume, the batches are exactly those of `SemanticMap.run` when
    ``chunk_size`` is a multiple of ``batch_size``, so the numbers are identical.
    """
    if not todo:
        return
    idx = np.concatenate([np.arange(a, b) for a, b in todo])
    owner = np.concatenate([np.full(b - a, i) for i, (a, b) in enumerate(todo)])
    scores = np.empty(len(idx), dtype=np.float32)
    top1 = np.empty(len(idx), dtype=np.int32)
    left = np.array([b - a for a, b in todo])
    offsets = np.concatenate([[0], np.cumsum(left)])
    fn = RenderScore(clf, mesh, job.class_id, list(job.names), job.fixed, renderer,
                     job.batch_size)
    try:
        for sl, s, t in fn.iter_batches(job.points[idx]):
            scores[sl], top1[sl] = s, t
            for i, k in zip(*np.unique(owner[sl], return_counts=True), strict=True):
                left[i] -= k
                if left[i] == 0:
                    a, b = todo[i]
                    on_chunk(a, b, scores[offsets[i]:offsets[i + 1]].copy(),
                             top1[offsets[i]:offsets[i + 1]].copy())
            if progress:
                progress(sl.stop - sl.start)
    finally:
        fn.close()


# ------------------------------------------------------------------ persistence
def _chunk_path(folder: Path, start: int, stop: int) -> Path:
    return folder / CHUNK_DIR / f"chunk_{start:09d}_{stop:09d}.npz"


def save_chunk(folder: Path, key: str, start: int, stop: int, scores: np.ndarray,
               top1: np.ndarray) -> None:
    """Write one finished chunk atomically (complete or absent, even under kill -9)."""
    with atomic_path(_chunk_path(folder, start, stop)) as tmp:
        with open(tmp, "wb") as f:
            np.savez(f, key=np.array(key), scores=np.asarray(scores, np.float32),
                     top1=np.asarray(top1, np.int32))


def load_chunks(folder: Path, key: str,
                bounds: Sequence[tuple[int, int]]) -> dict[tuple[int, int], tuple[np.ndarray, np.ndarray]]:
    """The finished chunks of this map (same key and bounds); anything else is ignored."""
    out: dict[tuple[int, int], tuple[np.ndarray, np.ndarray]] = {}
    for a, b in bounds:
        p = _chunk_path(folder, a, b)
        if not p.is_file():
            continue
        try:
            with np.load(p) as z:
                if str(z["key"]) != key or z["scores"].shape != (b - a,):
                    continue
                out[(a, b)] = (z["scores"].astype(np.float32), z["top1"].astype(np.int32))
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
                    progress: ProgressFn | None = None) -> xr.Dataset:
    """`SemanticMap.run`, but chunked, persisted per chunk in ``folder/.chunks`` and resumed.

    Logs ``resumed map MODEL MESH at K/N poses`` when finished chunks were found. The
    returned dataset equals ``smap.run(...).map_`` (same coordinates and attributes; scores
    within float round-off of a different batch split). Call :func:`clear_chunks` after
    the map is saved.
    """
    folder = Path(folder)
    renderer = renderer or MeshRenderer(image_size=clf.input_size)
    job = MapJob(tuple(a.name for a in smap.axes), smap.points(), dict(smap.fixed),
                 int(class_id), smap.batch_size, int(chunk_size))
    bounds = job.bounds()
    mhash = mesh_digest(mesh)
    key = job.key(clf, mhash)
    n = len(job.points)
    scores = np.empty(n, dtype=np.float32)
    top1 = np.empty(n, dtype=np.int32)
    done = load_chunks(folder, key, bounds)
    for (a, b), (s, t) in done.items():
        scores[a:b], top1[a:b] = s, t
    if done:
        k = sum(b - a for a, b in done)
        if log:
            log(f"resumed {label} {clf.spec} {mesh_name} at {k}/{n} poses")
        if progress:
            progress(k)
    todo = [ab for ab in bounds if ab not in done]

    def on_chunk(a: int, b: int, s: np.ndarray, t: np.ndarray) -> None:
        save_chunk(folder, key, a, b, s, t)
        scores[a:b], top1[a:b] = s, t

    if todo:
        if runner is None:
            compute_chunks_inline(clf, mesh, job, todo, renderer, on_chunk, progress)
        else:
            runner.map_chunks(clf, mesh, mhash, job, todo, renderer, on_chunk, progress)
    if not np.all(np.isfinite(scores)):
        raise BadInput(f"model {clf.spec!r}: produced non-finite scores")
    smap.map_ = smap._dataset(job.points, scores, top1, clf, class_id, renderer, mesh_name)
    return smap.map_


def chunk_files(folder: str | Path) -> list[Path]:
    """The chunk files currently persisted for ``folder`` (for tests and tools)."""
    return sorted((Path(folder) / CHUNK_DIR).glob("chunk_*.npz"))


__all__ = ["DEFAULT_CHUNK_SIZE", "MapJob", "chunk_bounds", "chunk_files",
                      "clear_chunks", "compute_chunk", "compute_chunks_inline", "load_chunks",
                      "mesh_digest", "run_chunked_map", "save_chunk"]
