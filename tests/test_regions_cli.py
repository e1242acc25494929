"""End-to-end tests of ``robustlens regions`` and ``robustlens srvr`` (tiny, fast cases).

The models are ``python:FILE.py:FUNC`` modules written to a temp folder whose output
depends only on simple image statistics, rendered at 32 px so every run is cheap:

* ``const``: class 0 with probability ~1 on every image (maximally robust: its region
  is the whole domain, SRVR = 1);
* ``band``: class 0 only where sin(300 * mean pixel) > 0, which flips many times as
  the camera moves (fragile: small regions);
* ``bright``: class 0 when the image is bright enough (a smooth landscape);
* ``nan``: NaN logits (a broken model).
"""

from __future__ import annotations

import csv
import json
from pathlib import Path

import numpy as np
import pytest
from conftest import box_iou, run_cli

MODELS_PY = '''
import torch
from torch import nn


class _Stat(nn.Module):
    def __init__(self, kind):
        super().__init__()
        self.kind = kind

    def forward(self, x):
        m = x.mean(dim=(1, 2, 3))
        if self.kind == "const":
            s = torch.full_like(m, 12.0)
        elif self.kind == "band":
            s = 20.0 * torch.sin(300.0 * m)
        elif self.kind == "bright":
            s = 40.0 * (m + 1.6)
        else:
            s = torch.full_like(m, float("nan"))
        return torch.stack([s, torch.zeros_like(s)], 1)


def const():
    return _Stat("const")


def band():
    return _Stat("band")


def bright():
    return _Stat("bright")


def nan():
    return _Stat("nan")
'''

HEADER_KEYS = {"model", "mesh", "class_id", "class_name", "method", "variant", "domain",
               "params", "periodic", "threshold", "starts", "regions"}
RECORD_KEYS = {"start", "lower", "upper", "volume", "volume_ratio", "evaluations", "calls",
               "converged", "grew", "wrapped", "resolution", "worst_score", "wall_s",
               "trace_file"}
SRVR_COLS = ["model", "method", "variant", "srvr", "srvr_low", "srvr_high", "frac_not_grown",
             "n_runs", "evaluations"]


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, str]:
    p = tmp_path_factory.mktemp("models") / "stat_models.py"
    p.write_text(MODELS_PY)
    return {k: f"python:{p}:{k}" for k in ("const", "band", "bright", "nan")}


def _model_args(spec: str) -> list[str]:
    return ["--model", spec, "--input-size", "32"]


