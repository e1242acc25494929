"""Runtimes for forward-only passes: ONNX export, cache, parity, fallback, bad input."""

from __future__ import annotations

import json
import logging
import os
import warnings

import numpy as np
import pytest
import torch
from conftest import run_cli
from torch import nn

from robustlens.errors import BadInput
from robustlens.fingerprint import sha256_file
from robustlens.models import Classifier, load_model
from robustlens.models import runtime as rt
from robustlens.render import load_mesh
from robustlens.semantic import SemanticMap, parse_grids

TINY = """
import torch
from torch import nn


class Tiny(nn.Module):
    def __init__(self):
        super().__init__()
        torch.manual_seed(0)
        self.conv = nn.Conv2d(3, 8, 3, stride=2)
        self.fc = nn.Linear(8, 10)

    def forward(self, x):
        return self.fc(torch.relu(self.conv(x)).mean(dim=(2, 3)))


class Cummax(Tiny):  # aten::cummax has no ONNX export at opset 17
    def forward(self, x):
        return self.fc(torch.cummax(self.conv(x), dim=-1).values.mean(dim=(2, 3)))


class BatchBranch(Tiny):  # python control flow: tracing freezes the branch of the dummy batch
    def forward(self, x):
        y = super().forward(x)
        return y if x.shape[0] == 3 else 3.0 * y


def tiny():
    return Tiny()


def cummax():
    return Cummax()


def batch_branch():
    return BatchBranch()
"""


@pytest.fixture(scope="module")
def user_models(tmp_path_factory):
    d = tmp_path_factory.mktemp("models")
    (d / "m.py").write_text(TINY)
    return d / "m.py"


