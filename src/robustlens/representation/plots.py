"""CAM overlays with boxes (the ranked class chart is `robustlens.figures.class_ranking_figure`).

Uses matplotlib's object API (no pyplot, no global backend); files are written atomically.
"""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
from matplotlib.figure import Figure
from matplotlib.patches import Rectangle

from ..figures import style
from ..io import atomic_path
from ..models.base import Classifier
from .cam import compute_cams
from .cam_methods import cam_name
from .datasets import BoxItem, as_items, prepare_batch


def _save(fig: Figure, path: str | os.PathLike[str], dpi: int = 110) -> Path:
    p = Path(path)
    with atomic_path(p) as tmp:
        fig.savefig(tmp, format="png", dpi=dpi, bbox_inches="tight")
    return p


def plot_cam_overlays(classifier: Classifier, dataset: Any, image_scores: pd.DataFrame,
                      class_ids: Sequence[int], path: str | os.PathLike[str], *,
                      cam: str = "gradcam++", per_class: int = 4,
                      target_layer: str | None = None) -> Path:
    """Grid: one row per class of ``class_ids``, ``per_class`` images each (spread over the
    class's RS range, lowest first), CAM of the true class over the image, boxes in white."""
    with style():  # user labels are text, never mathtext
        return _cam_overlays(classifier, dataset, image_scores, class_ids, path, cam=cam,
                             per_class=per_class, target_layer=target_layer)


def _cam_overlays(classifier: Classifier, dataset: Any, image_scores: pd.DataFrame,
                  class_ids: Sequence[int], path: str | os.PathLike[str], *, cam: str,
                  per_class: int, target_layer: str | None) -> Path:
    items = {(it.name, it.class_id): it for it in as_items(dataset)}
    rows: list[tuple[int, list[tuple[BoxItem, float, str]]]] = []
    for cid in class_ids:
        g = image_scores[image_scores["class_id"] == cid].sort_values("rs")
        if g.empty:
            continue
        pick = np.unique(np.linspace(0, len(g) - 1, min(per_class, len(g))).round().astype(int))
        sel = g.iloc[pick]
        rows.append((cid, [(items[(r.image, cid)], float(r.rs), str(r.pred_name))
                           for r in sel.itertuples() if (r.image, cid) in items]))
    ncol = max([len(r[1]) for r in rows] + [1])
    fig = Figure(figsize=(2.2 * ncol, 2.35 * max(len(rows), 1)))
    for ri, (cid, entries) in enumerate(rows):
        its = [e[0] for e in entries]
        images, _, boxes = prepare_batch(its, classifier)
        maps = compute_cams(classifier, images, [cid] * len(its), cam, target_layer=target_layer)
        for ci, ((_it, rs, pred), img, m, bx) in enumerate(zip(entries, images, maps, boxes,
                                                              strict=True)):
            ax = fig.add_subplot(len(rows), ncol, ri * ncol + ci + 1)
            ax.imshow(img.permute(1, 2, 0).numpy())
            ax.imshow(m, cmap="jet", alpha=0.45, vmin=0, vmax=1)
            for x0, y0, x1, y1 in bx:
                if x1 > x0 and y1 > y0:
                    ax.add_patch(Rectangle((x0 - 0.5, y0 - 0.5), x1 - x0, y1 - y0, fill=False,
                                           edgecolor="white", linewidth=1.2))
            ax.set_xticks([])
            ax.set_yticks([])
            name = classifier.labels[cid][:18]
            ax.set_title(f"{name}  RS {rs:.2f}\npred: {pred[:18]}", fontsize=7)
    if not rows:
        ax = fig.add_subplot(1, 1, 1)
        ax.text(0.5, 0.5, "no images", ha="center")
        ax.axis("off")
    fig.suptitle(f"{cam_name(cam)} of the true class; least robust classes first", fontsize=9)
    return _save(fig, path)
