"""Semantic maps: grid syntax, known-answer maps, file format, CLI errors."""

from __future__ import annotations

import json

import numpy as np
import pytest
import trimesh
import xarray as xr
from conftest import run_cli

from robustlens.errors import BadInput
from robustlens.render import load_mesh, normalize_mesh
from robustlens.semantic import RenderScore, SemanticMap, load_map, parse_grid, parse_grids


def test_grid_syntax_is_numpy_arange():
    a = parse_grid("azimuth=0:360:3")
    np.testing.assert_array_equal(a.values, np.arange(0, 360, 3.0))
    assert len(a.values) == 120 and a.values[-1] == 357
    e = parse_grid("elevation=-10:90:3")
    assert len(e.values) == 34 and e.values[-1] == 89
    np.testing.assert_array_equal(parse_grid("distance=2,2.5,4").values, [2, 2.5, 4])
    np.testing.assert_allclose(parse_grid("fov=30:31:0.1").values, np.arange(30, 31, 0.1))


@pytest.mark.parametrize("text,match", [
    ("zoom=0:1:0.1", "'zoom': unknown scene parameter"),
    ("azimuth=10:10:1", "empty or reversed"),
    ("azimuth=90:0:3", "empty or reversed"),
    ("azimuth=0:90:0", "step must be > 0"),
    ("azimuth=0:90", "START:STOP:STEP"),
    ("azimuth", "NAME=START:STOP:STEP"),
    ("azimuth=a:b:c", "with numbers"),
    ("elevation=-100:0:10", "outside the valid range"),
    ("distance=0.5,2", "outside the valid range"),
    ("distance=3,2", "strictly increasing"),
])
def test_bad_grids(text, match):
    with pytest.raises(BadInput, match=match):
        parse_grid(text)


def test_duplicate_grid():
    with pytest.raises(BadInput, match="more than once"):
        parse_grids(["azimuth=0:10:1", "azimuth=0:20:1"])


def test_sphere_map_is_flat_over_azimuth(default_model, renderer):
    sphere = normalize_mesh(trimesh.creation.icosphere(subdivisions=5))
    ds = SemanticMap(parse_grids(["azimuth=0:360:30"])).run(default_model, sphere, 504, renderer).map_
    s = ds["score"].values
    top = ds["top1"].values
    assert s.shape == (12,)
    assert np.ptp(s) < 0.02 * max(s.max(), 1e-3) + 1e-4
    assert len(set(top.tolist())) == 1


def test_map_values_and_format(tmp_path, default_model, renderer):
    mug = load_mesh("demo:mug")
    axes = parse_grids(["azimuth=0:360:90", "elevation=0:60:30"])
    ds = SemanticMap(axes, fixed={"distance": 3.0}, batch_size=3).run(
        default_model, mug, 504, renderer, mesh_name="demo:mug").map_
    assert ds["score"].dims == ("azimuth", "elevation") and ds["score"].shape == (4, 2)
    np.testing.assert_array_equal(ds["azimuth"].values, [0, 90, 180, 270])
    assert ds["azimuth"].attrs["units"] == "deg"
    # each cell is the class probability of that pose, independent of batching
    fn = RenderScore(default_model, mug, 504, ["azimuth", "elevation"], {"distance": 3.0},
                     renderer, batch_size=8)
    direct = fn(np.array([[90.0, 30.0], [270.0, 0.0]]))
    fn.close()
    np.testing.assert_allclose([ds["score"].sel(azimuth=90, elevation=30),
                                ds["score"].sel(azimuth=270, elevation=0)], direct, rtol=1e-5)
    from robustlens.semantic import save_map

    save_map(ds, tmp_path / "m" / "map.nc")
    back = load_map(tmp_path / "m")
    xr.testing.assert_allclose(back["score"], ds["score"])
    assert back.attrs["class_name"] == "coffee mug" and back.attrs["model"] == default_model.spec
    assert json.loads(back.attrs["scene"])["distance"] == 3.0
    assert back.attrs["robustlens_version"]


def test_sampled_nd_map(default_model, renderer):
    mug = load_mesh("demo:mug")
    axes = parse_grids(["azimuth=0:360:1", "elevation=-10:90:1", "distance=2:4:0.5"])
    ds = SemanticMap(axes, samples=10, seed=3).run(default_model, mug, 504, renderer).map_
    assert ds["score"].dims == ("sample",) and ds["score"].shape == (10,)
    d = ds["distance"].values
    assert d.min() >= 2 and d.max() < 4
    ds2 = SemanticMap(axes, samples=10, seed=3).run(default_model, mug, 504, renderer).map_
    np.testing.assert_array_equal(ds["azimuth"].values, ds2["azimuth"].values)


# ------------------------------------------------------------------------------ CLI
def test_cli_map_end_to_end(tmp_path, capsys):
    out = tmp_path / "out"
    code, _, err = run_cli(["-q", "map", "--mesh", "demo:mug", "--grid", "azimuth=0:360:120",
                            "--grid", "elevation=0:40:20", "--out", str(out)], capsys)
    assert code == 0, err
    ds = load_map(out / "map.nc")
    assert ds["score"].shape == (3, 2) and ds.attrs["class_id"] == 504
    assert (out / "map.png").stat().st_size > 1000
    assert not list(out.glob(".*tmp*"))


@pytest.fixture(scope="module")
def bad_files(tmp_path_factory):
    d = tmp_path_factory.mktemp("bad")
    (d / "empty.obj").write_text("")
    (d / "junk.ply").write_bytes(b"\x00\x01 garbage")
    (d / "bad_out.py").write_text("import torch\nfrom torch import nn\n"
                                  "class M(nn.Module):\n    def forward(self, x):\n"
                                  "        return x\n"
                                  "def make():\n    return M()\n")
    return d


BAD = [
    (["--mesh", "{d}/missing.obj"], "--mesh"),
    (["--mesh", "{d}/empty.obj"], "empty"),
    (["--mesh", "{d}/junk.ply"], "junk.ply"),
    (["--grid", "zoom=0:1:1"], "unknown scene parameter"),
    (["--grid", "azimuth=10:0:1"], "empty or reversed"),
    (["--grid", "elevation=80:120:10"], "outside the valid range"),
    (["--class", "1000"], "class id out of range"),
    (["--class", "flux capacitor"], "unknown class name"),
    (["--model", "nope:thing"], "unknown model kind"),
    (["--model", "torchvision:resnet18"], "weights not found"),
    (["--model", "python:{d}/bad_out.py:make"], "expected (B, C)"),
]


@pytest.mark.parametrize("extra,match", BAD, ids=[b[1] for b in BAD])
def test_cli_map_bad_input(tmp_path, capsys, bad_files, monkeypatch, extra, match):
    monkeypatch.setenv("TORCH_HOME", str(tmp_path / "torch"))
    args = {"--mesh": "demo:mug", "--grid": "azimuth=0:360:180"}
    extra = [e.format(d=bad_files) for e in extra]
    for flag in list(args):
        if flag in extra:
            args.pop(flag)
    argv = ["map", "--out", str(tmp_path / "out")] + [x for kv in args.items() for x in kv] + extra
    code, _, err = run_cli(argv, capsys)
    lines = [ln for ln in err.strip().splitlines() if ln.strip()]
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: ") and match in lines[0], err
    assert "Traceback" not in err
    assert not (tmp_path / "out" / "map.nc").exists()
