"""Bad input for `score` / `attack` and the library: one clear BadInput line, no partial CSV."""

from __future__ import annotations

import numpy as np
import pytest
import torch
from PIL import Image

from robustlens.cli import main
from robustlens.errors import BadInput
from robustlens.models import Classifier, load_model
from robustlens.representation.attacks import run_attacks
from robustlens.representation.cam import compute_cams
from robustlens.representation.datasets import BoxItem, load_dataset, prepare_batch
from robustlens.representation.planted import make_planted_dataset
from robustlens.representation.scores import ClassRobustness

LABELS = ["square", "disc", "triangle", "cross", "ball", "empty"]


def _png(path, w: int = 64, h: int = 64) -> None:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((h, w, 3), 90, np.uint8)).save(path)


def _csv(tmp_path, rows: list[str]):
    p = tmp_path / "boxes.csv"
    p.write_text("image,label,xmin,ymin,xmax,ymax\n" + "".join(r + "\n" for r in rows))
    return p


def _cli(capsys, args: list[str]) -> str:
    with pytest.raises(SystemExit) as exc:
        main(args)
    assert exc.value.code == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and err[0].startswith("error: "), err
    return err[0]


@pytest.fixture()
def good_csv(tmp_path):
    _png(tmp_path / "a.png")
    _png(tmp_path / "b.png")
    return tmp_path


def test_unreadable_image_names_the_file(good_csv, capsys) -> None:
    (good_csv / "broken.png").write_bytes(b"this is not a png")
    p = _csv(good_csv, ["a.png,disc,1,1,10,10", "broken.png,disc,1,1,10,10"])
    with pytest.raises(BadInput, match=r"boxes.csv line 3: cannot read image .*broken.png"):
        load_dataset(p, LABELS)
    out = good_csv / "out"
    msg = _cli(capsys, ["score", "--data", str(p), "--model", "planted_cue", "--out", str(out)])
    assert "broken.png" in msg
    assert not (out / "class_scores.csv").exists() and not (out / "image_scores.csv").exists()


def test_missing_image_names_the_file(good_csv) -> None:
    p = _csv(good_csv, ["nothere.png,disc,1,1,10,10"])
    with pytest.raises(BadInput, match=r"line 2: image .*nothere.png not found"):
        load_dataset(p, LABELS)


def test_in_memory_unreadable_image_path_is_named(tmp_path) -> None:
    (tmp_path / "bad.jpg").write_bytes(b"\xff\xd8junk")
    clf = load_model("planted_cue")
    with pytest.raises(BadInput, match="bad.jpg"):
        prepare_batch([BoxItem(tmp_path / "bad.jpg", 0, np.array([[1, 1, 5, 5]]))], clf)


@pytest.mark.parametrize("row,pattern", [
    ("b.png,disc,1,1,70,10", r"boxes.csv line 3 \(b.png\): box .* outside the 64x64 image"),
    ("b.png,disc,-3,1,10,10", r"boxes.csv line 3 \(b.png\): box .* outside"),
    ("b.png,disc,20,1,10,10", r"boxes.csv line 3 \(b.png\): xmin 20 >= xmax 10"),
    ("b.png,disc,5,8,10,8", r"boxes.csv line 3 \(b.png\): ymin 8 >= ymax 8"),
    ("b.png,disc,1,one,10,10", r"boxes.csv line 3: xmin,ymin,xmax,ymax must be numbers"),
    ("b.png,giraffe,1,1,10,10", r"boxes.csv line 3: unknown label 'giraffe'"),
    ("b.png,17,1,1,10,10", r"boxes.csv line 3: class id 17 out of range"),
])
def test_bad_rows_name_file_and_row(good_csv, row: str, pattern: str) -> None:
    p = _csv(good_csv, ["a.png,disc,1,1,10,10", row])
    with pytest.raises(BadInput, match=pattern):
        load_dataset(p, LABELS)


def test_unknown_label_can_be_skipped(good_csv) -> None:
    p = _csv(good_csv, ["a.png,disc,1,1,10,10", "b.png,giraffe,1,1,10,10"])
    assert len(load_dataset(p, LABELS, skip_unknown=True)) == 1


def test_bad_row_via_cli_one_line_no_csv(good_csv, capsys) -> None:
    p = _csv(good_csv, ["a.png,disc,1,1,10,10", "b.png,disc,30,1,10,10"])
    out = good_csv / "out"
    msg = _cli(capsys, ["score", "--data", str(p), "--model", "planted_cue", "--out", str(out)])
    assert "line 3" in msg and "xmin 30 >= xmax 10" in msg
    assert not (out / "class_scores.csv").exists()


def test_missing_header_columns(good_csv) -> None:
    p = good_csv / "boxes.csv"
    p.write_text("image,label,x,y\na.png,disc,1,1\n")
    with pytest.raises(BadInput, match=r"missing column\(s\) xmin, ymin, xmax, ymax"):
        load_dataset(p, LABELS)


