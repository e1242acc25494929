"""Reuse and resume: a changed input is never answered with a reused result.

A tiny study (a python: model with a weight file, an OBJ mesh with a material and a texture,
a CSV dataset) is run, then each input is changed in place (same path, same row count) and
the rerun must recompute exactly the steps that depend on it.
"""

from __future__ import annotations

import hashlib
from pathlib import Path

import numpy as np
import pytest
import torch
import yaml
from conftest import run_cli
from PIL import Image

from robustlens.study import Study, load_config

TINY = Path(__file__).resolve().parent / "data" / "tiny_model.py"

CUBE = """mtllib m.mtl
v -1 -1 -1
v 1 -1 -1
v 1 1 -1
v -1 1 -1
v -1 -1 1
v 1 -1 1
v 1 1 1
v -1 1 1
usemtl mat
f 1 3 2
f 1 4 3
f 5 6 7
f 5 7 8
f 1 2 6
f 1 6 5
f 2 3 7
f 2 7 6
f 3 4 8
f 3 8 7
f 4 1 5
f 4 5 8
"""


def _weights(path: Path, seed: int) -> None:
    import importlib.util

    spec = importlib.util.spec_from_file_location("tiny_for_weights", TINY)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    torch.manual_seed(seed)
    torch.save(mod.Tiny().state_dict(), path)


