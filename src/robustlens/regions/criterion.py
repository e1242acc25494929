"""What "robust" means at one pose: the criterion a region and SRVR are measured under.

* ``score`` (the paper's, the default): the true-class probability is at least the threshold
  (0.5). A less confident network gets smaller regions even where its decision never
  changes, so this mixes robustness with confidence (calibration).
* ``top1``: the true class is the model's top-1 prediction, whatever its probability. The
  search sees ``(1 + margin) / 2`` with the threshold 0.5, where ``margin = p_true -
  max_{c != true} p_c`` (stored in every map): a continuous value that is >= 0.5 exactly
  where the true class wins, so the same search (and its interpolation between map nodes)
  serves both criteria. The ``threshold`` setting does not apply to it.

A map written before margins were stored falls back to the top-1 indicator (1 where
``top1 == class``, else 0) for ``top1``.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from ..errors import BadInput

CRITERIA: tuple[str, ...] = ("score", "top1")
#: one sentence for reports and help texts
CRITERIA_SENTENCE = ("Under the score criterion (the paper's) a pose is robust when the true "
                     "class gets probability >= the threshold; under top-1 when the true class "
                     "is the model's top prediction at any confidence, so a gap between the two "
                     "is about confidence (calibration), not about the decision changing.")
#: the threshold the search uses on the ``top1`` criterion's values
TOP1_THRESHOLD = 0.5


def check_criterion(criterion: object) -> str:
    """``criterion`` if it is one of :data:`CRITERIA`, else BadInput."""
    if criterion not in CRITERIA:
        raise BadInput(f"{criterion!r}: unknown criterion; expected one of "
                       f"{', '.join(CRITERIA)}", param="criterion")
    return str(criterion)


def search_threshold(criterion: str, threshold: float) -> float:
    """The threshold the search applies to :func:`criterion_values` of ``criterion``."""
    return float(threshold) if check_criterion(criterion) == "score" else TOP1_THRESHOLD


def margin_values(margin: np.ndarray) -> np.ndarray:
    """``(1 + margin) / 2``: the ``top1`` criterion's value of a margin (any shape)."""
    return (1.0 + np.asarray(margin, dtype=np.float64)) / 2.0


def criterion_values(ds: Any, criterion: str, class_id: int | None = None) -> Any:
    """The map values a search on ``criterion`` runs on, as a DataArray shaped like
    ``ds["score"]``: the score itself, or ``(1 + margin) / 2`` for ``top1`` (the top-1
    indicator for a map without margins; ``class_id`` defaults to the map's
    ``attrs["class_id"]``)."""
    check_criterion(criterion)
    if "score" not in ds:
        raise BadInput("map: has no 'score' variable")
    if criterion == "score":
        return ds["score"]
    if "margin" in ds:
        da = ds["margin"].copy(data=margin_values(ds["margin"].values))
    elif "top1" in ds:
        cid = class_id if class_id is not None else ds.attrs.get("class_id")
        if cid is None:
            raise BadInput("map: criterion top1 needs the map's class_id attribute")
        da = ds["top1"].copy(data=(ds["top1"].values == int(cid)).astype(np.float64))
    else:
        raise BadInput("map: criterion top1 needs the map's 'margin' or 'top1' variable")
    da.name = "score"
    da.attrs.update(ds["score"].attrs)
    da.attrs["long_name"] = "(1 + margin) / 2: >= 0.5 where the class is the top-1"
    return da


def pooled_calibration(per_map: list[dict[str, float]]) -> dict[str, float | None]:
    """:func:`calibration` of several maps (one model's) pooled, each weighted by its poses;
    a value no map has is None."""
    w = np.array([c["poses"] for c in per_map], dtype=np.float64)
    out: dict[str, float | None] = {"poses": float(w.sum())}
    for k in ("accuracy", "confidence", "mean_score", "score_robust"):
        v = np.array([c[k] for c in per_map], dtype=np.float64)
        ok = np.isfinite(v)
        out[k] = float(np.average(v[ok], weights=w[ok])) if ok.any() else None
    return out


def calibration(ds: Any, class_id: int | None = None) -> dict[str, float]:
    """Over all poses of a map: ``accuracy`` (share where the class is the top-1),
    ``confidence`` (mean top-1 probability; needs margins), ``mean_score`` (mean true-class
    probability) and ``score_robust`` (share with score >= 0.5). A confidence well below
    the accuracy says the model is right but unsure: its SRVR under the score criterion
    understates how often its decision holds."""
    score = np.asarray(ds["score"].values, dtype=np.float64).ravel()
    cid = class_id if class_id is not None else ds.attrs.get("class_id")
    out = {"poses": float(score.size), "mean_score": float(np.nanmean(score)),
           "score_robust": float(np.nanmean(score >= 0.5)),
           "accuracy": float("nan"), "confidence": float("nan")}
    if "top1" in ds and cid is not None:
        out["accuracy"] = float(np.mean(np.asarray(ds["top1"].values).ravel() == int(cid)))
    if "margin" in ds:
        margin = np.asarray(ds["margin"].values, dtype=np.float64).ravel()
        # the top-1 probability: the score where the class wins, else score - margin
        out["confidence"] = float(np.nanmean(np.maximum(score, score - margin)))
    return out
