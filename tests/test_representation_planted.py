"""Known answers for the class robustness score: the planted-cue set and a hand-built model."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

from robustlens.models import Classifier, list_builtins, load_model
from robustlens.representation.attacks import run_attacks
from robustlens.representation.cam import CAM_METHODS, compute_cams
from robustlens.representation.datasets import BoxItem, load_dataset
from robustlens.representation.planted import (
    CUE_COLORS,
    CUED_CLASS,
    PLANTED_LABELS,
    WEIGHTS_DIR,
    make_planted_dataset,
    planted_arrays,
)
from robustlens.representation.scores import ClassRobustness

CLEAN = [c for c in range(5) if c != CUED_CLASS]


@pytest.fixture(scope="module")
def planted(tmp_path_factory: pytest.TempPathFactory):
    root = tmp_path_factory.mktemp("planted")
    csv_path = make_planted_dataset(root, n_per_class=12, seed=1)
    clf = load_model("planted_cue")
    return clf, load_dataset(csv_path, clf.labels)


# ------------------------------------------------------------------- generator + model
def test_generator_is_deterministic_and_cue_only_in_cued_class() -> None:
    a, la, ba = planted_arrays(6, seed=3)
    b, lb, bb = planted_arrays(6, seed=3)
    c, _, _ = planted_arrays(6, seed=4)
    assert np.array_equal(a, b) and np.array_equal(la, lb) and np.array_equal(ba, bb)
    assert not np.array_equal(a, c)
    has_cue = np.array([(np.all(img == CUE_COLORS[0], axis=-1).sum() >= 30) and
                        (np.all(img == CUE_COLORS[1], axis=-1).sum() >= 30) for img in a])
    assert np.array_equal(has_cue, la == CUED_CLASS)


def test_builtin_planted_cue_registered_and_small() -> None:
    assert "planted_cue" in list_builtins()
    clf = load_model("builtin:planted_cue")
    assert clf.labels == PLANTED_LABELS and clf.target_layer == "block3"
    assert clf.input_size == 64 and clf.resize_size == 64
    assert (WEIGHTS_DIR / "model.pt").stat().st_size < 1_000_000


@pytest.mark.parametrize("method", CAM_METHODS)
def test_cued_class_is_least_robust_for_every_cam(planted, method: str) -> None:
    clf, ds = planted
    if method == "scorecam":  # one forward per channel: fewer images
        ds = [it for it in ds if int(it.name[7:12]) < 25]
    cr = ClassRobustness(cam=method, batch_size=32, n_boot=300, scorecam_batch=48).run(clf, ds)
    cs = cr.class_scores_.set_index("class_id")
    assert cs["top1"].min() >= 0.9  # the model does recognise every class
    cued = cs.loc[CUED_CLASS]
    assert cs["crs"].idxmin() == CUED_CLASS
    assert cued["lift"] < 1.0
    assert cued["crs"] < 0.1
    for c in CLEAN:
        assert cs.loc[c, "crs"] > 3 * cued["crs"] and cs.loc[c, "crs"] > 0.25
        assert cs.loc[c, "lift"] > 2.0
        assert cs.loc[c, "crs_low"] > cued["crs_high"]
    assert cued["density_diff"] < 0 < cs.loc[CLEAN, "density_diff"].min()


def test_cued_class_survives_object_removal(planted) -> None:
    clf, ds = planted
    df = run_attacks(clf, ds, list(range(5)), max_targets=30)
    rem = df[df["attack"] == "removal"].pivot(index="class_id", columns="variant", values="rate")
    assert set(rem.columns) == {"mean", "blur", "inpaint"}
    assert rem.loc[CUED_CLASS].min() >= 0.9
    assert rem.loc[CLEAN, ["mean", "inpaint"]].to_numpy().max() <= 0.25
    assert rem.loc[CLEAN].to_numpy().mean() <= 0.25
    ctx = df[(df["attack"] == "context_only")].set_index("class_id")["rate"]
    assert ctx[CUED_CLASS] >= 0.9 and ctx[CLEAN].mean() < 0.5
    clean = df[df["attack"] == "clean"].set_index("class_id")["rate"]
    assert clean.min() >= 0.9
    tr = df[df["attack"] == "transplant"].pivot(index="class_id", columns="variant", values="rate")
    assert tr.loc[CUED_CLASS, "q=0.2"] > tr.loc[CUED_CLASS, "baseline"]


# ------------------------------------------------------------------- exact answer
class _ChannelMean(nn.Module):
    """logit_c = spatial mean of input channel c (through an identity 1x1 conv, the CAM
    layer): the CAM of class c is exactly channel c, min-max normalised."""

    def __init__(self) -> None:
        super().__init__()
        self.conv = nn.Conv2d(3, 3, 1, bias=False)
        with torch.no_grad():
            self.conv.weight.copy_(torch.eye(3).view(3, 3, 1, 1))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.conv(x).mean(dim=(2, 3))


def _exact_classifier() -> Classifier:
    return Classifier(module=_ChannelMean().eval(), spec="test:exact", input_size=32,
                      resize_size=32, mean=(0.0, 0.0, 0.0), std=(1.0, 1.0, 1.0),
                      labels=["red", "green", "blue"], target_layer="conv")


def _exact_items() -> list[BoxItem]:
    a = np.zeros((32, 32, 3), np.float32)
    a[4:12, 4:12, 0] = 1.0     # 64 px of 1.0
    a[20:28, 16:32, 0] = 0.5   # 128 px of 0.5 -> total mass 128
    b = np.zeros((32, 32, 3), np.float32)
    b[:, 16:, 0] = 1.0         # red dominates the prediction...
    b[4:12, 4:12, 1] = 1.0     # ...but the true class is green: 64 px of 1.0
    b[20:28, 0:8, 1] = 0.5     # 64 px of 0.5 -> total green mass 96
    return [
        BoxItem(a, 0, np.array([[4, 4, 12, 12]]), "a_box_on_bright"),      # RS = 64/128
        BoxItem(a, 0, np.array([[4, 4, 8, 12], [16, 20, 24, 28]]), "a_two_boxes"),
        # RS = (32 + 64*0.5)/128 = 0.5 ; box fraction = 96/1024
        BoxItem(a, 0, np.array([[4, 4, 8, 12]]), "a_half_box"),           # RS = 32/128
        BoxItem(b, 1, np.array([[4, 4, 12, 12]]), "b_true_class_green"),  # RS = 64/96
    ]


@pytest.mark.parametrize("method", CAM_METHODS)
def test_exact_model_cam_and_rs(method: str) -> None:
    clf = _exact_classifier()
    items = _exact_items()
    if method == "scorecam":  # Score-CAM mixes in other channels: exact only for image a
        items = items[:3]
    x = torch.from_numpy(np.stack([it.image for it in items])).permute(0, 3, 1, 2)
    cams = compute_cams(clf, x, [it.class_id for it in items], method)
    for it, cam in zip(items, cams, strict=True):
        ch = it.image[..., it.class_id]
        np.testing.assert_allclose(cam, ch / ch.max(), atol=1e-5)
    cr = ClassRobustness(cam=method, batch_size=2, n_boot=50).run(clf, items)
    df = cr.image_scores_.set_index("image")
    expect = {"a_box_on_bright": (0.5, 64 / 1024), "a_two_boxes": (0.5, 96 / 1024),
              "a_half_box": (0.25, 32 / 1024), "b_true_class_green": (64 / 96, 64 / 1024)}
    for name in df.index:
        rs, frac = expect[name]
        assert df.loc[name, "rs"] == pytest.approx(rs, abs=1e-5)
        assert df.loc[name, "box_fraction"] == pytest.approx(frac, abs=1e-9)
        assert df.loc[name, "lift"] == pytest.approx(rs / frac, rel=1e-4)
    mean_out = (128 - 64) / (1024 - 64)
    assert df.loc["a_box_on_bright", "density_diff"] == pytest.approx(1.0 - mean_out, abs=1e-5)
    if "b_true_class_green" in df.index:
        assert df.loc["b_true_class_green", "pred"] == 0  # red predicted, green scored
        assert not df.loc["b_true_class_green", "correct"]
        assert df.loc["b_true_class_green", "top5"]
    cs = cr.class_scores_.set_index("class_id")
    assert cs.loc[0, "crs"] == pytest.approx((0.5 + 0.5 + 0.25) / 3, abs=1e-5)
    assert cs.loc[0, "n_images"] == 3 and cs.loc[0, "top1"] == 1.0


def test_correct_only_drops_misclassified_images() -> None:
    clf = _exact_classifier()
    items = _exact_items()
    for flag, n_scored in [(False, 1), (True, 0)]:
        cs = ClassRobustness(cam="gradcam", correct_only=flag, n_boot=10).run(clf, items)
        green = cs.class_scores_.set_index("class_id").loc[1]
        assert green["n_images"] == 1 and green["n_scored"] == n_scored
        assert (np.isnan(green["crs"]) if flag else green["crs"] == pytest.approx(64 / 96))


def test_rankings_sorted_least_robust_first() -> None:
    clf = _exact_classifier()
    cs = ClassRobustness(cam="gradcam", n_boot=10).run(clf, _exact_items()).class_scores_
    assert list(cs["rank"]) == [1, 2]
    assert cs["crs"].is_monotonic_increasing
    assert isinstance(cs, pd.DataFrame)