@pytest.fixture(scope="module")
def bright_map(models: dict[str, str], tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A coarse map of the ``bright`` model made by ``robustlens map``."""
    from robustlens.cli import main

    out = tmp_path_factory.mktemp("map")
    with pytest.raises(SystemExit) as exc:
        main(["-q", "map", "--mesh", "demo:mug", "--class", "0", "--grid", "azimuth=0:360:30",
              "--grid", "elevation=-10:90:20", *_model_args(models["bright"]), "--out", str(out)])
    assert exc.value.code == 0
    return out / "map.nc"


# ----------------------------------------------------------------------------- regions
def test_regions_end_to_end(models: dict[str, str], tmp_path: Path, capsys) -> None:
    out = tmp_path / "r"
    code, _, err = run_cli(["regions", "--mesh", "demo:mug", "--class", "0",
                            *_model_args(models["bright"]), "--out", str(out)], capsys)
    assert code == 0, err
    doc = json.loads((out / "regions.json").read_text())
    assert HEADER_KEYS <= set(doc)
    assert doc["method"] == "oir_b" and doc["variant"] == "ours"
    assert doc["params"] == ["azimuth", "elevation"]
    assert doc["domain"] == {"azimuth": [0.0, 360.0], "elevation": [-10.0, 90.0]}
    assert doc["periodic"] == ["azimuth"]
    assert len(doc["regions"]) == 4
    starts = [tuple(r["start"]) for r in doc["regions"]]
    assert starts == [(130, 30), (50, 20), (200, 15), (310, 50)]
    for rec in doc["regions"]:
        assert RECORD_KEYS <= set(rec)
        lo, hi, x0 = (np.array(rec[k]) for k in ("lower", "upper", "start"))
        assert (lo <= x0).all() and (x0 <= hi).all()
        # known answer: the clipped box volume over the domain's (360 x 100 degrees)
        width = np.minimum(hi, [360.0, 90.0]) - np.maximum(lo, [-360.0, -10.0])
        width[0] = min(hi[0] - lo[0], 360.0)  # azimuth is periodic: at most one turn
        assert rec["volume_ratio"] == pytest.approx(float(np.prod(width)) / 36000.0, rel=1e-6)
        assert rec["evaluations"] >= rec["calls"] >= 1
        assert rec["wall_s"] >= 0
        trace = json.loads((out / rec["trace_file"]).read_text())
        assert trace["lower"] == rec["lower"] and isinstance(trace["trace"], list)
    assert any(r["grew"] for r in doc["regions"])
    assert (out / "regions.png").stat().st_size > 1000
    # a batched search: far fewer model calls than evaluations
    ev = sum(r["evaluations"] for r in doc["regions"])
    calls = sum(r["calls"] for r in doc["regions"])
    assert ev >= 5 * calls


def test_regions_with_map_iou(models: dict[str, str], bright_map: Path, tmp_path: Path,
                              capsys) -> None:
    out = tmp_path / "rm"
    code, _, err = run_cli(["regions", "--mesh", "demo:mug", "--class", "0", "--map",
                            str(bright_map), "--method", "oir_w", "--start", "200,15",
                            *_model_args(models["bright"]), "--out", str(out)], capsys)
    assert code == 0, err
    rec = json.loads((out / "regions.json").read_text())["regions"][0]
    assert set(rec["ground_truth"]) == {"lower", "upper"}
    assert rec["iou"] == pytest.approx(box_iou(rec["lower"], rec["upper"],
                                                rec["ground_truth"]["lower"],
                                                rec["ground_truth"]["upper"]), abs=1e-9)
    assert "IoU" in err  # printed
    assert (out / "regions.png").is_file()


def test_regions_1d_and_paper_budget(models: dict[str, str], tmp_path: Path, capsys) -> None:
    out = tmp_path / "r1"
    code, _, err = run_cli(["regions", "--mesh", "demo:mug", "--class", "0", "--param",
                            "azimuth", "--set", "elevation=20", "--start", "90", "--start",
                            "300", "--variant", "paper", "--method", "naive", "--max-evals",
                            "40", *_model_args(models["bright"]), "--out", str(out)], capsys)
    assert code == 0, err
    doc = json.loads((out / "regions.json").read_text())
    assert doc["params"] == ["azimuth"] and doc["variant"] == "paper"
    assert doc["threshold"] is None
    for rec in doc["regions"]:
        assert len(rec["lower"]) == 1
        assert rec["evaluations"] <= 40  # paper: 2 corners x 20 iterations


def test_regions_const_model_fills_domain(models: dict[str, str], tmp_path: Path,
                                          capsys) -> None:
    out = tmp_path / "rc"
    code, _, err = run_cli(["regions", "--mesh", "demo:vase", "--class", "0", "--start",
                            "130,30", "--method", "naive", "--domain", "elevation=0:60",
                            *_model_args(models["const"]), "--out", str(out)], capsys)
    assert code == 0, err
    rec = json.loads((out / "regions.json").read_text())["regions"][0]
    assert rec["volume_ratio"] == pytest.approx(1.0)
    assert rec["lower"][1] == 0.0 and rec["upper"][1] == 60.0


# ----------------------------------------------------------------------------- srvr
def test_srvr_ranks_the_robust_model_first(models: dict[str, str], tmp_path: Path,
                                           capsys) -> None:
    out = tmp_path / "s"
    code, _, err = run_cli(["srvr", "--mesh", "demo:mug", "--mesh", "demo:vase", "--class", "0",
                            "--model", models["band"], "--model", models["const"],
                            "--input-size", "32", "--method", "oir_b", "--method", "naive",
                            "--start", "130,30", "--start", "200,15", "--n-boot", "200",
                            "--out", str(out)], capsys)
    assert code == 0, err
    with open(out / "srvr.csv") as f:
        rows = list(csv.DictReader(f))
    assert set(SRVR_COLS) <= set(rows[0])
    assert len(rows) == 4  # 2 models x 2 methods
    for method in ("oir_b", "naive"):
        sel = [r for r in rows if r["method"] == method]
        best = min(sel, key=lambda r: int(r["rank"]))
        worst = max(sel, key=lambda r: int(r["rank"]))
        assert best["model"] == models["const"]
        assert float(best["srvr"]) == pytest.approx(1.0)
        assert float(best["frac_not_grown"]) == 0.0
        assert float(worst["srvr"]) < 0.5
        for r in sel:
            assert float(r["srvr_low"]) <= float(r["srvr"]) <= float(r["srvr_high"])
            assert int(r["n_runs"]) == 4 and int(r["evaluations"]) > 0
    with open(out / "srvr_runs.csv") as f:
        runs = list(csv.DictReader(f))
    assert len(runs) == 2 * 2 * 2 * 2  # models x methods x meshes x starts
    assert {"model", "mesh", "method", "variant", "start", "volume_ratio", "grew",
            "evaluations", "calls"} <= set(runs[0])
    assert (out / "srvr.png").stat().st_size > 1000


# ----------------------------------------------------------------------------- bad input
def _one_error_line(err: str) -> str:
    lines = [ln for ln in err.splitlines() if ln.strip()]
    assert len(lines) == 1, err
    assert lines[0].startswith("error: ")
    return lines[0]


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--start", "400,30"], "--start"),
        (["--start", "130,95"], "--start"),
        (["--start", "1,2,3"], "--start"),
        (["--start", "90"], "--start"),
        (["--domain", "elevation=90:-10"], "--domain"),
        (["--domain", "elevation=-100:10"], "--domain"),
        (["--domain", "distance=2:3"], "--domain"),
        (["--method", "gradient"], "--method"),
        (["--variant", "mine"], "--variant"),
        (["--param", "zoom", "--start", "1"], "--param"),
        (["--param", "distance"], "--start"),
        (["--set", "azimuth=3"], "--set"),
        (["--max-evals", "0"], "--max-evals"),
        (["--map", "/nonexistent/map.nc"], "--map"),
        (["--class", "7"], "--class"),
    ],
)
def test_regions_bad_input(models: dict[str, str], tmp_path: Path, capsys, extra: list[str],
                           needle: str) -> None:
    out = tmp_path / "bad"
    args = ["regions", "--mesh", "demo:mug", *_model_args(models["bright"]), "--out", str(out)]
    if "--class" not in extra:
        args += ["--class", "0"]
    code, _, err = run_cli(args + extra, capsys)
    assert code == 2
    assert needle in _one_error_line(err)
    assert not (out / "regions.json").exists()


def test_regions_non_finite_scores(models: dict[str, str], tmp_path: Path, capsys) -> None:
    out = tmp_path / "nan"
    code, _, err = run_cli(["-q", "regions", "--mesh", "demo:mug", "--class", "0",
                            *_model_args(models["nan"]), "--out", str(out)], capsys)
    assert code == 2
    line = _one_error_line(err)
    assert "--model" in line and "non-finite" in line
    assert not (out / "regions.json").exists() and not (out / "traces").exists()


def test_regions_map_dims_mismatch(models: dict[str, str], tmp_path: Path, capsys) -> None:
    import xarray as xr

    from robustlens.semantic import save_map

    az = np.arange(0.0, 360.0, 30.0)
    ds = xr.Dataset({"score": (("azimuth",), np.full(az.size, 0.9))}, coords={"azimuth": az})
    save_map(ds, tmp_path / "m1" / "map.nc")
    out = tmp_path / "mm"
    code, _, err = run_cli(["regions", "--mesh", "demo:mug", "--class", "0", "--map",
                            str(tmp_path / "m1" / "map.nc"), *_model_args(models["bright"]),
                            "--out", str(out)], capsys)
    assert code == 2
    line = _one_error_line(err)
    assert "--map" in line and "azimuth" in line
    assert not (out / "regions.json").exists()


@pytest.mark.parametrize(
    ("extra", "needle"),
    [
        (["--class", "0", "--class", "1", "--class", "0"], "--class"),
        (["--class", "0", "--method", "oir_x"], "--method"),
        (["--class", "0", "--n-boot", "0"], "--n-boot"),
        (["--class", "0", "--start", "10"], "--start"),
    ],
)
def test_srvr_bad_input(models: dict[str, str], tmp_path: Path, capsys, extra: list[str],
                        needle: str) -> None:
    out = tmp_path / "sbad"
    code, _, err = run_cli(["srvr", "--mesh", "demo:mug", "--mesh", "demo:vase", "--model",
                            models["const"], "--input-size", "32", *extra, "--out", str(out)],
                           capsys)
    assert code == 2
    assert needle in _one_error_line(err)
    assert not (out / "srvr.csv").exists()


# ----------------------------------------------------------------------------- library
def test_srvr_table_ranks_and_groups() -> None:
    from robustlens.regions.srvr import srvr_table

    runs = []
    for model, ratio in (("a", 0.1), ("b", 0.6)):
        for mesh in ("m1", "m2", "m3"):
            for k in range(2):
                runs.append({"model": model, "mesh": mesh, "method": "oir_b", "variant": "ours",
                             "volume_ratio": ratio + 0.01 * k, "grew": True, "evaluations": 10,
                             "calls": 2, "wall_s": 0.1})
    table = srvr_table(runs, n_boot=100)
    assert [r["model"] for r in table] == ["b", "a"]
    assert [r["rank"] for r in table] == [1, 2]
    assert table[0]["n_meshes"] == 3 and table[0]["evaluations"] == 60
    assert table[0]["srvr"] == pytest.approx(0.605)


def test_regions_for_mesh_library(models: dict[str, str]) -> None:
    from robustlens.models import load_model
    from robustlens.regions.scene import regions_for_mesh
    from robustlens.render import load_mesh

    clf = load_model(models["const"], input_size=32)
    res = regions_for_mesh(clf, load_mesh("demo:mug"), 0, starts=[(130, 30), (310, 50)],
                           method="naive")
    assert len(res) == 2
    assert all(r.volume_ratio == pytest.approx(1.0) and r.grew for r in res)
    assert all(r.info["wall_s"] >= 0 and r.n_calls < r.n_evaluations for r in res)