def test_empty_dataset(good_csv, capsys) -> None:
    p = _csv(good_csv, [])
    with pytest.raises(BadInput, match="empty dataset"):
        load_dataset(p, LABELS)
    with pytest.raises(BadInput, match="empty dataset"):
        ClassRobustness().run(load_model("planted_cue"), [])
    out = good_csv / "out"
    assert "empty dataset" in _cli(capsys, ["score", "--data", str(p), "--model", "planted_cue",
                                            "--out", str(out)])
    assert not out.exists() or not any(out.glob("*.csv"))


def test_empty_class(tmp_path, capsys) -> None:
    csv_path = make_planted_dataset(tmp_path / "d", n_per_class=1, seed=5)
    clf = load_model("planted_cue")
    ds = load_dataset(csv_path, clf.labels)
    with pytest.raises(BadInput, match=r"class 5 \('empty'\): no images"):
        ClassRobustness(cam="gradcam").run(clf, ds, classes=[5])
    # library errors carry the parameter name; the CLI turns it into the flag (below)
    with pytest.raises(BadInput, match=r"^classes 5 \('empty'\): no images") as exc:
        run_attacks(clf, ds, [5])
    assert exc.value.param == "classes"
    msg = _cli(capsys, ["attack", "--data", str(csv_path), "--model", "planted_cue", "--classes",
                        "empty", "--out", str(tmp_path / "o")])
    assert "empty class" in msg
    assert not (tmp_path / "o" / "attacks.csv").exists()
    msg = _cli(capsys, ["attack", "--data", str(csv_path), "--model", "planted_cue", "--classes",
                        "zebra", "--out", str(tmp_path / "o")])
    assert "--classes 'zebra'" in msg


def test_layer_not_in_model(tmp_path, capsys) -> None:
    clf = load_model("planted_cue")
    x = torch.rand(1, 3, 64, 64)
    with pytest.raises(BadInput, match=r"^target_layer 'block9': no module 'block9'"):
        compute_cams(clf, x, [0], target_layer="block9")
    with pytest.raises(BadInput, match="block9"):
        ClassRobustness(target_layer="block9").run(clf, [BoxItem(np.zeros((64, 64, 3), np.uint8),
                                                                  0, np.array([[1, 1, 9, 9]]))])
    csv_path = make_planted_dataset(tmp_path / "d", n_per_class=1, seed=5)
    msg = _cli(capsys, ["score", "--data", str(csv_path), "--model", "planted_cue",
                        "--target-layer", "block3.99", "--out", str(tmp_path / "o")])
    assert "--target-layer 'block3.99'" in msg


def test_unknown_cam_method(tmp_path, capsys) -> None:
    clf = load_model("planted_cue")
    est = ClassRobustness(cam="eigencam")  # stored as given; run() validates (estimator rule)
    assert est.get_params()["cam"] == "eigencam"
    with pytest.raises(BadInput, match=r"^cam 'eigencam': unknown CAM method"):
        est.run(clf, [])
    with pytest.raises(BadInput, match="unknown CAM method"):
        compute_cams(clf, torch.rand(1, 3, 64, 64), [0], "layercam")
    csv_path = make_planted_dataset(tmp_path / "d", n_per_class=1, seed=5)
    msg = _cli(capsys, ["score", "--data", str(csv_path), "--model", "planted_cue", "--cam",
                        "eigencam", "--out", str(tmp_path / "o")])
    assert "--cam" in msg and "eigencam" in msg


def test_missing_data_path(tmp_path, capsys) -> None:
    missing = tmp_path / "nope.csv"
    for cmd in (["score"], ["attack", "--classes", "0"]):
        msg = _cli(capsys, [*cmd, "--data", str(missing), "--model", "planted_cue", "--out",
                            str(tmp_path / "o")])
        assert msg == f"error: --data {missing}: no such file or directory"
    with pytest.raises(BadInput, match="no such file"):
        load_dataset(missing, LABELS)
    assert not (tmp_path / "o").exists()


def test_non_differentiable_model() -> None:
    clf = load_model("planted_cue")
    onnx_like = Classifier(module=clf.module, spec="onnx:model.onnx", input_size=64, resize_size=64,
                           labels=clf.labels, target_layer="block3", differentiable=False)
    with pytest.raises(BadInput, match="not differentiable"):
        compute_cams(onnx_like, torch.rand(1, 3, 64, 64), [0])


def test_bad_batch_size_and_q(tmp_path, capsys) -> None:
    with pytest.raises(BadInput, match="^batch_size 0"):
        ClassRobustness(batch_size=0).run(load_model("planted_cue"), [])
    csv_path = make_planted_dataset(tmp_path / "d", n_per_class=1, seed=5)
    assert "'--q': 1.5 is not in the range 0<x<=1" in _cli(
        capsys, ["attack", "--data", str(csv_path), "--model", "planted_cue", "--classes", "0",
                 "--q", "1.5", "--out", str(tmp_path / "o")])
