"""Regression tests for issue 10 ("one owner per concept"): the model registry, resources
that release what they own, and the one-owner constants."""

from __future__ import annotations

import ast
import sys
from pathlib import Path
from types import SimpleNamespace

import pytest
from conftest import run_cli

from robustlens.errors import BadInput
from robustlens.models import ModelOverrides, load_model, registry

SRC = Path(__file__).resolve().parent.parent / "src" / "robustlens"
TINY = Path(__file__).resolve().parent / "data" / "tiny_model.py"


def test_python_spec_with_a_non_python_file_is_bad_input(tmp_path, capsys):
    net = tmp_path / "net.txt"
    net.write_text("def f():\n    return None\n")
    with pytest.raises(BadInput, match="not a Python source file"):
        load_model(f"python:{net}:f")
    code, _, err = run_cli(["layers", "--model", f"python:{net}:f"], capsys)
    assert code == 2 and err.count("\n") == 1 and "--model" in err and "net.txt" in err


def test_failed_builtin_import_is_named(monkeypatch):
    """A builtin whose module fails to import must not look like an unknown spec."""
    import importlib

    import robustlens.models

    monkeypatch.delitem(registry._BUILTINS, "planted_cue", raising=False)
    monkeypatch.setitem(sys.modules, "robustlens.models.planted", None)  # import -> ImportError
    monkeypatch.delattr(robustlens.models, "planted")
    monkeypatch.setattr(registry, "_IMPORT_FAILURES", {})
    importlib.reload(robustlens.models)  # the package imports its providers again
    assert "efficientnet_lite0" in registry.list_builtins()  # the other provider still counts
    with pytest.raises(BadInput) as exc:
        load_model("builtin:planted_cue")
    msg = str(exc.value)
    assert "robustlens.models.planted failed (ModuleNotFoundError" in msg
    assert "\n" not in msg


def test_load_model_refuses_overrides_and_keywords_together():
    with pytest.raises(TypeError, match="input_size"):
        load_model(f"python:{TINY}:build", ModelOverrides(), input_size=32)
    # each alone still works
    assert load_model(f"python:{TINY}:build", input_size=32).input_size == 32
    assert load_model(f"python:{TINY}:build", ModelOverrides(input_size=48)).input_size == 48


def test_registry_never_imports_upward():
    """models/ is the bottom layer: no module in it imports representation/semantic/...;
    builtins push themselves into the registry from inside models/."""
    upward = {"representation", "semantic", "regions", "study", "report", "cli", "render"}
    for path in sorted((SRC / "models").glob("*.py")):
        tree = ast.parse(path.read_text())
        for node in ast.walk(tree):
            names: list[str] = []
            if isinstance(node, ast.ImportFrom):
                mod = node.module or ""
                names = [mod.split(".")[0] if node.level == 2 else
                         mod.removeprefix("robustlens.").split(".")[0]]
            elif isinstance(node, ast.Import):
                names = [a.name.removeprefix("robustlens.").split(".")[0] for a in node.names
                         if a.name.startswith("robustlens.")]
            assert not upward & set(names), f"{path.name} imports {names}"
    # providers register by import of the package; the registry lists no module names
    assert not hasattr(registry, "BUILTIN_MODULES")
    from robustlens.models import list_builtins

    assert {"efficientnet_lite0", "efficientnet_lite1", "efficientnet_lite2",
            "planted_cue"} <= set(list_builtins())


def test_layers_command_lists_paths_and_shapes(capsys):
    code, out, err = run_cli(["layers", "--model", f"python:{TINY}:build", "--input-size", "16"],
                             capsys)
    assert code == 0, err
    rows = {line[2:].split()[0]: line for line in out.splitlines()[1:]}
    assert list(rows) == ["features", "features.0", "features.1", "pool", "fc"]
    assert rows["features.0"].split()[1] == "Conv2d"
    assert rows["features.0"].endswith("(1, 4, 16, 16)") and rows["fc"].endswith("(1, 3)")
    assert rows["pool"].endswith("(1, 4, 1, 1)")
    # the CAM layer is marked
    assert [line for line in out.splitlines() if line.startswith("*")][0].split()[1] == "features"


def test_render_score_releases_the_renderer_it_owns(monkeypatch):
    from robustlens.semantic import score as score_mod

    closed: list[str] = []

    class FakeRenderer:
        def __init__(self, image_size: int) -> None:
            self.image_size = image_size

        def close(self) -> None:
            closed.append("own")

    monkeypatch.setattr(score_mod, "MeshRenderer", FakeRenderer)
    clf = SimpleNamespace(input_size=8)
    with score_mod.RenderScore(clf, None, 0, ["azimuth"]) as fn:  # type: ignore[arg-type]
        assert fn.renderer.image_size == 8
    assert closed == ["own"]
    fn.close()  # idempotent
    assert closed == ["own"]

    class Given(FakeRenderer):
        def close(self) -> None:
            closed.append("given")

    given = Given(8)
    with score_mod.RenderScore(clf, None, 0, ["azimuth"], renderer=given):  # type: ignore[arg-type]
        pass
    assert closed == ["own"]  # the caller's renderer stays open
    # bad input before any resource is made
    with pytest.raises(BadInput, match="^batch_size 0"):
        score_mod.RenderScore(clf, None, 0, ["azimuth"], batch_size=0)  # type: ignore[arg-type]
    assert closed == ["own"]


