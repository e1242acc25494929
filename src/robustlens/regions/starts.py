"""Start points that mean something: poses where the model is right, spread over the map.

The paper's four fixed start points are often poses the model does not recognise at all
(42-85% of the authors' runs never grew), so their regions measure recognition, not
robustness. ``auto_starts`` picks ``k`` poses whose top-1 prediction is the true class and
whose score reaches the region threshold (a correct top-1 at probability 0.3 is no robust
start: its region is empty by definition), by farthest-point sampling on the map's grid: the
first is the best-scoring such cell, each next one the such cell farthest (in
domain-normalised units, azimuth wrapping around) from those already picked.
"""

from __future__ import annotations

from collections.abc import Sequence

import numpy as np

from ..errors import BadInput

#: how :func:`auto_starts` chooses, recorded in provenance.
AUTO_STARTS_RULE = ("farthest-point sampling among map cells whose top-1 class is the true "
                    "class and whose score is at least the region threshold (first: the "
                    "best-scoring such cell; distances in units of the domain width per "
                    "parameter, periodic parameters wrap)")


def auto_starts(
    score: np.ndarray,
    top1: np.ndarray,
    coords: Sequence[np.ndarray],
    class_id: int,
    k: int,
    periodic: Sequence[bool] | None = None,
    widths: Sequence[float] | None = None,
    threshold: float = 0.0,
) -> np.ndarray:
    """``k`` start points ``(m, n)`` (``m <= k``: fewer when fewer cells are correct).

    Args:
        score: the map's true-class scores, shape ``(G1, ..., Gn)``.
        top1: the map's predicted class ids, same shape.
        coords: the grid values of each of the ``n`` dims.
        class_id: the true class.
        k: how many starts to pick.
        periodic: which dims wrap around (e.g. azimuth).
        widths: the domain width per dim, for the distance (default: the coords' span).
        threshold: only cells scoring at least this are candidates (the region threshold).
    """
    score = np.asarray(score, dtype=np.float64)
    top1 = np.asarray(top1)
    n = score.ndim
    if top1.shape != score.shape or len(coords) != n:
        raise BadInput(f"auto starts: map score {score.shape}, top1 {top1.shape} and "
                       f"{len(coords)} coordinate arrays do not agree")
    if k < 0:
        raise BadInput(f"regions.auto_starts {k}: expected a count >= 0")
    per = np.zeros(n, bool) if periodic is None else np.asarray(periodic, bool)
    if widths is None:
        widths = [max(float(np.ptp(c)), 1e-12) for c in coords]
    w = np.asarray(widths, dtype=np.float64)
    idx = np.argwhere((top1 == class_id) & (score >= threshold))  # (M, n) candidate cells
    if k == 0 or len(idx) == 0:
        return np.zeros((0, n))
    pts = np.stack([np.asarray(coords[j], dtype=np.float64)[idx[:, j]] for j in range(n)],
                   axis=1)
    vals = score[tuple(idx.T)]
    chosen = [int(np.argmax(vals))]
    # squared normalised distance of every correct cell to its nearest chosen start
    d2 = _dist2(pts, pts[chosen[0]], per, w)
    while len(chosen) < min(k, len(pts)):
        nxt = int(np.argmax(d2))
        if d2[nxt] <= 0:
            break
        chosen.append(nxt)
        d2 = np.minimum(d2, _dist2(pts, pts[nxt], per, w))
    return pts[chosen]


def _dist2(pts: np.ndarray, p: np.ndarray, per: np.ndarray, w: np.ndarray) -> np.ndarray:
    d = np.abs(pts - p[None, :])
    d = np.where(per[None, :], np.minimum(d, w[None, :] - d), d)
    return ((d / w[None, :]) ** 2).sum(axis=1)
