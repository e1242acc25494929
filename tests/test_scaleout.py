"""Scale-out: chunked maps that resume after a kill, and a study on a real 2-node Ray cluster
that loses its worker node mid-run. Both must end with the maps of an undisturbed local run."""

from __future__ import annotations

import json
import os
import signal
import subprocess
import sys
import threading
import time
from pathlib import Path

import numpy as np
import pandas as pd
import pytest
import xarray as xr
import yaml
from conftest import run_cli

from robustlens.errors import BadInput
from robustlens.semantic import SemanticMap, parse_grids
from robustlens.semantic.chunks import (
    chunk_bounds,
    chunk_files,
    clear_chunks,
    run_chunked_map,
)
from robustlens.study import Study, load_config

SRC = Path(__file__).resolve().parent.parent / "src"
MAP = Path("maps") / "builtin_efficientnet_lite0" / "demo_mug"

TINY = {
    "seed": 1,
    "semantic": {"meshes": ["demo:mug"], "grid": {"azimuth": "0:360:30", "elevation": "0:60:30"},
                 "curve": None, "batch_size": 2, "chunk_size": 2},
    "regions": {"starts": [[180, 10]], "methods": ["oir_b"], "max_evals": 16},
    "representation": {"enabled": False},
    "turntable": False,
    "report": False,
}


def write_cfg(path: Path, cfg: dict) -> Path:
    path.write_text(yaml.safe_dump(cfg))
    return path


def assert_same_map(a_path: Path, b_path: Path) -> None:
    a, b = xr.load_dataset(a_path), xr.load_dataset(b_path)
    assert a.sizes == b.sizes and list(a.coords) == list(b.coords)
    for c in a.coords:
        np.testing.assert_array_equal(a[c].values, b[c].values)
        assert a[c].attrs == b[c].attrs
    assert a.attrs == b.attrs and a["score"].attrs == b["score"].attrs
    np.testing.assert_allclose(a["score"].values, b["score"].values, atol=2e-3)
    assert (a["top1"].values == b["top1"].values).mean() >= 0.95  # ties may flip near 2e-3


# ------------------------------------------------------------------ chunks, in process
def test_chunk_bounds_cover_the_grid_in_order():
    assert chunk_bounds(10, 4) == [(0, 4), (4, 8), (8, 10)]
    assert chunk_bounds(3, 256) == [(0, 3)]
    with pytest.raises(BadInput, match="chunk_size 0"):
        chunk_bounds(3, 0)


class _Crash(Exception):
    pass


def test_chunked_map_equals_plain_map_and_resumes(tmp_path, default_model, renderer):
    axes = parse_grids(["azimuth=0:360:45", "elevation=0:60:30"])   # 16 poses
    plain = SemanticMap(axes, batch_size=4).run(default_model, _mug(), 504, renderer,
                                                mesh_name="demo:mug").map_
    # chunk size a multiple of the batch size: the very same batches -> identical numbers
    full = run_chunked_map(SemanticMap(axes, batch_size=4), default_model, _mug(), 504,
                           tmp_path / "a", None, renderer, chunk_size=8, mesh_name="demo:mug")
    xr.testing.assert_identical(plain, full)

    # a run that dies after two of five chunks leaves exactly those two on disk ...
    saved: list[int] = []

    class DiesAfterTwo:
        def map_chunks(self, clf, mesh, mesh_hash, job, todo, rend, on_chunk, progress):
            from robustlens.semantic.chunks import compute_chunk

            for a, b in todo[:2]:
                on_chunk(a, b, *compute_chunk(clf, mesh, job, a, b, rend))
                saved.append(a)
            raise _Crash

    folder = tmp_path / "b"
    with pytest.raises(_Crash):
        run_chunked_map(SemanticMap(axes, batch_size=4), default_model, _mug(), 504, folder,
                        DiesAfterTwo(), renderer, chunk_size=3, mesh_name="demo:mug")
    assert len(chunk_files(folder)) == 2 and saved == [0, 3]
    # ... and the next run computes only the other three, says so, and ends equal
    logs: list[str] = []
    asked: list[list[tuple[int, int]]] = []

    class Records:
        def map_chunks(self, clf, mesh, mesh_hash, job, todo, rend, on_chunk, progress):
            from robustlens.semantic.chunks import compute_chunks_inline

            asked.append(list(todo))
            compute_chunks_inline(clf, mesh, job, todo, rend, on_chunk, progress)

    ds = run_chunked_map(SemanticMap(axes, batch_size=4), default_model, _mug(), 504, folder,
                         Records(), renderer, chunk_size=3, mesh_name="demo:mug", log=logs.append)
    assert logs == ["resumed map builtin:efficientnet_lite0 demo:mug at 6/16 poses"]
    assert asked == [[(6, 9), (9, 12), (12, 15), (15, 16)]]
    np.testing.assert_allclose(ds["score"].values, plain["score"].values, atol=2e-3)
    assert ds.attrs == plain.attrs
    # chunks of another map (here another class) are never reused
    logs.clear()
    run_chunked_map(SemanticMap(axes, batch_size=4), default_model, _mug(), 505, folder,
                    None, renderer, chunk_size=3, mesh_name="demo:mug", log=logs.append)
    assert logs == []
    clear_chunks(folder)
    assert chunk_files(folder) == []


