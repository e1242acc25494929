"""Reliability, round three (issue 22): stale results after a resume, shared caches, folder
collisions, user strings in figures, noisy exports and addresses, config types, full disks,
truncated images. Each test failed before its fix."""

from __future__ import annotations

import errno
import socket
import threading
from pathlib import Path

import numpy as np
import pytest
import trimesh
import yaml
from conftest import run_cli
from PIL import Image

from robustlens.errors import BadInput
from robustlens.models import load_model
from robustlens.render import MeshRenderer, load_mesh
from robustlens.semantic import SemanticMap
from robustlens.semantic.chunks import (
    MapJob,
    chunk_files,
    geometry_digest,
    load_chunks,
    run_chunked_map,
    save_chunk,
)


def _textured_cube(folder: Path, colour: tuple[int, int, int]) -> Path:
    """A cube OBJ with UVs, an MTL and a one-colour texture image."""
    folder.mkdir(parents=True, exist_ok=True)
    box = trimesh.creation.box()
    uv = np.c_[(box.vertices[:, 0] + 0.5), (box.vertices[:, 1] + 0.5)]
    box.visual = trimesh.visual.TextureVisuals(
        uv=uv, material=trimesh.visual.material.SimpleMaterial(
            image=Image.new("RGB", (8, 8), colour)))
    box.export(folder / "cube.obj")
    return folder / "cube.obj"


def _map(folder, clf, mesh, *, resume=True, log=None):
    smap = SemanticMap({"azimuth": "0:360:60", "elevation": "0:40:20"}, batch_size=4)
    with MeshRenderer(64) as r:
        return run_chunked_map(smap, clf, mesh, 1, folder, renderer=r, chunk_size=4,
                               resume=resume, log=log)


@pytest.fixture(scope="module")
def planted():
    return load_model("builtin:planted_cue")


# ------------------------------------------------------------ 1, 2, 4: stale chunks
def test_changed_texture_between_kill_and_rerun_equals_a_clean_run(tmp_path, planted):
    obj = _textured_cube(tmp_path / "m", (250, 20, 20))
    folder = tmp_path / "map"
    _map(folder, planted, load_mesh(obj))  # chunks left as by a killed run
    assert chunk_files(folder)
    Image.new("RGB", (8, 8), (20, 20, 250)).save(tmp_path / "m" / "material_0.png")
    blue = load_mesh(obj)
    logs: list[str] = []
    resumed = _map(folder, planted, blue, log=logs.append)
    clean = _map(tmp_path / "clean", planted, blue)
    assert not logs, logs  # the red chunks were not reused
    np.testing.assert_allclose(resumed["score"], clean["score"], atol=1e-6)


def test_same_geometry_other_texture_is_another_mesh_for_chunks_and_ray(tmp_path):
    red = load_mesh(_textured_cube(tmp_path / "r", (250, 20, 20)))
    blue = load_mesh(_textured_cube(tmp_path / "b", (20, 20, 250)))
    assert np.array_equal(red.vertices, blue.vertices)
    # the Ray workers' mesh cache and every chunk key use this digest
    assert geometry_digest(red) != geometry_digest(blue)
    assert geometry_digest(red) == geometry_digest(load_mesh(tmp_path / "r" / "cube.obj"))


def test_chunk_of_the_right_key_but_wrong_length_is_recomputed(tmp_path, planted):
    mesh = load_mesh("demo:mug")
    folder = tmp_path / "map"
    clean = _map(folder, planted, mesh)
    job = MapJob(("azimuth", "elevation"), np.zeros((4, 2)), {}, 1, 4, 4)
    files = chunk_files(folder)
    with np.load(files[0]) as z:
        key = str(z["key"])
    # right key and scores, but top1 has the wrong length
    save_chunk(folder, key, 0, 4, np.zeros(4), np.zeros(3, np.int32), np.zeros(4))
    assert (0, 4) not in load_chunks(folder, key, job.bounds())
    for resume in (True, False):  # --force as well
        again = _map(folder, planted, mesh, resume=resume)
        np.testing.assert_allclose(again["score"], clean["score"], atol=1e-6)


def test_force_recomputes_every_chunk(tmp_path, planted):
    mesh = load_mesh("demo:mug")
    folder = tmp_path / "map"
    clean = _map(folder, planted, mesh)
    files = chunk_files(folder)
    with np.load(files[0]) as z:
        key, n = str(z["key"]), len(z["scores"])
    save_chunk(folder, key, 0, n, np.full(n, 0.123), np.zeros(n, np.int32), np.zeros(n))
    logs: list[str] = []
    forced = _map(folder, planted, mesh, resume=False, log=logs.append)
    assert not logs
    np.testing.assert_allclose(forced["score"], clean["score"], atol=1e-6)


