"""Bad input, command by command: a table of commands x inputs.

Every case must end with exit code 2, exactly one line on stderr that names the culprit,
and no result file. A new command gets the same coverage by adding one row to COMMANDS
(its valid base arguments and result files); the inputs that apply to it run automatically.
Unusual but valid input (brackets and rich markup in paths) must simply work.
"""

from __future__ import annotations

import shutil
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np
import pytest
import yaml
from conftest import run_cli
from PIL import Image

TINY = Path(__file__).resolve().parent / "data" / "tiny_model.py"
UNWRITABLE = "/proc/robustlens_no_such_out"  # cannot be created, even by root


@dataclass
class Env:
    tmp: Path
    out: Path
    csv: Path
    cfg: Path
    model: str = f"python:{TINY}:build"
    extra: dict[str, str] = field(default_factory=dict)


def _images_csv(tmp: Path) -> Path:
    for name in ("a.png", "b.png"):
        Image.fromarray(np.full((32, 32, 3), 90 if name == "a.png" else 160, np.uint8)).save(
            tmp / name)
    p = tmp / "boxes.csv"
    p.write_text("image,label,xmin,ymin,xmax,ymax\na.png,class_0,2,2,20,20\n"
                 "b.png,class_1,4,4,30,30\n")
    return p


def study_cfg(env: Env, **patch: object) -> dict:
    cfg = {"models": [{"spec": env.model, "input_size": 32}],
           "semantic": {"meshes": [{"mesh": "demo:mug", "class": 0}],
                        "grid": {"azimuth": "0:360:180"}, "curve": None, "batch_size": 4},
           "regions": {"enabled": False},
           "representation": {"datasets": [str(env.csv)], "cams": ["gradcam"],
                              "attacks": False, "batch_size": 2},
           "turntable": False, "report": False}
    for k, v in patch.items():
        sect, _, sub = k.partition("__")
        if sub:
            cfg[sect][sub] = v
        else:
            cfg[sect] = v
    return cfg


def _write_cfg(env: Env, cfg: dict | str) -> Path:
    env.cfg.write_text(cfg if isinstance(cfg, str) else yaml.safe_dump(cfg))
    return env.cfg


# --------------------------------------------------------------------------- commands
# name -> (valid base arguments, result files relative to --out)
COMMANDS: dict[str, tuple[Callable[[Env], list[str]], list[str]]] = {
    "map": (lambda e: ["map", "--mesh", "demo:mug", "--class", "0", "--grid",
                       "azimuth=0:360:180", "--model", e.model, "--input-size", "32",
                       "--image-size", "32", "--out", str(e.out)], ["map.nc", "map.png"]),
    "regions": (lambda e: ["regions", "--mesh", "demo:mug", "--class", "0", "--start",
                           "180,10", "--max-evals", "8", "--model", e.model, "--input-size",
                           "32", "--image-size", "32", "--out", str(e.out)], ["regions.json"]),
    "srvr": (lambda e: ["srvr", "--mesh", "demo:mug", "--class", "0", "--start", "180,10",
                        "--max-evals", "8", "--model", e.model, "--input-size", "32",
                        "--image-size", "32", "--out", str(e.out)], ["srvr.csv"]),
    "score": (lambda e: ["score", "--data", str(e.csv), "--model", e.model, "--input-size",
                         "32", "--cam", "gradcam", "--n-boot", "10", "--out", str(e.out)],
              ["class_scores.csv", "image_scores.csv"]),
    "attack": (lambda e: ["attack", "--data", str(e.csv), "--classes", "class_0", "--model",
                          e.model, "--input-size", "32", "--cam", "gradcam", "--out",
                          str(e.out)], ["attacks.csv"]),
    "run": (lambda e: ["run", str(_write_cfg(e, study_cfg(e))), "--out", str(e.out)],
            ["provenance.json", "config.yaml"]),
}
RENDERING = {"map", "regions", "srvr"}
WITH_MODEL = {"map", "regions", "srvr", "score", "attack"}