@pytest.mark.parametrize("w,h", [(300, 200), (200, 300), (640, 480), (333, 500), (500, 250)])
def test_eval_geometry_boxes_match_torchvision_v2_bounding_boxes(w, h):
    """One owner for pixels and boxes: EvalGeometry.boxes equals torchvision's v2
    Resize + CenterCrop applied to tv_tensors.BoundingBoxes (up to the sub-pixel
    difference between torchvision's per-axis scale and our mean scale)."""
    import numpy as np
    import torch
    from torchvision import tv_tensors
    from torchvision.transforms import v2

    from robustlens.models.geometry import EvalGeometry

    rng = np.random.default_rng(w * h)
    x0 = rng.uniform(0, w / 2, 4)
    y0 = rng.uniform(0, h / 2, 4)
    boxes = np.stack([x0, y0, x0 + rng.uniform(5, w / 2, 4), y0 + rng.uniform(5, h / 2, 4)], 1)
    tv = v2.Compose([v2.Resize(256), v2.CenterCrop(224), v2.ClampBoundingBoxes()])
    img = tv_tensors.Image(torch.zeros(3, h, w))
    bb = tv_tensors.BoundingBoxes(torch.tensor(boxes, dtype=torch.float64), format="XYXY",
                                  canvas_size=(h, w))
    out_img, out_bb = tv(img, bb)
    geo = EvalGeometry(256, 224)
    np.testing.assert_allclose(geo.boxes(boxes, w, h), out_bb.numpy(), atol=0.75)
    assert tuple(geo.images(torch.zeros(3, h, w)).shape) == tuple(out_img.shape) == (3, 224, 224)


def test_one_label_index_for_classifier_and_readers(default_model):
    from robustlens.models.labels import LabelIndex, imagenet_wnids

    idx = LabelIndex(default_model.labels)
    wnid = imagenet_wnids()[504]
    assert idx.resolve("coffee mug", "x") == default_model.class_index("coffee mug") == 504
    assert idx.resolve(wnid, "x") == default_model.class_index(wnid) == 504
    # a synonym repeated inside one label is still unique
    assert LabelIndex(["a, cup, cup", "b"]).resolve("cup", "x") == 0
    assert LabelIndex(["a, cup", "b, cup"]).resolve("cup", "x") is None


def test_one_bootstrap_known_answers():
    """The one bootstrap (scipy, percentile) on cases with exact answers."""
    import numpy as np

    from robustlens.regions.srvr import srvr
    from robustlens.representation.scores import bootstrap_ci
    from robustlens.stats import bootstrap_mean_ci

    # two values 0 and 1: resampled means are 0, 0.5, 1 with p = 1/4, 1/2, 1/4
    assert bootstrap_mean_ci(np.array([0.0, 1.0]), 4000, 0.95, seed=0) == (0.0, 1.0)
    assert bootstrap_mean_ci(np.array([0.0, 1.0]), 4000, 0.4, seed=0) == (0.5, 0.5)
    assert bootstrap_mean_ci(np.full(7, 0.3), 100) == pytest.approx((0.3, 0.3))
    # whole groups are resampled: every object has mean 0.5, so the CI has no width
    x = np.array([0.0, 1.0, 0.0, 1.0])
    assert bootstrap_mean_ci(x, 500, groups=["a", "a", "b", "b"]) == (0.5, 0.5)
    assert bootstrap_mean_ci(x, 4000, groups=["a", "b", "a", "b"]) == (0.0, 1.0)
    s = srvr([0.0, 0.2, 0.0, 0.2], groups=["m", "m", "v", "v"])
    assert (s.low, s.mean, s.high) == pytest.approx((0.1, 0.1, 0.1))
    # CRS skips non-finite scores
    assert bootstrap_ci(np.array([0.0, np.nan, 1.0]), 4000, level=0.4) == (0.5, 0.5)


