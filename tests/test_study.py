"""The main job: config validation, a tiny end-to-end study, reuse of finished steps."""

from __future__ import annotations

import json

import numpy as np
import pandas as pd
import pytest
import yaml
from conftest import box_iou, run_cli
from PIL import Image

from robustlens.errors import BadInput
from robustlens.render.composite import make_rendered_dataset
from robustlens.study import Study, load_config

TINY = {
    "seed": 1,
    "models": ["default"],
    "semantic": {"meshes": ["demo:mug", "demo:bucket"],
                 "grid": {"azimuth": "0:360:90", "elevation": "-10:90:50"},
                 "curve": {"param": "azimuth", "grid": "0:360:120", "at": {"elevation": 10}},
                 "batch_size": 16},
    "regions": {"starts": [[180, 10]], "auto_starts": 2, "methods": ["oir_b"],
                "max_evals": 40},
    "representation": {"demo_images_per_object": 2, "attack_classes": 1, "batch_size": 4},
    "turntable": False,
    "report": False,
}


def write_cfg(path, cfg):
    path.write_text(yaml.safe_dump(cfg))
    return path


@pytest.mark.parametrize("patch,match", [
    ({"modles": ["default"]}, "field modles: Extra inputs are not permitted"),
    ({"semantic": {"grid": {"azimuth": "0:360:0"}}}, "step must be > 0"),
    ({"semantic": {"meshes": ["/no/such.obj"]}}, "file not found"),
    ({"semantic": {"meshes": [{"mesh": "demo:mug", "class": "flux capacitor"}]}},
     "unknown class name"),
    ({"regions": {"methods": ["gradient_ascent"]}}, "field regions.methods.0"),
    ({"regions": {"starts": [[500, 10]]}}, "regions.starts"),
    ({"regions": {"threshold": 1.5}}, "field regions.threshold"),
    ({"regions": {"grad": "mitsuba", "score": "map"}}, "'mitsuba' needs regions.score: render"),
    ({"models": ["nope:x"]}, "unknown model kind"),
    ({"representation": {"datasets": ["/no/such/data"]}}, "not found"),
])
def test_config_errors(tmp_path, patch, match):
    cfg = json.loads(json.dumps(TINY))
    for k, v in patch.items():
        if isinstance(v, dict) and isinstance(cfg.get(k), dict):
            cfg[k].update(v)
        else:
            cfg[k] = v
    with pytest.raises(BadInput, match=match):
        Study(load_config(write_cfg(tmp_path / "c.yaml", cfg)), out=tmp_path / "o").run()
    assert not (tmp_path / "o" / "provenance.json").exists()


def test_config_file_errors(tmp_path):
    with pytest.raises(BadInput, match="file not found"):
        load_config(tmp_path / "none.yaml")
    (tmp_path / "bad.yaml").write_text("models: [default\n")
    with pytest.raises(BadInput, match="not valid YAML"):
        load_config(tmp_path / "bad.yaml")
    assert load_config(None).models  # the embedded default parses


def test_rendered_dataset_boxes_are_exact(tmp_path):
    csv = make_rendered_dataset(tmp_path, ["demo:mug"], n_per_object=3, size=128, seed=2)
    df = pd.read_csv(csv)
    assert len(df) == 3 and set(df["label"]) == {"coffee mug"}
    for r in df.itertuples():
        img = np.asarray(Image.open(tmp_path / r.image)).astype(float)
        assert img.shape == (128, 128, 3)
        assert 0 <= r.xmin < r.xmax <= 128 and 0 <= r.ymin < r.ymax <= 128
    again = make_rendered_dataset(tmp_path / "b", ["demo:mug"], n_per_object=3, size=128, seed=2)
    pd.testing.assert_frame_equal(df, pd.read_csv(again))