def _mug():
    from robustlens.render import load_mesh

    return load_mesh("demo:mug")


# ------------------------------------------------------------------ bad input
@pytest.mark.parametrize("ray,match", [
    ({"num_cpu": 1}, "field ray.num_cpu: Extra inputs are not permitted"),
    ({"num_cpus": "many"}, "field ray.num_cpus:"),
    ({"max_retries": -1}, "field ray.max_retries:"),
])
def test_ray_config_errors_name_the_field(tmp_path, ray, match):
    with pytest.raises(BadInput, match=match):
        load_config(write_cfg(tmp_path / "c.yaml", {**TINY, "ray": ray}))


def test_unreachable_ray_address_is_one_line_exit_2(tmp_path, capsys):
    cfg = write_cfg(tmp_path / "c.yaml", TINY)
    out = tmp_path / "out"
    code, _, err = run_cli(["-q", "run", str(cfg), "--out", str(out), "--ray", "127.0.0.1:9"],
                           capsys)
    assert code == 2
    assert err.strip().splitlines() == [
        "error: --ray 127.0.0.1:9: cannot reach 127.0.0.1:9 (no Ray head node answering there)"]
    assert not out.exists()


def test_ray_address_errors_name_who_gave_the_address(tmp_path, capsys):
    """The address from ``--ray`` is named by the flag, the one from the config by its field,
    a Python caller reads the parameter name; the message itself never spells a flag."""
    from robustlens.cli.params import cli_message
    from robustlens.study.config import config_error
    from robustlens.study.executor import RayExecutor

    for param, cli, run in [("ray", "--ray", "--ray"),
                            ("ray.address", "ray.address", "config ray.address")]:
        with pytest.raises(BadInput) as exc:
            RayExecutor("127.0.0.1:9", connect_timeout=0.5, param=param).start()
        e = exc.value
        assert (e.param, e.value) == (param, "127.0.0.1:9") and "--" not in e.message
        assert str(e) == f"{param} 127.0.0.1:9: cannot reach 127.0.0.1:9 (no Ray head node " \
                         f"answering there)"
        assert cli_message(e).startswith(f"{cli} 127.0.0.1:9: cannot reach")
        assert str(config_error(e, flags={"ray": "--ray"})).startswith(
            f"{run} 127.0.0.1:9: cannot reach")
    cfg = write_cfg(tmp_path / "c.yaml", {**TINY, "ray": {"address": "127.0.0.1:9"}})
    code, _, err = run_cli(["-q", "run", str(cfg), "--out", str(tmp_path / "out")], capsys)
    assert code == 2 and err.strip() == ("error: config ray.address 127.0.0.1:9: cannot reach "
                                         "127.0.0.1:9 (no Ray head node answering there)")
    with pytest.raises(BadInput) as exc:
        RayExecutor("nonsense", param="ray.address").start()
    assert exc.value.message == "expected local, auto, HOST:PORT or ray://HOST:PORT"