def test_paper_constants_have_one_owner():
    from robustlens import paper
    from robustlens.models.base import Classifier
    from robustlens.models.geometry import imagenet_resize
    from robustlens.regions.paper import PAPER_DEFAULTS
    from robustlens.regions.srvr import PAPER_DOMAIN, PAPER_STARTS
    from robustlens.render.scene import get_parameter

    assert PAPER_DEFAULTS == {"lr": 0.1, "alpha": 0.05, "beta": 0.0009, "reg": 0.1,
                              "n_iter": 800, "start_halfwidth": 1e-5, "fd_step": 1e-3}
    assert PAPER_STARTS is paper.STARTS and PAPER_DOMAIN is paper.DOMAIN
    assert paper.STARTS == [(130, 30), (50, 20), (200, 15), (310, 50)]
    assert get_parameter("distance").default == paper.DISTANCE == 2.732
    assert Classifier.__dataclass_fields__["input_size"].default == paper.IMAGE_SIZE == 224
    assert [imagenet_resize(s) for s in (64, 224, 240, 260)] == [73, 256, 274, 297]
    # no module but paper.py spells the paper's numbers in code (docstrings may quote them)
    for path in SRC.rglob("*.py"):
        if (path.name == "paper.py" and path.parent == SRC) or path.name == "synthetic.py":
            continue  # synthetic.py: made-up report fixtures, not the protocol
        for node in ast.walk(ast.parse(path.read_text())):
            if isinstance(node, ast.Constant) and isinstance(node.value, float):
                assert node.value not in (0.0009, 2.732), (path, node.lineno)
            if isinstance(node, ast.Tuple) and all(isinstance(e, ast.Constant)
                                                   for e in node.elts):
                assert [e.value for e in node.elts] != [130, 30], (path, node.lineno)  # type: ignore[attr-defined]


def test_errors_carry_parameter_names_and_the_cli_names_the_flag(capsys):
    from robustlens.errors import cli_flag
    from robustlens.representation.scores import ClassRobustness

    e = BadInput("0: expected an integer >= 1", param="batch_size")
    assert str(e) == "batch_size 0: expected an integer >= 1" and e.param == "batch_size"
    assert e.named(cli_flag(e.param)) == "--batch-size 0: expected an integer >= 1"
    assert e.named("representation.batch_size").startswith("representation.batch_size 0:")
    assert str(BadInput(": give one", param="grid")) == "grid: give one"
    assert str(BadInput("whole message")) == "whole message"
    # library code raises with the parameter name, not a CLI flag ...
    est = ClassRobustness(batch_size=0)  # the estimator rule: stored as given ...
    with pytest.raises(BadInput) as exc:
        est.check()  # ... and validated by run() (which calls check())
    assert exc.value.param == "batch_size" and not str(exc.value).startswith("--")
    with pytest.raises(BadInput) as exc2:
        load_model("timm:no_such_net_xyz")
    assert exc2.value.param == "model" and str(exc2.value).startswith("model timm:")
    # ... and the CLI still names the flag in its one line
    code, _, err = run_cli(["layers", "--model", "timm:no_such_net_xyz"], capsys)
    assert code == 2 and err.startswith("error: --model timm:no_such_net_xyz: unknown timm")


def test_semantic_map_accepts_a_mapping_of_values():
    import numpy as np

    from robustlens.semantic import SemanticMap, parse_grids

    from_map = SemanticMap({"azimuth": np.array([0.0, 90.0, 180.0]), "elevation": "0:60:30"})
    from_cli = SemanticMap(parse_grids(["azimuth=0,90,180", "elevation=0:60:30"]))
    np.testing.assert_array_equal(from_map.points(), from_cli.points())
    assert from_map.points().tolist()[:3] == [[0, 0], [0, 30], [90, 0]]
    assert SemanticMap(["azimuth=0:360:90"]).n_poses() == 4
    for bad, why in [({"azimuth": [90.0, 0.0]}, "strictly increasing"),
                     ({"azimuth": []}, "expected 1.."),
                     ({"elevation": [0.0, 120.0]}, "elevation"),
                     ({"nope": [1.0]}, "nope")]:
        with pytest.raises(BadInput, match=why):
            SemanticMap(bad).check()  # validated by run() / check(), not the constructor
    with pytest.raises(BadInput) as exc:
        SemanticMap({"azimuth": [2.0, 1.0]}).n_poses()
    assert exc.value.param == "axes"


def test_study_errors_name_the_config_field(tmp_path, capsys):
    import yaml

    from robustlens.study.config import config_error

    assert str(config_error(BadInput("timm:x: unknown", param="model"))) == \
        "config models timm:x: unknown"
    assert str(config_error(BadInput("whole"))) == "whole"
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump({"models": [{"spec": "timm:no_such_net_xyz"}],
                                   "semantic": {"meshes": [{"mesh": "demo:mug", "class": 504}]},
                                   "report": False}))
    code, _, err = run_cli(["run", str(cfg), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and err == "error: config models timm:no_such_net_xyz: unknown timm model " \
                                "(see timm.list_models())\n"
    assert not (tmp_path / "o").exists()


def test_cam_hooks_are_released_even_on_failure():
    import torch

    from robustlens.representation.cam import compute_cams

    clf = load_model("planted_cue")

    def n_hooks() -> int:
        return sum(len(m._forward_hooks) + len(m._backward_hooks) + len(m._forward_pre_hooks)
                   for m in clf.module.modules())

    assert n_hooks() == 0
    cams = compute_cams(clf, torch.rand(2, 3, 64, 64), [0, 4], method="gradcam")
    assert cams.shape == (2, 64, 64) and n_hooks() == 0
    with pytest.raises(BadInput):
        compute_cams(clf, torch.rand(1, 3, 64, 64), [99], method="gradcam")
    assert n_hooks() == 0
    assert all(p.requires_grad for p in clf.module.parameters())