@pytest.mark.slow
def test_tiny_study_end_to_end_and_reuse(tmp_path, capsys):
    cfg = write_cfg(tmp_path / "study.yaml", TINY)
    out = tmp_path / "out"
    code, _, err = run_cli(["-q", "run", str(cfg), "--out", str(out)], capsys)
    assert code == 0, err
    for mesh in ("demo_mug", "demo_bucket"):
        assert (out / "maps" / "builtin_efficientnet_lite0" / mesh / "map.nc").is_file()
        assert (out / "curves" / "builtin_efficientnet_lite0" / mesh / "map.nc").is_file()
        reg = json.loads((out / "regions" / "builtin_efficientnet_lite0" / mesh / "oir_b" /
                          "regions.json").read_text())
        assert len(reg["regions"]) == 1 and "iou" in reg["regions"][0]
    prov = json.loads((out / "provenance.json").read_text())
    auto = prov["regions_starts"]["auto"]
    assert set(auto) == {"builtin:efficientnet_lite0 demo:mug",
                         "builtin:efficientnet_lite0 demo:bucket"}
    n_auto = sum(bool(v) for v in auto.values())
    for key, pts in auto.items():
        mesh = key.split()[1].replace(":", "_")
        folder = out / "regions" / "builtin_efficientnet_lite0" / mesh / "oir_b_auto"
        assert (folder / "regions.json").is_file() == bool(pts)
        if pts:
            reg = json.loads((folder / "regions.json").read_text())
            assert reg["starts"] == "auto" and len(reg["regions"]) == len(pts) <= 2
            assert [r["start"] for r in reg["regions"]] == pts
    srvr = pd.read_csv(out / "srvr" / "srvr.csv")
    assert set(srvr["model"]) == {"builtin:efficientnet_lite0"}
    assert list(srvr["starts"]) == ["fixed"] + ["auto"] * (n_auto > 0)
    # the CAM overlays show images: one row of pictures per class, not "no images"
    overlay = Image.open(out / "representation" / "builtin_efficientnet_lite0" / "demo" /
                         "gradcampp" / "cam_overlays.png")
    assert overlay.size[1] > 1.5 * 2.35 * 100
    scores = pd.read_csv(out / "representation" / "builtin_efficientnet_lite0" / "demo" /
                         "gradcampp" / "class_scores.csv")
    assert set(scores["class_name"]) == {"coffee mug", "bucket"}
    assert (out / "attacks" / "builtin_efficientnet_lite0" / "demo" / "attacks.csv").is_file()
    # the renders behind the clickable maps: every 4th cell, top-5 each, confusions
    views = json.loads((out / "views" / "builtin_efficientnet_lite0" / "demo_mug" /
                        "views.json").read_text())
    n_stored = int(np.prod([len(v) for v in views["coords"].values()]))
    assert len(views["top5"]) == n_stored and len(views["top5"][0]) == 5
    assert len(list((out / "views" / "builtin_efficientnet_lite0" / "demo_mug" / "thumbs")
                    .glob("*.jpg"))) == n_stored
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["versions"]["torch"].startswith("2.14.1")
    assert prov["models"]["builtin:efficientnet_lite0"]["weights_sha256"]
    assert prov["timings_s"]["total"] > 0
    # the same config again: every step is reused, nothing recomputed
    study = Study(load_config(cfg), out=out, log=lambda m: None)
    study.run()
    assert len(study.skipped_) == 9 + n_auto + 2 and set(study.timings_) == {"total"}
    # searching the dense maps instead of the renderer recomputes only the region steps
    cfg2 = json.loads(json.dumps(TINY))
    cfg2["regions"]["score"] = "map"
    study = Study(load_config(write_cfg(tmp_path / "s2.yaml", cfg2)), out=out, log=lambda m: None)
    study.run()
    assert sorted(k for k in study.timings_ if k != "total") == sorted(
        ["regions builtin:efficientnet_lite0 demo:bucket oir_b",
         "regions builtin:efficientnet_lite0 demo:mug oir_b"]
        + [f"regions {k} oir_b_auto" for k, v in auto.items() if v])
    reg = json.loads((out / "regions" / "builtin_efficientnet_lite0" / "demo_mug" / "oir_b" /
                      "regions.json").read_text())
    rec = reg["regions"][0]
    assert reg["score_source"] == "map"
    assert rec["iou"] == pytest.approx(box_iou(rec["lower"], rec["upper"],
                                               rec["ground_truth"]["lower"],
                                               rec["ground_truth"]["upper"]), abs=1e-9)


@pytest.mark.parametrize("name", ["quick.yaml", "paper.yaml"])
def test_shipped_example_configs_validate(name):
    from pathlib import Path

    cfg = load_config(Path(__file__).resolve().parent.parent / "configs" / name)
    assert cfg.regions.methods == ["naive", "oir_b", "oir_w"]


def test_step_functions_run_outside_a_study(tmp_path):
    """The step functions need only a plan and an executor: the default StepContext runs
    each step (no reuse bookkeeping), and the files land where the study's would."""
    from robustlens.render import MeshRenderer
    from robustlens.study import load_config
    from robustlens.study.runner import plan_study
    from robustlens.study.steps import StepContext, semantic_steps

    cfg = load_config(write_cfg(tmp_path / "c.yaml", {
        **TINY, "semantic": {**TINY["semantic"], "meshes": ["demo:mug"],
                             "views": {"enabled": False}},
        "regions": {"enabled": False}, "representation": {"enabled": False}}))
    plan = plan_study(cfg, tmp_path / "out", log=lambda m: None)
    clf = plan.models[0]
    renderer = MeshRenderer(image_size=clf.input_size)
    try:
        keys = semantic_steps(plan, None, StepContext(), clf, renderer)
    finally:
        renderer.close()
    lay = plan.layout
    assert list(keys) == [(clf.spec, "demo:mug")]
    assert (lay.map_dir(clf.spec, "demo:mug") / "map.png").is_file()
    assert (lay.curve_dir(clf.spec, "demo:mug") / "map.nc").is_file()
    assert not (lay.map_dir(clf.spec, "demo:mug") / ".done.json").exists()  # no bookkeeping