def _replace(args: list[str], flag: str, value: str) -> list[str]:
    a = list(args)
    a[a.index(flag) + 1] = value
    return a


def _model(env: Env, args: list[str], func: str) -> list[str]:
    if args[0] == "run":
        return ["run", str(_write_cfg(env, study_cfg(env, models=[
            {"spec": f"python:{TINY}:{func}", "input_size": 32}]))), "--out", str(env.out)]
    return _replace(args, "--model", f"python:{TINY}:{func}")


def _out_file(env: Env, args: list[str]) -> list[str]:
    env.out.parent.mkdir(parents=True, exist_ok=True)
    env.out.write_text("not a folder")
    return args


# input id -> (commands it applies to, transform(env, args) -> args, culprit in the message)
INPUTS: dict[str, tuple[set[str], Callable[[Env, list[str]], list[str]], str]] = {
    "out-unwritable": (set(COMMANDS),
                       lambda e, a: _replace(a, "--out", UNWRITABLE), "robustlens_no_such_out"),
    "out-under-a-file": (set(COMMANDS), lambda e, a: _replace(
        _out_file(e, a), "--out", str(e.out / "sub")), "res/out"),
    "out-is-a-file": (set(COMMANDS), _out_file, "res/out"),
    "model-raises": (WITH_MODEL | {"run"}, lambda e, a: _model(e, a, "boom"),
                     "boom() in"),
    "model-sys-exit": (WITH_MODEL | {"run"}, lambda e, a: _model(e, a, "leave"),
                       "sys.exit(3)"),
    "image-size-0": (RENDERING, lambda e, a: _replace(a, "--image-size", "0"), "--image-size"),
    "image-size-neg": (RENDERING, lambda e, a: _replace(a, "--image-size", "-5"),
                       "--image-size"),
    "nan-model-first-batch": ({"map"}, lambda e, a: _model(e, a, "build_nan"),
                              "non-finite scores"),
    "grid-nan": ({"map"}, lambda e, a: _replace(a, "--grid", "azimuth=nan:360:10"),
                 "azimuth"),
    "grid-inf": ({"map"}, lambda e, a: _replace(a, "--grid", "elevation=0:inf:10"),
                 "elevation"),
    "grid-denormal-step": ({"map"}, lambda e, a: _replace(a, "--grid", "azimuth=0:360:1e-320"),
                           "step"),
    "grid-1e9-poses": ({"map"}, lambda e, a: a[:a.index("--grid")] + [
        "--grid", "azimuth=0:360:0.036", "--grid", "elevation=-10:90:0.1",
        "--grid", "distance=2:12:0.1"] + a[a.index("--grid") + 2:], "1,000,000,000 poses"),
    "samples-huge": ({"map"}, lambda e, a: a + ["--samples", "100000000"], "--samples"),
    "threshold-above-1": ({"regions", "srvr"}, lambda e, a: a + ["--threshold", "1.5"],
                          "--threshold"),
    "threshold-0": ({"regions", "srvr"}, lambda e, a: a + ["--threshold", "0"],
                    "--threshold"),
    "mesh-missing-latin1-name": (RENDERING, lambda e, a: _replace(
        a, "--mesh", __import__("os").fsdecode(bytes(e.tmp) + b"/caf\xe9.obj")), "caf\\xe9.obj"),
    "mesh-missing-brackets": (RENDERING, lambda e, a: _replace(a, "--mesh", "dir/br[/x].obj"),
                              "dir/br[/x].obj"),
    # one line naming the file and the reason, no overflow warnings
    "mesh-1e308-coordinates": (RENDERING, lambda e, a: _replace(a, "--mesh", _big_mesh(e)),
                               "big.obj: coordinates too large"),
    "batch-size-0": ({"map"}, lambda e, a: a + ["--batch-size", "0"], "--batch-size"),
    # study configs
    "cfg-empty": ({"run"}, lambda e, a: ["run", str(_write_cfg(e, "# nothing\n")), "--out",
                                         str(e.out)], "empty"),
    "cfg-duplicate-key": ({"run"}, lambda e, a: ["run", str(_write_cfg(
        e, "seed: 1\nturntable: false\nseed: 2\n")), "--out", str(e.out)], "duplicate key 'seed'"),
    "cfg-alias-bomb": ({"run"}, lambda e, a: ["run", str(_write_cfg(e, _ALIAS_BOMB)), "--out",
                                              str(e.out)], "aliases"),
    "cfg-too-big": ({"run"}, lambda e, a: ["run", str(_write_cfg(
        e, "# " + "x" * (2 << 20) + "\n")), "--out", str(e.out)], "bytes"),
    "cfg-curve-at-list": ({"run"}, lambda e, a: ["run", str(_write_cfg(e, study_cfg(
        e, semantic__curve={"param": "azimuth", "grid": "0:360:90", "at": [10]}))), "--out",
        str(e.out)], "semantic.curve.at"),
    "cfg-curve-at-text": ({"run"}, lambda e, a: ["run", str(_write_cfg(e, study_cfg(
        e, semantic__curve={"param": "azimuth", "grid": "0:360:90",
                            "at": {"elevation": "high"}}))), "--out", str(e.out)],
        "semantic.curve.at"),
    "cfg-grid-nan": ({"run"}, lambda e, a: ["run", str(_write_cfg(e, study_cfg(
        e, semantic__grid={"azimuth": "nan:360:10"}))), "--out", str(e.out)], "semantic.grid"),
    "cfg-grid-huge": ({"run"}, lambda e, a: ["run", str(_write_cfg(e, study_cfg(
        e, semantic__grid={"azimuth": "0:360:0.01", "elevation": "-10:90:0.01"}))), "--out",
        str(e.out)], "semantic.max_poses"),
    "cfg-bad-dataset-row": ({"run"}, lambda e, a: ["run", str(_write_cfg(e, study_cfg(e))),
                                                   "--out", str(e.out)]
                            if _break_csv(e) else a, "boxes.csv line 3"),
    "cfg-not-utf8": ({"run"}, lambda e, a: ["run", str(_write_bytes(e.cfg, b"seed: \xff\n")),
                                            "--out", str(e.out)], "UTF-8"),
    # round three (issue 22) and faithful models (issue 18)
    "interpolation-unknown": (WITH_MODEL, lambda e, a: a + ["--interpolation", "lanczos9"],
                              "--interpolation"),
    "criterion-unknown": ({"regions", "srvr"}, lambda e, a: a + ["--criterion", "accuracy"],
                          "--criterion"),
    "dataset-image-truncated": ({"score", "attack", "run"},
                                lambda e, a: a if _truncate(e.tmp / "b.png") else a, "b.png"),
    "cfg-interpolation-unknown": ({"run"}, lambda e, a: ["run", str(_write_cfg(e, study_cfg(
        e, models=[{"spec": e.model, "input_size": 32, "interpolation": "lanczos9"}]))),
        "--out", str(e.out)], "models.interpolation"),
    "cfg-batch-size-bool": ({"run"}, lambda e, a: ["run", str(_write_cfg(e, study_cfg(
        e, semantic__batch_size=True))), "--out", str(e.out)], "semantic.batch_size"),
    "cfg-regions-param-unknown": ({"run"}, lambda e, a: ["run", str(_write_cfg(e, study_cfg(
        e, regions={"params": ["azimuth", "bogus"]}))), "--out", str(e.out)],
        "regions.params"),
    "cfg-two-meshes-one-folder": ({"run"}, lambda e, a: ["run", str(_write_cfg(e, study_cfg(
        e, semantic__meshes=[{"mesh": m, "class": 0} for m in _twin_meshes(e)]))),
        "--out", str(e.out)], "a_b/obj.glb"),
}