@pytest.fixture()
def cache(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTLENS_CACHE", str(tmp_path / "cache"))
    return tmp_path / "cache"


def _load(path, func: str) -> Classifier:
    """Loaded on eager PyTorch: these tests choose the runtime themselves."""
    return load_model(f"python:{path}:{func}", input_size=32, runtime="torch")


def _export_onnx(module: nn.Module, x: torch.Tensor, path, dynamic: bool = True) -> None:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.onnx.export(module.eval(), (x,), str(path), opset_version=17, dynamo=False,
                          input_names=["x"], output_names=["y"],
                          dynamic_axes={"x": {0: "b"}, "y": {0: "b"}} if dynamic else None)


# ------------------------------------------------------------------ choice + parity
def test_auto_uses_onnxruntime_with_parity(user_models, cache):
    clf = _load(user_models, "tiny")
    lines: list[str] = []
    rt.prepare_runtime(clf, "auto", log=lines.append)
    assert clf.runtime == "onnxruntime" and isinstance(clf.forward_only, rt.OrtForward)
    assert len(lines) == 1 and "onnxruntime" in lines[0] and "new ONNX export" in lines[0]
    x = torch.rand(7, 3, 32, 32, generator=torch.Generator().manual_seed(1))
    with torch.no_grad():
        ref = clf.module(clf.normalize(x)).softmax(1)
    assert (clf.probs(x) - ref).abs().max() < 1e-5
    # gradients (CAMs) still go through the PyTorch module
    assert clf.logits(x.requires_grad_()).requires_grad
    # a second process-level prepare reuses the cache
    clf2 = _load(user_models, "tiny")
    lines.clear()
    rt.prepare_runtime(clf2, "auto", log=lines.append)
    assert "cached ONNX export" in lines[0]
    assert len(list((cache / "onnx").glob("*.onnx"))) == 1


def test_torch_runtime_leaves_model_alone(user_models, cache):
    clf = _load(user_models, "tiny")
    rt.prepare_runtime(clf, "torch", log=lambda m: None)
    assert clf.runtime == "torch" and clf.forward_only is None
    assert not (cache / "onnx").exists()


def test_key_follows_weights_and_input_size(user_models):
    a, b = _load(user_models, "tiny"), _load(user_models, "tiny")
    assert rt.export_key(a) == rt.export_key(b)
    with torch.no_grad():
        b.module.fc.bias[0] += 1e-3
    assert rt.export_key(a) != rt.export_key(b)
    c = _load(user_models, "tiny")
    c.input_size = 48
    assert rt.export_key(a) != rt.export_key(c)


def _warning_lines(caplog) -> list[str]:
    """The logging warnings of the call as the CLI shows them (``warning: ...``)."""
    return [f"warning: {r.getMessage()}" for r in caplog.records
            if r.levelno == logging.WARNING]


def test_parity_failure_falls_back_to_torch(user_models, cache, caplog):
    clf = _load(user_models, "batch_branch")
    lines: list[str] = []
    caplog.set_level(logging.WARNING, logger="robustlens")
    rt.prepare_runtime(clf, "auto", log=lines.append)
    lines += _warning_lines(caplog)
    assert clf.runtime == "torch" and clf.forward_only is None
    # the warning travels as a logging WARNING (the CLI styles it), not as an info line
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert len(lines) == 1 and "warning" in lines[0] and "max |Δ softmax|" in lines[0]
    # the measured difference is reported and it is above the tolerance
    diff = float(lines[0].split("max |Δ softmax| ")[1].split(",")[0])
    assert diff > rt.PARITY_TOL
    lines.clear()
    caplog.clear()
    # explicit: same safe fallback
    rt.prepare_runtime(clf, "onnxruntime", log=lines.append)
    lines += _warning_lines(caplog)
    assert clf.runtime == "torch" and "disagrees" in lines[0]


def test_unexportable_model(user_models, cache):
    clf = _load(user_models, "cummax")
    lines: list[str] = []
    rt.prepare_runtime(clf, "auto", log=lines.append)
    assert clf.runtime == "torch" and "ONNX export failed" in lines[0]
    with pytest.raises(BadInput, match=r"^runtime onnxruntime: model 'python:.*cummax' cannot be "
                                       r"exported to ONNX \(.*aten::cummax"):
        rt.prepare_runtime(clf, "onnxruntime", log=lines.append)
    assert not list((cache / "onnx").glob("*.onnx"))  # nothing half-written in the cache


def test_corrupt_cache_entry_is_rebuilt_not_used(user_models, cache, caplog):
    clf = _load(user_models, "tiny")
    path, built = rt.cached_export(clf, log=lambda m: None)
    assert built
    good = path.read_bytes()
    # same size, a few flipped bytes in the middle: only the hash can tell
    bad = bytearray(good)
    for i in range(len(bad) // 2, len(bad) // 2 + 16):
        bad[i] ^= 0xFF
    path.write_bytes(bytes(bad))
    lines: list[str] = []
    caplog.set_level(logging.WARNING, logger="robustlens")
    path2, built2 = rt.cached_export(clf, log=lines.append)
    lines += _warning_lines(caplog)
    assert built2 and path2 == path
    assert [r.levelno for r in caplog.records] == [logging.WARNING]
    assert len(lines) == 1 and "does not match its recorded sha256" in lines[0]
    assert path.read_bytes() == good
    meta = json.loads(path.with_suffix(".json").read_text())
    assert meta["sha256"] == sha256_file(path)
    # a missing / unreadable record counts as corrupt too
    path.with_suffix(".json").write_text("{not json")
    lines.clear()
    caplog.clear()
    assert rt.cached_export(clf, log=lines.append)[1]
    lines += _warning_lines(caplog)
    assert "rebuilding" in lines[0]


def test_load_model_prepares_the_fast_runtime_by_default(user_models, monkeypatch, tmp_path):
    """The Python API is as fast as the CLI: load_model() chooses the runtime as --runtime
    auto does; runtime="torch" opts out."""
    monkeypatch.setenv("ROBUSTLENS_CACHE", str(tmp_path / "cache"))
    spec = f"python:{user_models}:tiny"
    fast = load_model(spec, input_size=32)
    assert fast.runtime == "onnxruntime" and isinstance(fast.forward_only, rt.OrtForward)
    eager = load_model(spec, input_size=32, runtime="torch")
    assert eager.runtime == "torch" and eager.forward_only is None
    x = torch.rand(4, 3, 32, 32)
    assert float((fast.probs(x) - eager.probs(x)).abs().max()) <= rt.PARITY_TOL


def test_cache_dir_env(monkeypatch, tmp_path):
    monkeypatch.setenv("ROBUSTLENS_CACHE", str(tmp_path / "a"))
    assert rt.cache_dir() == tmp_path / "a"
    monkeypatch.delenv("ROBUSTLENS_CACHE")
    monkeypatch.delenv("ROBUSTLENS_CACHE_DIR", raising=False)
    monkeypatch.setenv("XDG_CACHE_HOME", str(tmp_path / "xdg"))
    assert rt.cache_dir() == tmp_path / "xdg" / "robustlens"


def test_one_cache_variable_and_its_deprecated_alias(monkeypatch, tmp_path):
    """ROBUSTLENS_CACHE names the one cache folder (hash cache and ONNX exports);
    ROBUSTLENS_CACHE_DIR still works for one release, with a DeprecationWarning."""
    from robustlens import fingerprint

    monkeypatch.setenv("ROBUSTLENS_CACHE", str(tmp_path / "one"))
    assert fingerprint.cache_file() == tmp_path / "one" / "hashes.json"
    assert rt.cache_dir() == tmp_path / "one"
    monkeypatch.delenv("ROBUSTLENS_CACHE")
    monkeypatch.setenv("ROBUSTLENS_CACHE_DIR", str(tmp_path / "old"))
    with pytest.warns(DeprecationWarning, match="ROBUSTLENS_CACHE"):
        assert rt.cache_dir() == tmp_path / "old"


def test_cuda_without_ort_cuda_provider(user_models, cache, monkeypatch):
    """The GPU path's choice logic (no GPU here: the device is only relabelled)."""
    monkeypatch.setattr(rt, "cuda_provider_available", lambda: False)
    clf = _load(user_models, "tiny")
    clf.device = torch.device("cuda")
    lines: list[str] = []
    rt.prepare_runtime(clf, "auto", log=lines.append)
    assert clf.runtime == "torch" and "torch on cuda" in lines[0]
    with pytest.raises(BadInput, match="CUDAExecutionProvider"):
        rt.prepare_runtime(clf, "onnxruntime", log=lines.append)


def test_bad_runtime_name(user_models):
    with pytest.raises(BadInput, match="^runtime 'tensorrt'"):
        rt.prepare_runtime(_load(user_models, "tiny"), "tensorrt")


# ------------------------------------------------------------------ onnx:PATH files
def test_onnx_file_fixed_batch_runs_in_chunks(tmp_path):
    torch.manual_seed(0)
    net = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(), nn.Linear(4, 6))
    _export_onnx(net, torch.rand(1, 3, 32, 32), tmp_path / "b1.onnx", dynamic=False)
    clf = load_model(f"onnx:{tmp_path / 'b1.onnx'}")
    assert clf.input_size == 32 and clf.runtime == "onnxruntime"
    x = torch.rand(5, 3, 32, 32)
    with torch.no_grad():
        ref = net(clf.normalize(x)).softmax(1)
    torch.testing.assert_close(clf.probs(x), ref, atol=1e-5, rtol=1e-4)


@pytest.fixture(scope="module")
def onnx_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("onnx")
    torch.manual_seed(0)
    _export_onnx(nn.Linear(10, 4), torch.rand(2, 10), d / "flat.onnx")
    ten = nn.Sequential(nn.Conv2d(3, 4, 3), nn.AdaptiveAvgPool2d(1), nn.Flatten(),
                        nn.Linear(4, 10))
    _export_onnx(ten, torch.rand(2, 3, 64, 64), d / "ten.onnx")
    return d


@pytest.mark.parametrize("extra,match", [
    (["--model", "onnx:{d}/flat.onnx"], "input 'x' has shape (b, 10), expected (B, 3, H, W)"),
    (["--model", "onnx:{d}/ten.onnx", "--class", "504"],
     "class id out of range for model 'onnx:{d}/ten.onnx' (10 classes)"),
    (["--model", "python:{m}:cummax", "--input-size", "32", "--class", "3",
      "--runtime", "onnxruntime"], "model 'python:{m}:cummax' cannot be exported to ONNX"),
], ids=["input-not-image", "wrong-classes", "unexportable"])
def test_cli_bad_runtime_inputs(tmp_path, capsys, onnx_files, user_models, extra, match):
    extra = [e.format(d=onnx_files, m=user_models) for e in extra]
    argv = ["map", "--mesh", "demo:mug", "--grid", "azimuth=0:360:180", "--out",
            str(tmp_path / "out"), *extra]
    code, _, err = run_cli(argv, capsys)
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), err
    assert match.format(d=onnx_files, m=user_models) in lines[0], err
    assert not (tmp_path / "out" / "map.nc").exists()