# ------------------------------------------------------------------ kill -9 mid-map
@pytest.mark.slow
def test_kill_9_mid_map_then_resume(tmp_path, capsys):
    cfg = dict(TINY, regions={"enabled": False})
    cfg["semantic"] = {**TINY["semantic"], "grid": {"azimuth": "0:360:10",
                                                   "elevation": "0:60:30"},
                       "batch_size": 4, "chunk_size": 8}                 # 72 poses, 9 chunks
    path = write_cfg(tmp_path / "c.yaml", cfg)
    out = tmp_path / "killed"
    env = {**os.environ, "PYTHONPATH": str(SRC)}
    proc = subprocess.Popen([sys.executable, "-c", "from robustlens.cli import main; main()",
                             "-q", "run", str(path), "--out", str(out)], env=env,
                            stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.time() + 240
    while len(chunk_files(out / MAP)) < 2:
        assert proc.poll() is None, proc.stderr.read().decode()
        assert time.time() < deadline, "no chunk written in time"
        time.sleep(0.02)
    os.kill(proc.pid, signal.SIGKILL)
    proc.wait()
    k = 8 * len(chunk_files(out / MAP))
    assert 0 < k < 72 and not (out / MAP / "map.nc").exists()

    code, _, err = run_cli(["run", str(path), "--out", str(out)], capsys)
    assert code == 0, err
    resumed = [ln for ln in err.splitlines() if ln.startswith("resumed")]
    assert len(resumed) == 1
    k2 = int(resumed[0].split(" at ")[1].split("/")[0])
    assert resumed[0] == f"resumed map builtin:efficientnet_lite0 demo:mug at {k2}/72 poses"
    assert k <= k2 < 72                       # chunks written after the count above are kept too
    assert chunk_files(out / MAP) == []
    ref = tmp_path / "ref"
    Study(load_config(path), out=ref, log=lambda m: None).run()
    assert_same_map(out / MAP / "map.nc", ref / MAP / "map.nc")


# ------------------------------------------------------------------ a real 2-node cluster
@pytest.fixture
def cluster():
    ray = pytest.importorskip("ray")
    from ray.cluster_utils import Cluster

    small = {"num_cpus": 1, "object_store_memory": 80 * 2**20}
    c = Cluster(initialize_head=True, head_node_args={**small, "include_dashboard": False})
    worker = c.add_node(**small)
    c.wait_for_nodes()
    try:
        yield c, worker
    finally:
        if ray.is_initialized():
            ray.shutdown()
        c.shutdown()


@pytest.mark.slow
def test_study_on_two_nodes_survives_losing_one(tmp_path, cluster):
    c, worker = cluster
    # 24 poses = 12 chunk tasks, 1 region task, 1 CAM shard of 2 rendered demo images
    cfg = dict(TINY, representation={"demo_images_per_object": 2, "batch_size": 1,
                                     "attack_classes": 0})
    path = write_cfg(tmp_path / "c.yaml", cfg)
    out = tmp_path / "ray"
    removed = threading.Event()

    def remove_worker_mid_map() -> None:
        while len(chunk_files(out / MAP)) < 2:
            time.sleep(0.02)
        c.remove_node(worker)
        removed.set()

    threading.Thread(target=remove_worker_mid_map, daemon=True).start()
    study = Study(load_config(path), out=out, log=lambda m: None, ray=c.address)
    study.run()
    assert removed.is_set()
    # the workers ran this checkout's code, not another robustlens on the path
    assert study.executor_.worker_files_ and all(
        f.startswith(str(SRC)) for f in study.executor_.worker_files_.values())
    prov = json.loads((out / "provenance.json").read_text())
    assert prov["executor"] == {**prov["executor"], "kind": "ray", "address": c.address}
    assert set(prov["steps"]) == {"map builtin:efficientnet_lite0 demo:mug",
                                  "views builtin:efficientnet_lite0 demo:mug",
                                  "regions builtin:efficientnet_lite0 demo:mug oir_b",
                                  "demo dataset", "scores builtin:efficientnet_lite0 demo gradcam++"}
    for step in prov["steps"].values():
        assert step["nodes"] and all(isinstance(n, str) and len(n) == 56 for n in step["nodes"])
    assert chunk_files(out / MAP) == []

    ref = tmp_path / "local"
    local = Study(load_config(path), out=ref, log=lambda m: None)
    local.run()
    assert_same_map(out / MAP / "map.nc", ref / MAP / "map.nc")
    a, b = (json.loads((d / "regions" / MAP.relative_to("maps") / "oir_b" /
                        "regions.json").read_text())["regions"][0] for d in (out, ref))
    np.testing.assert_allclose(a["lower"] + a["upper"], b["lower"] + b["upper"], atol=1e-6)
    cams = [pd.read_csv(d / "representation" / "builtin_efficientnet_lite0" / "demo" /
                        "gradcampp" / "image_scores.csv") for d in (out, ref)]
    assert list(cams[0]["image"]) == list(cams[1]["image"]) and len(cams[0]) == 2
    np.testing.assert_allclose(cams[0]["rs"], cams[1]["rs"], atol=1e-4)
    lprov = json.loads((ref / "provenance.json").read_text())
    assert lprov["executor"] == {"kind": "local"}
    assert all(s["nodes"][0].startswith("local:") for s in lprov["steps"].values())

    # bad workers: the start-up check names the node and what is missing
    from robustlens.study.executor import RayExecutor

    with pytest.raises(BadInput, match=r"^ray node [0-9a-f]{56}: cannot find /no/such/model.pt$"):
        RayExecutor(c.address).start(["/no/such/model.pt"])
    with pytest.raises(BadInput, match=r"^ray .*: no node has num_cpus=1 and num_gpus=1 "):
        RayExecutor(c.address, num_gpus=1).start()
    fake = tmp_path / "fake" / "robustlens"
    fake.mkdir(parents=True)
    (fake / "__init__.py").write_text("raise ImportError('not installed on this node')\n")
    ex = RayExecutor(c.address)
    ex._runtime_env = lambda: {"env_vars": {"PYTHONPATH": str(fake.parent)}}
    with pytest.raises(BadInput, match=r"^ray node [0-9a-f]{56}: cannot import robustlens "
                                       r"\(ImportError: not installed on this node\)$"):
        ex.start()