# ------------------------------------------------------------ 3: folder collisions
def test_two_meshes_that_share_a_folder_are_refused(tmp_path, capsys):
    for d in ("a b", "a_b"):
        (tmp_path / d).mkdir()
        trimesh.creation.box().export(tmp_path / d / "obj.glb")
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump({
        "models": ["builtin:planted_cue"],
        "semantic": {"meshes": [{"mesh": str(tmp_path / "a b" / "obj.glb"), "class": 1},
                                {"mesh": str(tmp_path / "a_b" / "obj.glb"), "class": 1}],
                     "grid": {"azimuth": "0:360:90"}, "curve": None},
        "regions": {"enabled": False}, "representation": {"enabled": False},
        "turntable": False, "report": False}))
    code, _, err = run_cli(["run", str(cfg), "--out", str(tmp_path / "out")], capsys)
    assert code == 2
    line = err.strip().splitlines()[-1]
    assert "a b/obj.glb" in line and "a_b/obj.glb" in line and "semantic.meshes" in line
    assert not (tmp_path / "out" / "maps").exists()


def test_long_names_that_end_alike_get_their_own_folders():
    from robustlens.study.layout import SLUG_MAX, slug

    tail = "/x" * 60 + "/mesh.obj"
    a, b = slug("/data/one" + tail), slug("/data/two" + tail)
    assert a != b and len(a) <= SLUG_MAX and len(b) <= SLUG_MAX
    assert slug("pkg:pybullet/soccerball") == "pkg_pybullet_soccerball"  # short: unchanged


# ------------------------------------------------------------ 8: user strings in figures
def test_dollar_pairs_in_names_and_labels_are_text(tmp_path, planted):
    from robustlens import figures
    from robustlens.study.steps import save_map_and_plot

    smap = SemanticMap({"azimuth": "0:360:90", "elevation": "0:40:20"}, batch_size=8)
    with MeshRenderer(64) as r:
        smap.run(planted, load_mesh("demo:mug"), 1, renderer=r, mesh_name="my $x^{2$ mug.obj")
    ds = smap.map_
    ds.attrs["class_name"] = "$\\frac{a$"
    nc, png = save_map_and_plot(ds, tmp_path / "m")
    assert nc.is_file() and png.is_file()
    with figures.style():
        import matplotlib

        assert matplotlib.rcParams["text.parse_math"] is False


# ------------------------------------------------------------ 13: quiet exports and addresses
def test_failed_onnx_export_prints_nothing(tmp_path, capfd):
    from robustlens.models.runtime import prepare_runtime

    src = tmp_path / "cm.py"
    src.write_text("import torch\nclass M(torch.nn.Module):\n    def __init__(self):\n"
                   "        super().__init__()\n        self.c = torch.nn.Conv2d(3, 4, 3)\n"
                   "    def forward(self, x):\n        y = self.c(x).flatten(2)\n"
                   "        return torch.cummax(y, dim=2).values.mean(2)\n"
                   "def make():\n    return M()\n")
    clf = load_model(f"python:{src}:make", input_size=32)
    capfd.readouterr()
    lines: list[str] = []
    prepare_runtime(clf, "auto", log=lines.append)
    out, err = capfd.readouterr()
    assert out == "" and err == ""
    assert len(lines) == 1 and "cummax" in lines[0] and "[" not in lines[0].split(":")[0]


def test_corrupt_onnx_cache_warning_has_no_markup(tmp_path, monkeypatch, planted, capsys,
                                                  caplog):
    import logging

    from robustlens.cli import _show_warnings
    from robustlens.models import runtime as rt

    monkeypatch.setenv("ROBUSTLENS_CACHE", str(tmp_path / "c"))
    path, _ = rt.cached_export(planted, log=lambda m: None)
    path.write_bytes(b"broken")
    _show_warnings()  # the CLI's styling of library warnings
    capsys.readouterr()
    lines: list[str] = []
    rt.cached_export(planted, log=lines.append)
    # a logging WARNING (not an info line), shown by the CLI as one plain "warning:" line
    assert [r.levelno for r in caplog.records] == [logging.WARNING] and lines == []
    err = capsys.readouterr().err.splitlines()
    assert len(err) == 1 and err[0].startswith("warning: ") and "[yellow]" not in err[0]


