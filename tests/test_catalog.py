"""pkg: meshes from installed packages: catalog, resolution, classes, the `meshes` command,
and CLI exit codes for bad mesh files."""

from __future__ import annotations

import numpy as np
import pytest
from conftest import run_cli

from robustlens.errors import BadInput
from robustlens.render import demo_class, load_mesh
from robustlens.render.catalog import CATALOG, catalog_entry
from robustlens.render.materials import materials_of

INSTALLED = [s for s, e in CATALOG.items() if e.file() is not None]


def test_catalog_entries_are_complete_and_licensed():
    assert len(CATALOG) >= 8 and len({e.class_id for e in CATALOG.values()}) >= 6
    for spec, e in CATALOG.items():
        assert spec.startswith("pkg:") and e.up in ("y", "z")
        assert e.licence and e.attribution and "==" in e.distribution
        # TurboSquid-derived LIBERO objects must never be listed
        assert "turbosquid" not in e.path.lower()
        assert demo_class(spec) == e.class_name


def test_catalog_classes_match_imagenet_labels():
    from pathlib import Path

    import robustlens

    labels = (Path(robustlens.__file__).parent / "data" / "imagenet_classes.txt").read_text()
    names = labels.splitlines()
    for e in CATALOG.values():
        assert names[e.class_id] == e.class_name


def test_unknown_pkg_spec():
    with pytest.raises(BadInput, match="unknown package mesh.*robustlens meshes"):
        load_mesh("pkg:pybullet/nothing")
    with pytest.raises(BadInput, match="unknown package mesh"):
        catalog_entry("pkg:x")


def test_missing_package_names_the_pip_install(monkeypatch):
    from robustlens.render import catalog

    monkeypatch.setattr(catalog.CatalogEntry, "file", lambda self: None)
    with pytest.raises(BadInput, match="pip install pybullet==3.2.7"):
        load_mesh("pkg:pybullet/soccerball")


@pytest.mark.skipif("pkg:pybullet/soccerball" not in INSTALLED, reason="pybullet not installed")
def test_pkg_soccerball_is_textured_z_up_and_normalised():
    m = load_mesh("pkg:pybullet/soccerball")
    mat = materials_of(m)
    assert mat is not None and mat.textured
    assert np.isclose(np.linalg.norm(m.vertices, axis=1).max(), 1.0)
    plain = load_mesh("pkg:pybullet/soccerball", texture=False)
    assert materials_of(plain) is None


@pytest.mark.skipif("pkg:pybullet/mug" not in INSTALLED, reason="pybullet not installed")
def test_pkg_mug_up_axis_is_applied():
    """pybullet's mug is z-up: after loading, its height (opening up) lies along +y."""
    m = load_mesh("pkg:pybullet/mug")
    ext = m.bounds[1] - m.bounds[0]
    assert ext[1] > 0.8 * ext[2] and m.vertices[:, 1].max() > 0


def test_meshes_command_lists_catalog(capsys):
    rc, out, err = run_cli(["meshes", "--attribution"], capsys)
    assert rc == 0
    for spec in CATALOG:
        assert spec in out
    assert "CC-BY-4.0" in out and "Google Scanned Objects" in out and "demo:mug" in out


def test_cli_refuses_nan_mesh_with_exit_2(tmp_path, capsys):
    p = tmp_path / "nan.obj"
    p.write_text("v 0 0 0\nv nan 0 0\nv 0 1 0\nv 1 1 0\nf 1 2 3\nf 1 3 4\n")
    out = tmp_path / "out"
    rc, _, err = run_cli(["map", "--mesh", str(p), "--class", "0", "--grid",
                          "azimuth=0:360:180", "--out", str(out)], capsys)
    assert rc == 2
    lines = err.strip().splitlines()
    assert len(lines) == 1 and "nan.obj" in lines[0] and "NaN" in lines[0]
    assert not (out / "map.nc").exists()


@pytest.mark.slow
def test_study_runs_on_a_pkg_mesh(tmp_path):
    """A study resolves pkg: meshes everywhere it reads a mesh (step keys hash the file)."""
    import yaml

    from robustlens.study import Study, load_config

    cfg = {"models": ["default"],
           "semantic": {"meshes": ["pkg:pybullet/soccerball"],
                        "grid": {"azimuth": "0:360:180", "elevation": "10:30:20"},
                        "curve": None},
           "regions": {"enabled": False}, "representation": {"enabled": False},
           "turntable": False, "report": False}
    (tmp_path / "s.yaml").write_text(yaml.safe_dump(cfg))
    Study(load_config(tmp_path / "s.yaml"), out=tmp_path / "o", log=lambda m: None).run()
    import xarray as xr

    ds = xr.load_dataset(tmp_path / "o" / "maps" / "builtin_efficientnet_lite0" /
                         "pkg_pybullet_soccerball" / "map.nc", engine="h5netcdf")
    assert ds.attrs["class_name"] == "soccer ball" and float(ds["score"].max()) > 0.5
