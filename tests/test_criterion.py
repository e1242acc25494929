"""Robustness told apart from confidence: the ``score`` and ``top1`` criteria.

Known answer: a map whose model is always right (top-1 everywhere) but unsure (score 0.4)
has the whole domain robust under ``top1`` and nothing under ``score``; a map whose true
class loses on a known band has exactly that band excluded under ``top1``.
"""

from __future__ import annotations

import numpy as np
import pytest
import xarray as xr

from robustlens.errors import BadInput
from robustlens.regions.criterion import (
    calibration,
    check_criterion,
    criterion_values,
    search_threshold,
)
from robustlens.regions.ground_truth import ground_truth_box, map_score_fn
from robustlens.regions.scene import map_for_params, regions_for_score
from robustlens.regions.srvr import srvr_table

AZ = np.arange(0.0, 360.0, 6.0)
EL = np.arange(-10.0, 91.0, 5.0)


def _map(score: np.ndarray, top1: np.ndarray, margin: np.ndarray | None) -> xr.Dataset:
    dims = ("azimuth", "elevation")
    data = {"score": (dims, score.astype(np.float32)), "top1": (dims, top1.astype(np.int32))}
    if margin is not None:
        data["margin"] = (dims, margin.astype(np.float32))
    ds = xr.Dataset(data, coords={"azimuth": AZ, "elevation": EL})
    ds["azimuth"].attrs["periodic"] = 1
    ds.attrs["class_id"] = 7
    return ds


def _unsure_but_right() -> xr.Dataset:
    """Score 0.4 everywhere; the true class (7) is top-1 everywhere except azimuth in
    [120, 180], where class 3 wins with 0.5 (margin -0.1); elsewhere the runner-up has 0.3."""
    shape = (len(AZ), len(EL))
    score = np.full(shape, 0.4)
    lose = (AZ >= 120) & (AZ <= 180)
    top1 = np.where(lose[:, None], 3, 7) * np.ones(shape, int)
    margin = np.where(lose[:, None], -0.1, 0.1) * np.ones(shape)
    return _map(score, top1, margin)


def test_known_boxes_under_both_criteria():
    ds = _unsure_but_right()
    per = [0]
    score_da = map_for_params(criterion_values(ds, "score"), ["azimuth", "elevation"])
    top1_da = map_for_params(criterion_values(ds, "top1"), ["azimuth", "elevation"])
    x0 = np.array([30.0, 40.0])
    lo, hi = ground_truth_box(score_da, x0, search_threshold("score", 0.5), per)
    assert np.array_equal(lo, hi)  # nothing scores 0.5: the box is the start point
    lo, hi = ground_truth_box(top1_da, x0, search_threshold("top1", 0.9), per)
    # the 49 good azimuth cells of 6 degrees, around the circle from 186 to 114 (wrapping),
    # and every elevation
    assert (hi[0] - lo[0]) == pytest.approx(49 * 6.0)
    assert lo[0] % 360 == pytest.approx(183.0) and hi[1] - lo[1] >= 100.0
    res = regions_for_score(map_score_fn(top1_da, np.array([True, False])), [x0],
                            (np.array([0.0, -10.0]), np.array([360.0, 90.0])), "oir_b",
                            periodic=[True, False], threshold=0.5)[0]
    width = res.upper[0] - res.lower[0]
    assert 270 < width < 300 and res.upper[1] - res.lower[1] > 95
    assert not (res.lower[0] % 360 < 150 < res.upper[0] % 360)


def test_top1_falls_back_to_the_indicator_without_margins():
    ds = _unsure_but_right().drop_vars("margin")
    v = criterion_values(ds, "top1").values
    assert set(np.unique(v)) == {0.0, 1.0}
    assert v[AZ == 150][0, 0] == 0.0 and v[AZ == 30][0, 0] == 1.0


def test_calibration_numbers():
    cal = calibration(_unsure_but_right())
    lose = ((AZ >= 120) & (AZ <= 180)).mean()
    assert cal["accuracy"] == pytest.approx(1 - lose)
    # top-1 probability: 0.4 where class 7 wins, 0.5 where class 3 does
    assert cal["confidence"] == pytest.approx(0.4 * (1 - lose) + 0.5 * lose, abs=1e-6)
    assert cal["mean_score"] == pytest.approx(0.4) and cal["score_robust"] == 0.0


def test_srvr_ranks_per_criterion():
    rows = []
    for model, (v_score, v_top1) in {"a": (0.1, 0.2), "b": (0.3, 0.05)}.items():
        for crit, v in (("score", v_score), ("top1", v_top1)):
            rows.append({"model": model, "mesh": "m", "method": "oir_b", "variant": "ours",
                         "starts": "fixed", "criterion": crit, "volume_ratio": v,
                         "grew": True, "evaluations": 10, "calls": 1, "wall_s": 0.1})
    table = srvr_table(rows, n_boot=50)
    best = {r["criterion"]: r["model"] for r in table if r["rank"] == 1}
    assert best == {"score": "b", "top1": "a"}  # the ranking flips: it is about confidence


def test_scene_score_top1_criterion(default_model, renderer):
    from robustlens.regions.scene import SceneScore
    from robustlens.render import load_mesh

    mesh = load_mesh("pkg:pybullet/mug", up="z")
    cid = default_model.class_index("coffee mug")
    pts = np.array([[30.0, 20.0], [200.0, 5.0], [90.0, 60.0]])
    dom = (np.array([0.0, -10.0]), np.array([360.0, 90.0]))
    with SceneScore(default_model, mesh, cid, ["azimuth", "elevation"], dom,
                    renderer=renderer) as s_fn, \
            SceneScore(default_model, mesh, cid, ["azimuth", "elevation"], dom,
                       renderer=renderer, criterion="top1") as t_fn:
        score, top1, margin = s_fn.render_score.outputs(pts)
        np.testing.assert_allclose(s_fn(pts), score, atol=1e-6)
        np.testing.assert_allclose(t_fn(pts), (1 + margin) / 2, atol=1e-6)
    assert np.array_equal(margin >= 0, top1 == cid)


def test_unknown_criterion():
    with pytest.raises(BadInput, match="criterion"):
        check_criterion("accuracy")