# ------------------------------------------------------------------ done-when
def test_default_runtime_map_equals_torch_map():
    """A 30-pose map of the default model: the default runtime (auto -> ONNX Runtime) agrees
    with --runtime torch within 2e-3 on every cell."""
    clf = load_model()
    mesh = load_mesh("demo:mug")
    smap = SemanticMap(parse_grids(["azimuth=0:360:36", "elevation=0:60:20"]), batch_size=8)
    assert len(smap.points()) == 30
    rt.prepare_runtime(clf, "auto", log=lambda m: None)
    assert clf.runtime == "onnxruntime"
    fast = smap.run(clf, mesh, 504).map_
    assert fast.attrs["runtime"] == "onnxruntime"
    rt.prepare_runtime(clf, "torch")
    ref = smap.run(clf, mesh, 504).map_
    assert ref.attrs["runtime"] == "torch"
    d = np.abs(fast["score"].values - ref["score"].values)
    assert d.max() <= 2e-3, d.max()
    assert ref["score"].values.max() > 0.3  # a real map, not all zeros
    assert (fast["top1"].values == ref["top1"].values).mean() >= 0.9


def test_study_config_runtime(tmp_path):
    from robustlens.study import load_config

    assert load_config(None).runtime == "auto"
    p = tmp_path / "s.yaml"
    p.write_text("runtime: tensorrt\n")
    with pytest.raises(BadInput, match="field runtime"):
        load_config(p)
    p.write_text("runtime: torch\n")
    assert load_config(p).runtime == "torch"


def test_no_user_cache_in_tests():
    assert os.environ["ROBUSTLENS_CACHE"] and ".cache" not in rt.cache_dir().parts


@pytest.mark.parametrize("cmd", ["map", "regions", "srvr", "attack", "run"])
def test_runtime_option_on_commands(cmd, capsys):
    code, out, _ = run_cli([cmd, "--help"], capsys)
    assert code == 0 and "--runtime" in out and "onnxruntime" in out


def test_run_cli_runtime_overrides_config(tmp_path, capsys):
    cfg = tmp_path / "s.yaml"
    cfg.write_text("models: [nope:thing]\n")
    code, _, err = run_cli(["run", str(cfg), "--runtime", "tensorrt"], capsys)
    assert code == 2 and "--runtime" in err