def _truncate(p: Path) -> bool:
    data = p.read_bytes()
    p.write_bytes(data[: len(data) // 2])
    return True


def _twin_meshes(env: Env) -> list[str]:
    import trimesh

    out = []
    for d in ("a b", "a_b"):
        (env.tmp / d).mkdir(exist_ok=True)
        trimesh.creation.box().export(env.tmp / d / "obj.glb")
        out.append(str(env.tmp / d / "obj.glb"))
    return out

_ALIAS_BOMB = "a: &a [x, x, x, x, x, x, x, x, x]\n" + "".join(
    f"{chr(98 + i)}: &{chr(98 + i)} [{', '.join(['*' + chr(97 + i)] * 9)}]\n" for i in range(8))


def _big_mesh(env: Env) -> str:
    p = env.tmp / "big.obj"
    p.write_text("v 0 0 0\nv 1e308 0 0\nv 0 1e308 0\nv -1e308 -1e308 1e308\nf 1 2 3\nf 1 3 4\n")
    return str(p)


def _break_csv(env: Env) -> bool:
    env.csv.write_text(env.csv.read_text().replace("b.png,class_1,4,4,30,30",
                                                   "b.png,class_1,40,4,30,30"))
    return True


def _write_bytes(p: Path, data: bytes) -> Path:
    p.write_bytes(data)
    return p


CASES = [(cmd, inp) for inp, (cmds, _, _) in INPUTS.items() for cmd in COMMANDS if cmd in cmds]


@pytest.fixture()
def env(tmp_path) -> Env:
    return Env(tmp=tmp_path, out=tmp_path / "res" / "out", csv=_images_csv(tmp_path),
               cfg=tmp_path / "study.yaml")


@pytest.mark.parametrize("cmd,inp", CASES, ids=[f"{c}-{i}" for c, i in CASES])
def test_bad_input_table(env, capsys, monkeypatch, cmd, inp):
    monkeypatch.setenv("ROBUSTLENS_CACHE", str(env.tmp / "cache"))
    base, results = COMMANDS[cmd]
    _, transform, culprit = INPUTS[inp]
    args = transform(env, base(env))
    code, _, err = run_cli(["-q", *args], capsys)
    lines = err.strip().splitlines()
    assert code == 2, err
    assert len(lines) == 1 and lines[0].startswith("error: "), lines
    assert culprit in lines[0], lines[0]
    for r in results:
        assert not (env.out / r).exists()
        assert not (Path(UNWRITABLE) / r).exists()


def test_table_covers_every_command():
    from robustlens.cli import cli

    writing = {n for n, c in cli.commands.items()
               if any(p.name in ("out", "out_dir") for p in c.params)} - {"report"}
    assert writing <= set(COMMANDS), f"add {writing - set(COMMANDS)} to COMMANDS"


# ------------------------------------------------------------------ unusual but valid
def test_brackets_and_markup_in_paths_just_work(env, capsys, monkeypatch):
    monkeypatch.setenv("ROBUSTLENS_CACHE", str(env.tmp / "cache"))
    from robustlens.render.mesh import demo_meshes

    folder = env.tmp / "br["
    folder.mkdir()
    mesh = folder / "x].glb"
    shutil.copy(demo_meshes()["mug"], mesh)
    out = env.tmp / "o[bold red]"
    base, _ = COMMANDS["map"]
    labels = env.tmp / "labels.txt"
    labels.write_text("[bold red]\nb\nc\n")
    args = _replace(_replace(base(env), "--mesh", str(mesh)), "--out", str(out))
    code, _, err = run_cli([*args, "--labels", str(labels)], capsys)
    assert code == 0, err
    # printed verbatim, not as markup
    assert "br[/x].glb" in err and "o[bold red]" in err and "'[bold red]'" in err
    assert (out / "map.nc").is_file() and (out / "map.png").is_file()
    assert not (out / ".robustlens.lock").exists()


def test_study_with_bracket_mesh_reruns(env, capsys, monkeypatch):
    monkeypatch.setenv("ROBUSTLENS_CACHE", str(env.tmp / "cache"))
    from robustlens.render.mesh import demo_meshes

    mesh = env.tmp / "br[" / "x].glb"
    mesh.parent.mkdir()
    shutil.copy(demo_meshes()["mug"], mesh)
    cfg = study_cfg(env, semantic__meshes=[{"mesh": str(mesh), "class": "[bold red]"}],
                    representation={"enabled": False})
    labels = env.tmp / "labels.txt"
    labels.write_text("[bold red]\nb\nc\n")
    cfg["models"][0]["labels"] = str(labels)
    for _ in range(2):  # the rerun logs "reuse ..." with the path: must not crash either
        code, _, err = run_cli(["run", str(_write_cfg(env, cfg)), "--out", str(env.out)],
                               capsys)
        assert code == 0, err
    assert "br[/x].glb" in err


def test_second_run_into_a_locked_folder_is_refused(env, capsys):
    from robustlens.errors import BadInput
    from robustlens.io import locked_out_dir

    with locked_out_dir(env.out):
        with pytest.raises(BadInput, match="another robustlens run"), locked_out_dir(env.out):
            pass
        base, _ = COMMANDS["map"]
        code, _, err = run_cli(["-q", *base(env)], capsys)
        assert code == 2 and "another robustlens run" in err
    assert not (env.out / "map.nc").exists()


def test_torchscript_load_adds_no_warning_lines(env, capsys, monkeypatch):
    """torch.jit.load warns that it is deprecated on every load: not the user's business."""
    import warnings

    import torch

    from robustlens.models.registry import load_model

    spec_mod = __import__("importlib.util").util
    spec = spec_mod.spec_from_file_location("tiny_ts", TINY)
    mod = spec_mod.module_from_spec(spec)
    spec.loader.exec_module(mod)
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")
        torch.jit.script(mod.build()).save(str(env.tmp / "t.pt"))
    with warnings.catch_warnings(record=True) as seen:
        warnings.simplefilter("always")
        load_model(f"torchscript:{env.tmp / 't.pt'}", input_size=32)
    assert not [w for w in seen if "jit" in str(w.message)], [str(w.message) for w in seen]


@pytest.mark.parametrize("cmd", sorted(RENDERING))
def test_latin1_file_names_just_work(env, capsys, monkeypatch, cmd):
    """A file name that is not UTF-8 (latin-1 'café') arrives as surrogate escapes: it must
    load, and be written into NetCDF/CSV/JSON/plots as a printable name."""
    import os

    monkeypatch.setenv("ROBUSTLENS_CACHE", str(env.tmp / "cache"))
    from robustlens.render.mesh import demo_meshes

    mesh = Path(os.fsdecode(bytes(env.tmp) + b"/caf\xe9.glb"))
    shutil.copy(demo_meshes()["mug"], mesh)
    out = Path(os.fsdecode(bytes(env.tmp) + b"/out\xe9"))
    base, results = COMMANDS[cmd]
    code, _, err = run_cli(["-q", *_replace(_replace(base(env), "--mesh", str(mesh)),
                                            "--out", str(out))], capsys)
    assert code == 0, err
    for r in results:
        assert (out / r).is_file()


def test_real_process_stderr_is_one_line(env):
    """In a real process (pytest captures warnings in-process): numpy overflow warnings of a
    mesh with 1e308 coordinates must not add lines around the one error line."""
    import os
    import subprocess
    import sys

    src = str(Path(__file__).resolve().parent.parent / "src")
    proc = subprocess.run(
        [sys.executable, "-c", "from robustlens.cli import main; main()", "map", "--mesh",
         _big_mesh(env), "--class", "0", "--grid", "azimuth=0:360:180", "--model",
         f"python:{TINY}:build", "--out", str(env.out)],
        capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONPATH": src, "ROBUSTLENS_CACHE": str(env.tmp / "c")})
    assert proc.returncode == 2, proc.stderr
    assert len(proc.stderr.strip().splitlines()) == 1, proc.stderr
