"""The one bootstrap: percentile CIs of a mean (CRS per class, SRVR per network and method).

``scipy.stats.bootstrap`` with ``method="percentile"``, vectorised, seeded.  With ``groups``
(one label per value, e.g. the object of each SRVR run) it is a cluster bootstrap: whole
groups are resampled and the statistic is the pooled mean ``sum(values) / count`` of the
resampled groups, so runs that share an object are never split.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
from scipy import stats

#: resampled values held in memory at once (scipy's ``batch`` = this // n)
_BATCH_VALUES = 10_000_000


def _pooled_mean(sums: np.ndarray, counts: np.ndarray, axis: int = -1) -> np.ndarray:
    return np.sum(sums, axis=axis) / np.sum(counts, axis=axis)


def bootstrap_mean_ci(values: np.ndarray, n_boot: int, level: float = 0.95,
                      seed: int | Sequence[int] = 0,
                      groups: Sequence[Any] | np.ndarray | None = None) -> tuple[float, float]:
    """Percentile bootstrap CI ``(low, high)`` of the mean of ``values (n,)``.

    ``n == 1`` (or a single group) gives ``(mean, mean)``; ``seed`` is anything
    ``numpy.random.default_rng`` takes (CRS seeds by ``[seed, class_id]``).
    """
    x = np.asarray(values, np.float64).reshape(-1)
    if groups is None:
        data: tuple[np.ndarray, ...] = (x,)
        statistic: Any = np.mean
    else:
        _, inv = np.unique(np.asarray(groups), return_inverse=True)
        data = (np.bincount(inv, weights=x), np.bincount(inv).astype(np.float64))
        statistic = _pooled_mean
    if len(data[0]) < 2:
        m = float(x.mean())
        return m, m
    res = stats.bootstrap(data, statistic, n_resamples=int(n_boot), paired=groups is not None,
                          vectorized=True, confidence_level=float(level), method="percentile",
                          batch=max(1, _BATCH_VALUES // len(data[0])),
                          rng=np.random.default_rng(seed))
    return float(res.confidence_interval.low), float(res.confidence_interval.high)
