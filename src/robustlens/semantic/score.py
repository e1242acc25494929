"""The semantic score function f(u) = softmax(model(render(u)))[class], batched.

Each pose gives three numbers: the true-class probability (``score``, the paper's), the
predicted class (``top1``) and the ``margin`` of the true class over the best other class
(``p_true - max_{c != true} p_c``, >= 0 exactly where the true class is the top-1), which
tells robustness (does the decision change?) from confidence (how sure is it?).

Rendering runs on the calling thread (it owns the OpenGL context) while the classifier runs
on a worker thread, so the next batch is rendered while the current one is classified.
"""

from __future__ import annotations

from collections.abc import Iterable, Iterator, Mapping, Sequence
from concurrent.futures import Future, ThreadPoolExecutor

import numpy as np
import torch
import trimesh

from ..errors import BadInput
from ..models import Classifier
from ..render import MeshRenderer
from ..render.scene import check_values, get_parameter

#: ``(slice, scores, top1, margins)`` of one batch of poses
Batch = tuple[slice, np.ndarray, np.ndarray, np.ndarray]


def true_class_outputs(probs: torch.Tensor, class_id: int
                       ) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``(B, C)`` probabilities -> true-class score ``(B,)`` float64, top-1 ids ``(B,)`` and
    margins ``(B,)``: ``p_true - max_{c != true} p_c`` (>= 0 where the true class is top-1)."""
    p = probs.float()
    score = p[:, class_id]
    top2 = p.topk(min(2, p.shape[1]), dim=1)
    top1 = top2.indices[:, 0]
    other = torch.where(top1 == class_id, top2.values[:, -1], top2.values[:, 0])
    if p.shape[1] == 1:  # a single class has no rival
        other = torch.zeros_like(score)
    return (score.cpu().numpy().astype(np.float64), top1.cpu().numpy(),
            (score - other).cpu().numpy().astype(np.float64))


class RenderScore:
    """Callable ``(N, n) float64 -> (N,)`` scores in [0, 1] for the parameters ``names``.

    Args:
        classifier: the model.
        mesh: normalised mesh.
        class_id: true class index.
        names: the semantic parameters the columns of the input refer to.
        fixed: scalar values for the other scene parameters.
        renderer: a :class:`MeshRenderer` (default: a new one at the model's input size,
            owned and released by :meth:`close`; a given renderer stays the caller's).
        batch_size: poses rendered and classified together.

    A context manager: ``with RenderScore(...) as fn:`` closes it (worker thread, and the
    renderer it created) on exit.

    Attributes:
        n_calls_, n_evaluations_: how often it was called and how many poses it scored.
    """

    def __init__(self, classifier: Classifier, mesh: trimesh.Trimesh, class_id: int,
                 names: Sequence[str], fixed: Mapping[str, float] | None = None,
                 renderer: MeshRenderer | None = None, batch_size: int = 32) -> None:
        self.classifier = classifier
        self.mesh = mesh
        self.class_id = int(class_id)
        self.names = list(names)
        for n in self.names:
            get_parameter(n, "names")
        self.fixed = dict(fixed or {})
        if batch_size < 1:
            raise BadInput(f"{batch_size}: expected a positive integer", param="batch_size")
        self._owns_renderer = renderer is None
        self.renderer = renderer or MeshRenderer(image_size=classifier.input_size)
        self.batch_size = int(batch_size)
        self._pool = ThreadPoolExecutor(max_workers=1, thread_name_prefix="robustlens-classify")
        self.n_calls_ = 0
        self.n_evaluations_ = 0

    def _classify(self, images: torch.Tensor) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        p = self.classifier.probs(images)
        return true_class_outputs(p, self.class_id)

    def _checked(self, points: np.ndarray) -> np.ndarray:
        pts = np.asarray(points, dtype=np.float64)
        if pts.ndim != 2 or pts.shape[1] != len(self.names):
            raise BadInput(f": expected shape (N, {len(self.names)}) for parameters "
                           f"{self.names}, got {pts.shape}", param="points")
        pts = pts.copy()
        for j, n in enumerate(self.names):
            par = get_parameter(n, "names")
            if par.periodic:  # regions may wrap around 0/360
                span = par.high - par.low
                pts[:, j] = par.low + np.mod(pts[:, j] - par.low, span)
            check_values(n, pts[:, j], "points")
        return pts

    def iter_batches(self, points: np.ndarray) -> Iterator[Batch]:
        """Yield ``(slice, scores, top1, margins)`` per batch, rendering batch k+1 during
        inference of batch k."""
        pts = self._checked(points)
        return self.iter_chunks(pts[s:s + self.batch_size]
                                for s in range(0, len(pts), self.batch_size))

    def iter_chunks(self, chunks: Iterable[np.ndarray]) -> Iterator[Batch]:
        """:meth:`iter_batches` over points that arrive in chunks ``(<= batch_size, n)``
        (e.g. generated lazily from a huge grid); slices index the concatenation."""
        pending: tuple[slice, Future[tuple[np.ndarray, np.ndarray, np.ndarray]]] | None = None
        start = 0
        for raw in chunks:
            chunk = self._checked(raw)
            sl = slice(start, start + len(chunk))
            start = sl.stop
            imgs = self.renderer.render(self.mesh, {n: chunk[:, j] for j, n in enumerate(self.names)},
                                        fixed=self.fixed)
            fut = self._pool.submit(self._classify, imgs)
            if pending is not None:
                yield pending[0], *pending[1].result()
            pending = (sl, fut)
        if pending is not None:
            yield pending[0], *pending[1].result()

    def outputs(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
        """Scores ``(N,)``, top-1 class ids ``(N,)`` and margins ``(N,)`` for ``points``
        ``(N, n)``."""
        pts = np.asarray(points, dtype=np.float64)
        scores = np.empty(len(pts))
        top1 = np.empty(len(pts), dtype=np.int64)
        margins = np.empty(len(pts))
        for sl, s, t, m in self.iter_batches(pts):
            scores[sl], top1[sl], margins[sl] = s, t, m
        self.n_calls_ += 1
        self.n_evaluations_ += len(pts)
        return scores, top1, margins

    def scores_and_top1(self, points: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """Scores ``(N,)`` and top-1 class ids ``(N,)`` for ``points`` ``(N, n)``."""
        scores, top1, _ = self.outputs(points)
        return scores, top1

    def __call__(self, points: np.ndarray) -> np.ndarray:
        return self.outputs(points)[0]

    def close(self) -> None:
        """Stop the worker thread and release the renderer if this object created it
        (idempotent)."""
        self._pool.shutdown(wait=True)
        if self._owns_renderer:
            self.renderer.close()
            self._owns_renderer = False

    def __enter__(self) -> RenderScore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