def test_tcp_address_that_is_not_ray_is_refused_at_once(tmp_path):
    import time

    from robustlens.study.executor import RayExecutor

    srv = socket.socket()
    srv.bind(("127.0.0.1", 0))
    srv.listen(4)
    port = srv.getsockname()[1]

    def serve() -> None:
        for _ in range(4):
            try:
                conn, _ = srv.accept()
            except OSError:
                return
            with conn:
                conn.recv(1024)
                conn.sendall(b"HTTP/1.1 400 Bad Request\r\nContent-Length: 0\r\n\r\n")

    threading.Thread(target=serve, daemon=True).start()
    t0 = time.perf_counter()
    with pytest.raises(BadInput, match="not as a Ray head node"):
        RayExecutor(f"127.0.0.1:{port}", connect_timeout=2).start()
    assert time.perf_counter() - t0 < 8
    srv.close()


# ------------------------------------------------------------ 14: config and disk
@pytest.mark.parametrize("section,field,value", [
    ("semantic", "batch_size", True), ("semantic", "chunk_size", 2.5), ("", "seed", False),
    ("regions", "threshold", True), ("regions", "max_evals", True)])
def test_config_types_are_strict(tmp_path, capsys, section, field, value):
    doc: dict = {"models": ["builtin:planted_cue"]}
    if section:
        doc[section] = {field: value}
    else:
        doc[field] = value
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump(doc))
    code, _, err = run_cli(["run", str(cfg), "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and (f"{section}.{field}" if section else field) in err


@pytest.mark.parametrize("regions,needle", [
    ({"params": ["azimuth", "bogus"]}, "regions.params"),
    ({"params": ["azimuth", "azimuth"]}, "regions.params"),
    ({"domain": {"bogus": [0, 5]}}, "regions.domain"),
])
def test_run_errors_name_config_fields_not_flags(tmp_path, capsys, regions, needle):
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump({"models": ["default"], "regions": regions,
                                   "semantic": {"meshes": ["demo:mug"]}}))
    code, _, err = run_cli(["run", str(cfg), "--out", str(tmp_path / "o")], capsys)
    line = err.strip().splitlines()[-1]
    assert code == 2 and needle in line and " --" not in line


def test_unknown_class_in_a_study_names_the_config_field(tmp_path, capsys):
    cfg = tmp_path / "s.yaml"
    cfg.write_text(yaml.safe_dump({"models": ["builtin:planted_cue"], "semantic": {
        "meshes": [{"mesh": "demo:mug", "class": "no such class"}]}}))
    code, _, err = run_cli(["run", str(cfg), "--out", str(tmp_path / "o")], capsys)
    line = err.strip().splitlines()[-1]
    assert code == 2 and "semantic.meshes.class" in line and "--class" not in line


def test_disk_full_is_exit_2_naming_the_file(tmp_path, capsys, monkeypatch):
    import xarray as xr

    def full(self, path, *a, **k):
        raise OSError(errno.ENOSPC, "No space left on device")

    monkeypatch.setattr(xr.Dataset, "to_netcdf", full)
    code, _, err = run_cli(["map", "--model", "builtin:planted_cue", "--mesh", "demo:mug",
                            "--class", "1", "--grid", "azimuth=0:360:90", "--out",
                            str(tmp_path / "o")], capsys)
    line = err.strip().splitlines()[-1]
    assert code == 2 and "map.nc" in line and "No space left" in line
    assert "Traceback" not in err
    assert not (tmp_path / "o" / "map.nc").exists()


def test_truncated_dataset_image_is_refused_up_front(tmp_path):
    from robustlens.representation.datasets import load_dataset

    arr = (np.random.default_rng(0).random((64, 64, 3)) * 255).astype(np.uint8)
    Image.fromarray(arr).save(tmp_path / "a.jpg")
    data = (tmp_path / "a.jpg").read_bytes()
    (tmp_path / "b.jpg").write_bytes(data[: len(data) // 2])
    (tmp_path / "boxes.csv").write_text("image,label,xmin,ymin,xmax,ymax\n"
                                        "a.jpg,0,1,1,30,30\nb.jpg,0,1,1,30,30\n")
    with pytest.raises(BadInput, match="b.jpg.*truncated"):
        load_dataset(tmp_path / "boxes.csv", [f"c{i}" for i in range(3)])


@pytest.mark.parametrize("ext", ["ply", "obj", "stl", "glb", "off"])
def test_mesh_file_name_that_is_not_utf8_loads(tmp_path, ext):
    import os

    name = os.fsdecode(bytes(tmp_path) + f"/caf\xe9.{ext}".encode("latin-1"))
    trimesh.creation.box().export(name, file_type=ext)
    assert load_mesh(name).vertices.shape == (8, 3)