@pytest.fixture()
def study(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTLENS_CACHE", str(tmp_path / "cache"))
    (tmp_path / "cube.obj").write_text(CUBE)
    (tmp_path / "m.mtl").write_text("newmtl mat\nKd 0.8 0.8 0.8\nmap_Kd tex.png\n")
    Image.fromarray(np.full((8, 8, 3), 200, np.uint8)).save(tmp_path / "tex.png")
    for name, v in (("a.png", 90), ("b.png", 160)):
        Image.fromarray(np.full((32, 32, 3), v, np.uint8)).save(tmp_path / name)
    (tmp_path / "boxes.csv").write_text("image,label,xmin,ymin,xmax,ymax\n"
                                        "a.png,class_0,2,2,20,20\nb.png,class_1,4,4,30,30\n")
    _weights(tmp_path / "w.pt", 0)
    cfg = {"models": [{"spec": f"python:{TINY}:build", "input_size": 32,
                       "weights": str(tmp_path / "w.pt")}],
           "semantic": {"meshes": [{"mesh": str(tmp_path / "cube.obj"), "class": 0}],
                        "grid": {"azimuth": "0:360:180"}, "curve": None, "batch_size": 4},
           "regions": {"enabled": False},
           "representation": {"datasets": [str(tmp_path / "boxes.csv")], "cams": ["gradcam"],
                              "attacks": False, "batch_size": 2},
           "turntable": False, "report": False, "out": str(tmp_path / "out")}
    (tmp_path / "study.yaml").write_text(yaml.safe_dump(cfg))
    return tmp_path


def _run(tmp: Path) -> set[str]:
    """Run the study; return the names of the steps that were computed (not reused)."""
    s = Study(load_config(tmp / "study.yaml"), log=lambda m: None)
    s.run()
    return {k.split()[0] for k in s.timings_ if k != "total"}


def _touch_later(path: Path) -> None:
    st = path.stat()
    import os

    os.utime(path, ns=(st.st_atime_ns, st.st_mtime_ns + 10**9))


def test_changed_inputs_are_recomputed(study):
    assert _run(study) == {"map", "views", "scores"}
    assert _run(study) == set()  # nothing changed: everything reused
    # the mesh file edited in place
    obj = study / "cube.obj"
    obj.write_text(CUBE.replace("v 1 1 1", "v 1.5 1 1"))
    assert _run(study) == {"map", "views"}
    # the texture the material names (and the material itself)
    Image.fromarray(np.full((8, 8, 3), 10, np.uint8)).save(study / "tex.png")
    _touch_later(study / "tex.png")
    assert _run(study) == {"map", "views"}
    (study / "m.mtl").write_text("newmtl mat\nKd 0.2 0.8 0.8\nmap_Kd tex.png\n")
    assert _run(study) == {"map", "views"}
    # a box fixed without changing the number of rows
    csv = study / "boxes.csv"
    csv.write_text(csv.read_text().replace("a.png,class_0,2,2,20,20", "a.png,class_0,3,2,20,20"))
    assert _run(study) == {"scores"}
    # an image replaced under the same name
    Image.fromarray(np.full((32, 32, 3), 30, np.uint8)).save(study / "b.png")
    _touch_later(study / "b.png")
    assert _run(study) == {"scores"}
    # new weights in the same file
    _weights(study / "w.pt", 1)
    _touch_later(study / "w.pt")
    assert _run(study) == {"map", "views", "scores"}
    # a deleted result is recomputed, not assumed
    (study / "out" / "maps").rglob("map.png").__next__().unlink()
    assert _run(study) == {"map"}  # same key: its views stay valid
    (study / "out" / "views").rglob("views.json").__next__().unlink()
    assert _run(study) == {"views"}
    assert _run(study) == set()


def test_python_model_records_the_hash_of_the_weights_used(study):
    from robustlens.models import load_model

    clf = load_model(f"python:{TINY}:build", weights=str(study / "w.pt"))
    assert clf.weights_sha256 == hashlib.sha256((study / "w.pt").read_bytes()).hexdigest()


def test_builtin_with_weights_records_that_file(tmp_path, default_model, monkeypatch):
    monkeypatch.setenv("ROBUSTLENS_CACHE", str(tmp_path / "cache"))
    from robustlens.models import load_model

    sd = {k: v.clone() for k, v in default_model.module.state_dict().items()}
    first = next(k for k, v in sd.items() if v.is_floating_point())
    sd[first] += 0.01
    torch.save(sd, tmp_path / "mine.pt")
    clf = load_model("default", weights=str(tmp_path / "mine.pt"))
    assert clf.weights_sha256 == hashlib.sha256((tmp_path / "mine.pt").read_bytes()).hexdigest()
    assert clf.weights_sha256 != default_model.weights_sha256


def test_hash_cache_is_keyed_by_size_and_mtime(tmp_path, monkeypatch):
    monkeypatch.setenv("ROBUSTLENS_CACHE", str(tmp_path / "cache"))
    from robustlens import fingerprint

    monkeypatch.setattr(fingerprint, "_MEMO", {})
    monkeypatch.setattr(fingerprint, "_LOADED", False)
    p = tmp_path / "f.bin"
    p.write_bytes(b"a" * 1000)
    d1 = fingerprint.file_digest(p)
    fingerprint.save_cache()
    assert (tmp_path / "cache" / "hashes.json").is_file()
    p.write_bytes(b"b" * 1000)  # same size
    _touch_later(p)
    assert fingerprint.file_digest(p) != d1
    assert fingerprint.file_digest(p) == hashlib.sha256(b"b" * 1000).hexdigest()


def test_mesh_files_follow_materials_and_gltf_resources(tmp_path):
    """mesh_files lists what the mesh loader reads, in reading order: the MTL and the
    map_Kd texture it names (after options); a glTF's external buffer and the image named by
    a %20-quoted URI (an embedded data: buffer is no file). A bump map is not listed: the
    loader never reads it, so it cannot change a render."""
    from conftest import gltf_document, write_gltf_file

    from robustlens.fingerprint import mesh_files

    (tmp_path / "cube.obj").write_text(CUBE)
    (tmp_path / "m.mtl").write_text("newmtl mat\nmap_Kd -s 1 1 1 tex.png\nbump nrm.png\n")
    for name in ("tex.png", "nrm.png", "my tex.png"):
        Image.fromarray(np.full((4, 4, 3), 100, np.uint8)).save(tmp_path / name)
    names = [p.name for p in mesh_files(tmp_path / "cube.obj")]
    assert names == ["cube.obj", "m.mtl", "tex.png"]
    doc, binary = gltf_document([[0, 0, 0], [1, 0, 0], [0, 1, 0]], [[0, 1, 2]],
                                uv=[[0, 0], [1, 0], [0, 1]],
                                material={"pbrMetallicRoughness": {
                                    "baseColorTexture": {"index": 0}}})
    doc["textures"] = [{"source": 0}]
    doc["images"] = [{"uri": "my%20tex.png"}]
    doc["buffers"].append({"uri": "data:application/octet-stream;base64,AAAA", "byteLength": 3})
    write_gltf_file(tmp_path / "s.gltf", doc, binary, bin_name="s.bin")
    assert [p.name for p in mesh_files(tmp_path / "s.gltf")] == ["s.gltf", "s.bin", "my tex.png"]


def test_killed_score_resumes_and_cleans_temps(tmp_path, capsys, monkeypatch):
    """A kill after scoring (while plotting) left a 0-byte temp file; the rerun removes it
    and scores nothing again."""
    monkeypatch.setenv("ROBUSTLENS_CACHE", str(tmp_path / "cache"))
    import robustlens.figures as figures

    for name, v in (("a.png", 90), ("b.png", 160)):
        Image.fromarray(np.full((32, 32, 3), v, np.uint8)).save(tmp_path / name)
    (tmp_path / "boxes.csv").write_text("image,label,xmin,ymin,xmax,ymax\n"
                                        "a.png,class_0,2,2,20,20\nb.png,class_1,4,4,30,30\n")
    out = tmp_path / "out"
    args = ["score", "--data", str(tmp_path / "boxes.csv"), "--model", f"python:{TINY}:build",
            "--input-size", "32", "--cam", "gradcam", "--n-boot", "10", "--out", str(out)]

    def killed(*a, **k):
        (out / ".class_ranking.png.abcd1234.tmp.png").write_bytes(b"")
        raise KeyboardInterrupt

    with monkeypatch.context() as m:
        m.setattr(figures, "class_ranking_figure", killed)
        code, _, _ = run_cli(args, capsys)
    assert code == 130
    assert list((out / ".partial").glob("*.partial.csv"))
    code, _, err = run_cli(args, capsys)
    assert code == 0, err
    assert "resuming: 2 of 2 images already scored" in err
    assert not (out / ".class_ranking.png.abcd1234.tmp.png").exists()
    assert not (out / ".partial").exists() and (out / "class_ranking.png").is_file()


def test_map_pair_is_written_together(tmp_path, monkeypatch):
    """A failure while plotting leaves the previous map.nc and map.png untouched."""
    import xarray as xr

    import robustlens.figures as plot
    from robustlens.study.steps import save_map_and_plot

    ds = xr.Dataset({"score": ("azimuth", np.array([0.1, 0.2]))},
                    coords={"azimuth": [0.0, 180.0]})
    (tmp_path / "map.nc").write_bytes(b"old nc")
    (tmp_path / "map.png").write_bytes(b"old png")

    def fail(*a, **k):
        raise RuntimeError("disk full")

    monkeypatch.setattr(plot, "map_figure", fail)
    with pytest.raises(RuntimeError):
        save_map_and_plot(ds, tmp_path)
    assert (tmp_path / "map.nc").read_bytes() == b"old nc"
    assert (tmp_path / "map.png").read_bytes() == b"old png"
    assert sorted(p.name for p in tmp_path.iterdir()) == ["map.nc", "map.png"]
