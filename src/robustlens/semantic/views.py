"""What the model saw and what it said instead: renders and top-5 predictions at a subsample
of a semantic map's poses, plus the classes it predicts where the true class fails.

The report's interactive maps read this (`robustlens.report`): clicking a map cell shows the
render at the nearest stored pose and its top-5 classes; the "what it says instead" panel lists
the most frequent predictions at non-robust poses with an example render of each.

Files, in ``FOLDER`` (`robustlens.study.layout.StudyLayout.views_dir`)::

    views.json           poses (per dim: the stored coordinates), top-5 per pose, confusions
    thumbs/P.jpg         the render at stored pose P (flat index, C order), ``size`` px
    examples/K.jpg       an example render of the K-th confusion

Size: every ``stride``-th cell per parameter; by default (``stride=None``) the smallest stride
that stores at most :data:`MAX_AUTO_POSES` poses (4 on the paper's 3-degree grid: 31 x 10 = 310
poses; 2 on a 10-degree grid), 96 px JPEG thumbnails: at most about 0.6 MB per map.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any

import numpy as np
import torch
import xarray as xr

from ..errors import BadInput
from ..images import jpeg_bytes
from ..io import atomic_path, write_text_atomic

VIEWS_FORMAT = 1
#: ``stride=None`` stores at most this many poses per map
MAX_AUTO_POSES = 320


@dataclass(frozen=True)
class ViewSpec:
    """How many views to store: every ``stride``-th map cell per parameter (None: the
    smallest stride that keeps at most :data:`MAX_AUTO_POSES` poses), ``size`` px
    thumbnails, ``top`` classes per pose, ``confusions`` example classes."""

    stride: int | None = None
    size: int = 96
    top: int = 5
    confusions: int = 3
    example_size: int = 192

    def __post_init__(self) -> None:
        for name in ("stride", "size", "top", "confusions", "example_size"):
            v = getattr(self, name)
            if name == "stride" and v is None:
                continue
            if isinstance(v, bool) or not isinstance(v, int) or v < 1:
                raise BadInput(f"{v!r}: expected a positive integer", param=f"views.{name}")


def auto_stride(sizes: list[int], max_poses: int = MAX_AUTO_POSES) -> int:
    """The smallest stride whose subsample of a grid of ``sizes`` (the last value of each dim
    kept too) has at most ``max_poses`` poses."""
    stride = 1
    while int(np.prod([-(-n // stride) + (1 if (n - 1) % stride else 0) for n in sizes])) \
            > max_poses and stride < max(sizes):
        stride += 1
    return stride


def view_axes(ds: xr.Dataset, stride: int | None) -> list[tuple[str, np.ndarray]] | None:
    """The stored coordinates per map dim (every ``stride``-th value, the last one included;
    ``stride=None``: :func:`auto_stride`), or None for maps that have no grid to click (random
    samples, more than 2 dims)."""
    score = ds["score"]
    if "sample" in score.dims or not 1 <= score.ndim <= 2:
        return None
    if stride is None:
        stride = auto_stride([int(score.sizes[d]) for d in score.dims])
    out = []
    for d in score.dims:
        v = np.asarray(ds[d].values, dtype=np.float64)
        idx = np.unique(np.r_[np.arange(0, len(v), stride), len(v) - 1])
        out.append((str(d), v[idx]))
    return out


def _jpeg(img: torch.Tensor, size: int) -> bytes:
    """``(3, H, W)`` in [0, 1] -> JPEG bytes of a ``size`` px square."""
    arr = (img.clamp(0, 1).permute(1, 2, 0).cpu().numpy() * 255).round().astype(np.uint8)
    return jpeg_bytes(arr, size, quality=82)


def _write_bytes(path: Path, data: bytes) -> None:
    with atomic_path(path) as tmp:
        tmp.write_bytes(data)


def confusions(ds: xr.Dataset, class_id: int, labels: list[str], threshold: float = 0.5,
               k: int = 3) -> dict[str, Any]:
    """What the model predicts at the map's non-robust poses (score < ``threshold``): per
    predicted class, the share of those poses, most frequent first (the true class itself
    appears when it wins with low confidence), and one example pose of each of the top ``k``
    other classes (the failing cell of that class nearest to their centre of mass)."""
    score = np.asarray(ds["score"].values, dtype=np.float64)
    top1 = np.asarray(ds["top1"].values)
    fail = score < threshold
    n_fail = int(fail.sum())
    out: dict[str, Any] = {"threshold": float(threshold), "poses": int(score.size),
                           "failing": n_fail, "classes": []}
    if not n_fail:
        return out
    ids, counts = np.unique(top1[fail], return_counts=True)
    order = np.argsort(-counts, kind="stable")
    dims = list(ds["score"].dims)
    examples = 0
    for j in order:
        cid = int(ids[j])
        entry: dict[str, Any] = {"class_id": cid, "class_name": labels[cid] if 0 <= cid <
                                 len(labels) else str(cid), "share": float(counts[j] / n_fail),
                                 "n": int(counts[j]), "true_class": cid == int(class_id)}
        if cid != int(class_id) and examples < k:
            cells = np.argwhere(fail & (top1 == cid))
            centre = cells.mean(axis=0)
            pick = cells[np.argmin(((cells - centre) ** 2).sum(axis=1))]
            entry["pose"] = {d: float(ds[d].values[int(i)]) for d, i in zip(dims, pick,
                                                                               strict=True)}
            entry["example"] = examples
            examples += 1
        out["classes"].append(entry)
        if len(out["classes"]) >= 8:
            break
    return out


def compute_views(ds: xr.Dataset, classifier: Any, mesh: Any, class_id: int,
                  fixed: Mapping[str, float], renderer: Any, folder: str | Path,
                  spec: ViewSpec = ViewSpec(), threshold: float = 0.5,
                  batch_size: int = 32) -> Path | None:
    """Render and classify the stored poses of map ``ds`` and the confusion examples into
    ``folder``; returns ``views.json`` (None for a map without a clickable grid)."""
    axes = view_axes(ds, spec.stride)
    if axes is None:
        return None
    folder = Path(folder)
    names = [n for n, _ in axes]
    grid = np.stack(np.meshgrid(*[v for _, v in axes], indexing="ij"), -1).reshape(-1, len(axes))
    labels = list(classifier.labels)
    top_idx = np.zeros((len(grid), spec.top), np.int64)
    top_p = np.zeros((len(grid), spec.top))
    k = min(spec.top, len(labels))
    for s in range(0, len(grid), batch_size):
        pts = grid[s:s + batch_size]
        imgs = renderer.render(mesh, {n: pts[:, j] for j, n in enumerate(names)}, fixed=fixed)
        p = classifier.probs(imgs)
        v, i = p.topk(k, dim=1)
        top_idx[s:s + len(pts), :k], top_p[s:s + len(pts), :k] = i.cpu().numpy(), \
            v.float().cpu().numpy()
        for b in range(len(pts)):
            _write_bytes(folder / "thumbs" / f"{s + b}.jpg", _jpeg(imgs[b], spec.size))
    conf = confusions(ds, class_id, labels, threshold, spec.confusions)
    ex = [c for c in conf["classes"] if "pose" in c]
    if ex:
        pts = np.array([[c["pose"][n] for n in names] for c in ex])
        imgs = renderer.render(mesh, {n: pts[:, j] for j, n in enumerate(names)}, fixed=fixed)
        p = classifier.probs(imgs)
        for c, img, prob in zip(ex, imgs, p, strict=True):
            c["example_prob"] = float(prob[c["class_id"]])
            c["example_true_prob"] = float(prob[int(class_id)])
            _write_bytes(folder / "examples" / f"{c['example']}.jpg",
                         _jpeg(img, spec.example_size))
    doc = {
        "format": VIEWS_FORMAT, "spec": asdict(spec), "class_id": int(class_id),
        "class_name": labels[int(class_id)], "params": names, "labels": labels,
        "coords": {n: v.tolist() for n, v in axes},
        "top5": [[[labels[int(i)], round(float(q), 4)] for i, q in zip(ii[:k], pp[:k],
                                                                        strict=True)]
                 for ii, pp in zip(top_idx, top_p, strict=True)],
        "confusions": conf,
    }
    path = folder / "views.json"
    write_text_atomic(path, json.dumps(doc, separators=(",", ":")))
    return path


def load_views(folder: str | Path) -> dict[str, Any] | None:
    """``views.json`` of ``folder`` (None when absent or unreadable)."""
    p = Path(folder) / "views.json"
    try:
        doc = json.loads(p.read_text())
    except (OSError, ValueError):
        return None
    return doc if isinstance(doc, dict) and doc.get("format") == VIEWS_FORMAT else None
