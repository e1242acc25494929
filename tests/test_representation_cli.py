"""`robustlens score` / `robustlens attack` end to end, and resuming a killed run."""

from __future__ import annotations

import numpy as np
import pandas as pd
import pytest
from PIL import Image

from robustlens.cli import main
from robustlens.models import load_model
from robustlens.representation.datasets import load_dataset
from robustlens.representation.planted import CUED_CLASS, make_planted_dataset
from robustlens.representation.scores import ClassRobustness


@pytest.fixture(scope="module")
def small_set(tmp_path_factory: pytest.TempPathFactory):
    return make_planted_dataset(tmp_path_factory.mktemp("small"), n_per_class=4, seed=2)


def _run(args: list[str]) -> None:
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 0


def test_score_cli_writes_tables_and_figures(small_set, tmp_path) -> None:
    out = tmp_path / "out"
    _run(["-q", "score", "--data", str(small_set), "--model", "planted_cue", "--cam", "gradcam",
          "--batch-size", "8", "--n-boot", "200", "--out", str(out)])
    cs = pd.read_csv(out / "class_scores.csv")
    im = pd.read_csv(out / "image_scores.csv")
    for col in ["class_id", "class_name", "n_images", "top1", "top5", "crs", "crs_low",
                "crs_high", "lift"]:
        assert col in cs.columns
    for col in ["image", "class_id", "rs", "box_fraction", "lift", "pred"]:
        assert col in im.columns
    assert len(im) == 20 and sorted(cs["class_id"]) == [0, 1, 2, 3, 4]
    assert (cs["n_images"] == 4).all()
    assert cs.iloc[0]["class_id"] == CUED_CLASS  # least robust first
    assert ((cs["crs_low"] <= cs["crs"]) & (cs["crs"] <= cs["crs_high"])).all()
    for png in ["class_ranking.png", "cam_overlays.png"]:
        with Image.open(out / png) as img:
            assert img.size[0] > 200 and img.size[1] > 100
    assert not (out / ".partial").exists()


def test_attack_cli_writes_rates_and_examples(small_set, tmp_path) -> None:
    out = tmp_path / "att"
    _run(["-q", "attack", "--data", str(small_set), "--model", "planted_cue", "--classes",
          "ball,0", "--max-targets", "12", "--out", str(out)])
    df = pd.read_csv(out / "attacks.csv")
    assert list(df.columns) == ["class_id", "class_name", "attack", "variant", "n", "rate"]
    assert set(df["class_id"]) == {0, CUED_CLASS}
    assert set(df["attack"]) == {"clean", "removal", "context_only", "transplant"}
    assert df["rate"].between(0, 1).all()
    ball_inpaint = df[(df["class_id"] == CUED_CLASS) & (df["variant"] == "inpaint")]["rate"].item()
    square_inpaint = df[(df["class_id"] == 0) & (df["variant"] == "inpaint")]["rate"].item()
    assert ball_inpaint > square_inpaint
    ex = sorted(p.name for p in (out / "examples").glob("*.png"))
    assert ex == ["0_square.png", "4_ball.png"]


class _Killed(Exception):
    pass


def test_killed_run_resumes_where_it_stopped(small_set, tmp_path) -> None:
    clf = load_model("planted_cue")
    ds = load_dataset(small_set, clf.labels)
    out = tmp_path / "resume"
    est = ClassRobustness(cam="gradcam", batch_size=4, n_boot=100)
    seen = []

    def die_after_two(n: int) -> None:
        seen.append(n)
        if len(seen) == 2:
            raise _Killed

    with pytest.raises(_Killed):
        est.run(clf, ds, out_dir=out, progress=die_after_two)
    part = est.partial_path(out, clf, ds)
    assert part.is_file() and not (out / "image_scores.csv").exists()
    assert len(part.read_text().splitlines()) == 1 + 8
    with open(part, "a") as f:
        f.write("images/00019_ball.png,4,ball,0.01")  # a row cut short by the kill

    # another CAM method does not reuse these rows
    totals: list[tuple[int, int]] = []
    other = ClassRobustness(cam="gradcam++", batch_size=4, n_boot=100)
    assert other.partial_path(out, clf, ds) != part

    est2 = ClassRobustness(cam="gradcam", batch_size=4, n_boot=100)
    processed: list[int] = []
    est2.run(clf, ds, out_dir=out, progress=processed.append,
             on_total=lambda t, d: totals.append((t, d)))
    assert totals == [(20, 8)] and sum(processed) == 12
    assert not part.exists()
    fresh = ClassRobustness(cam="gradcam", batch_size=4, n_boot=100).run(clf, ds)
    got = pd.read_csv(out / "image_scores.csv")
    assert list(got["image"]) == list(fresh.image_scores_["image"])
    np.testing.assert_allclose(got["rs"], fresh.image_scores_["rs"], rtol=1e-5, atol=1e-7)
    pd.testing.assert_frame_equal(est2.class_scores_, fresh.class_scores_)
