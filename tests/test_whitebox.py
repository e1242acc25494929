"""White-box OIR_W (Mitsuba 3): known answers.

* renders against moderngl on the demo meshes (mask IoU, mean absolute pixel difference);
* image derivatives against converged central finite differences of the same renderer,
  on an analytic scene (a vertex-coloured sphere rotating in place) and on a real mesh:
  regression slope within 0.9-1.1 -- and a wrong-axis / wrong-sign derivative fails it;
* end to end through a smooth known classifier: the score gradient (torch -> Dr.Jit chain
  rule, per degree, sign) against finite differences of the same score function;
* the LLVM check: an old libLLVM gives a one-line reason instead of an abort;
* ``--grad`` on the CLI: a bad choice is a one-line error; mitsuba runs OIR_W end to end;
* samples per pixel (``--spp`` / ``--spp-grad``, ``regions.spp`` / ``regions.spp_grad``):
  integers >= 1, an error with grad fd;
* ``--max-evals`` with gradients: a paper OIR_W iteration costs 2^n (1 + n), and runs stay
  within the budget;
* a study with ``regions.grad: mitsuba``: records, gradient calls, reuse, the driver-only
  line under another executor.

Everything that needs Mitsuba is skipped, with the reason, when the ``whitebox`` extra (or
the libLLVM it needs) is absent. The real model's end-to-end agreement and noise over seeds
are measured by benchmarks/bench_whitebox.py (README, "White-box OIR_W").
"""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest
import torch
import trimesh
from conftest import run_cli


def _problem() -> str | None:
    from robustlens.render.diff import backend_problem

    return backend_problem()


PROBLEM = _problem()
needs_mitsuba = pytest.mark.skipif(PROBLEM is not None, reason=f"white-box backend: {PROBLEM}")
DEMOS = ["mug", "vase", "bucket", "chair", "table"]


def _slope(ad: torch.Tensor, fd: torch.Tensor) -> tuple[float, float]:
    """Least-squares slope of fd on ad through the origin, and their correlation."""
    a, f = ad.flatten().double(), fd.flatten().double()
    return float((a * f).sum() / (a * a).sum()), float(np.corrcoef(a.numpy(), f.numpy())[0, 1])


def _sphere() -> trimesh.Trimesh:
    """An icosphere with a smooth colour pattern in its vertex colours (the analytic scene:
    rotating it in place moves only the pattern, never the silhouette)."""
    from robustlens.render.materials import MATERIALS_KEY, Materials, Part

    m = trimesh.creation.icosphere(5)
    v = np.asarray(m.vertices)
    c = 0.5 + 0.45 * np.sin(4 * np.arctan2(v[:, 2], v[:, 0])) * \
        np.cos(3 * np.arcsin(np.clip(v[:, 1], -1, 1)))
    col = np.stack([c, 1 - c, 0.5 * np.ones_like(c), np.ones_like(c)], 1).astype(np.float32)
    m.metadata[MATERIALS_KEY] = Materials([Part(0, len(m.faces), np.ones(4, np.float32))],
                                          np.zeros((len(v), 2), np.float32), col)
    return m


def _fd_image(r, mesh, base: dict, name: str, h: float) -> torch.Tensor:
    plus, minus = dict(base), dict(base)
    plus[name] = base[name] + h
    minus[name] = base[name] - h
    ip = r.render(mesh, {k: np.array([v]) for k, v in plus.items()})[0]
    im = r.render(mesh, {k: np.array([v]) for k, v in minus.items()})[0]
    return (ip - im) / (2 * h)


# ---------------------------------------------------------------- no backend needed
def test_bad_grad_choice_is_one_line(capsys, tmp_path):
    code, _, err = run_cli(["regions", "--mesh", "demo:mug", "--grad", "adjoint",
                            "--out", str(tmp_path / "o")], capsys)
    assert code == 2
    assert "--grad 'adjoint': unknown gradient source; expected one of fd, mitsuba" in err
    assert len(err.strip().splitlines()) == 1


def test_study_config_knows_grad():
    from pydantic import ValidationError

    from robustlens.study.config import RegionsConfig

    assert RegionsConfig().grad == "fd"
    assert RegionsConfig(grad="mitsuba").grad == "mitsuba"
    with pytest.raises(ValidationError):
        RegionsConfig(grad="adjoint")


@pytest.mark.skipif(PROBLEM is None, reason="the white-box backend is installed here")
def test_missing_backend_is_one_line(capsys, tmp_path):
    code, _, err = run_cli(["regions", "--mesh", "demo:mug", "--method", "oir_w", "--grad",
                            "mitsuba", "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and err.strip().startswith("error: --grad mitsuba:")
    assert len(err.strip().splitlines()) == 1


# ---------------------------------------------------------------- LLVM check
OLD_LLVM = Path("/usr/lib/x86_64-linux-gnu/libLLVM-15.so.1")


@needs_mitsuba
@pytest.mark.skipif(not OLD_LLVM.exists(), reason="no libLLVM 15 on this machine to try")
def test_old_llvm_gives_a_reason_not_an_abort():
    code = ("from robustlens.render.diff import backend_problem; p = backend_problem(); "
            "print(p); raise SystemExit(0 if p else 3)")
    env = dict(os.environ, DRJIT_LIBLLVM_PATH=str(OLD_LLVM))
    out = subprocess.run([sys.executable, "-c", code], env=env, capture_output=True, text=True,
                         timeout=120)
    assert out.returncode == 0, out.stdout + out.stderr
    assert "libLLVM 15.0" in out.stdout and "make whitebox" in out.stdout


# ---------------------------------------------------------------- renders
@needs_mitsuba
def test_renders_match_moderngl():
    """Same camera, lights, materials and normalisation: silhouettes agree (IoU) and so do
    the colours (mean absolute difference); the smooth closed vase agrees closely."""
    from robustlens.render import MeshRenderer, load_mesh
    from robustlens.render.diff import DiffMeshRenderer

    gl, dm = MeshRenderer(64), DiffMeshRenderer(64, spp=32)
    poses = {"azimuth": np.array([30.0, 130.0, 250.0]),
             "elevation": np.array([20.0, 30.0, -5.0]),
             "light_azimuth": np.array([0.0, 60.0, 200.0]),
             "light_elevation": np.array([90.0, 45.0, 30.0]),
             "object_r": np.array([1.0, 0.8, 0.5]), "background_b": np.array([0.0, 0.3, 0.6])}
    report = {}
    for name in DEMOS:
        mesh = load_mesh(f"demo:{name}")
        a, b = gl.render(mesh, poses), dm.render(mesh, poses)
        bg = torch.tensor([0.0, 0.0, 0.0])
        ma = (a - bg[:, None, None]).abs().sum(1) > 0.02
        mb = (b - bg[:, None, None]).abs().sum(1) > 0.02
        ma, mb = ma[0], mb[0]  # black background in the first pose
        iou = float((ma & mb).sum() / (ma | mb).sum())
        mad = float((a - b).abs().mean())
        report[name] = (iou, mad)
        assert iou > 0.9, report
        assert mad < 0.035, report
    assert report["vase"][1] < 0.008, report
    # a mirrored image (wrong camera handedness) does not pass
    mesh = load_mesh("demo:mug")
    a, b = gl.render(mesh, poses), dm.render(mesh, poses)
    assert float((a - b.flip(-1)).abs().mean()) > 2 * report["mug"][1]


# ---------------------------------------------------------------- image derivatives
@needs_mitsuba
@pytest.mark.parametrize("scene,params", [
    ("sphere", [("azimuth", 0.25), ("elevation", 0.25), ("light_elevation", 1.0)]),
    ("mug", [("azimuth", 0.25), ("distance", 0.01), ("object_g", 0.02)]),
])
def test_image_derivatives_match_finite_differences(scene, params):
    from robustlens.render import load_mesh
    from robustlens.render.diff import DiffMeshRenderer

    mesh = _sphere() if scene == "sphere" else load_mesh("demo:mug")
    r = DiffMeshRenderer(64, spp=1024, spp_grad=64)
    base = {"azimuth": 40.0, "elevation": 20.0, "distance": 2.732, "light_elevation": 60.0,
            "object_g": 0.8}
    derivs = {}
    for name, h in params:
        _, ad = r.image_derivative(mesh, base, name)
        fd = _fd_image(r, mesh, base, name, h)
        slope, corr = _slope(ad, fd)
        derivs[name] = (ad, fd)
        assert 0.9 <= slope <= 1.1 and corr > 0.9, (scene, name, slope, corr)
    # negative controls: the wrong sign, and the other axis, fail the same check
    (n1, (ad1, fd1)), (n2, (ad2, fd2)) = list(derivs.items())[:2]
    assert not 0.9 <= _slope(-ad1, fd1)[0] <= 1.1
    assert not 0.9 <= _slope(ad1 / ad1.abs().mean() * fd2.abs().mean(), fd2)[0] <= 1.1


# ---------------------------------------------------------------- end to end
class _Redness(torch.nn.Module):
    """Logits of a known, smooth classifier: class 1 grows with the image's mean red minus
    mean green (so the score of class 1 moves with pose, light and colour)."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        m = x.mean(dim=(2, 3))
        z = 40.0 * (m[:, 0] - m[:, 1])
        return torch.stack([torch.zeros_like(z), z], 1)


@needs_mitsuba
def test_score_gradient_end_to_end():
    from robustlens.models.base import Classifier
    from robustlens.regions.whitebox import WhiteBoxScore
    from robustlens.render.diff import DiffMeshRenderer

    clf = Classifier(module=_Redness().eval(), spec="test:redness", input_size=64,
                     resize_size=64, labels=["other", "red"], mean=(0.0, 0.0, 0.0),
                     std=(1.0, 1.0, 1.0))
    names = ["azimuth", "object_r"]
    r = DiffMeshRenderer(64, spp=1024, spp_grad=64)
    with WhiteBoxScore(clf, _sphere(), 1, names, renderer=r) as fn:
        x = np.array([[40.0, 0.8]])
        vals, g = fn.value_and_grad(x)
        assert vals[0] == pytest.approx(fn(x)[0], abs=1e-5)  # the same render
        h = np.array([0.5, 0.02])
        pts = np.concatenate([x + np.diag(h), x - np.diag(h)])
        s = fn(pts)
        fd = (s[:2] - s[2:]) / (2 * h)
    assert np.all(np.abs(fd) > 1e-3), fd
    np.testing.assert_allclose(g[0], fd, rtol=0.1)


@needs_mitsuba
@pytest.mark.slow
def test_cli_oir_w_whitebox(capsys, tmp_path):
    import json

    out = tmp_path / "wb"
    code, stdout, err = run_cli(["regions", "--mesh", "demo:mug", "--method", "oir_w",
                                 "--variant", "paper", "--grad", "mitsuba", "--start", "130,30",
                                 "--max-evals", "40", "--image-size", "48", "--spp", "16",
                                 "--spp-grad", "4", "--out", str(out)], capsys)
    assert code == 0, err
    doc = json.loads((out / "regions.json").read_text())
    assert (doc["grad"], doc["spp"], doc["spp_grad"]) == ("mitsuba", 16, 4)
    assert len(doc["regions"]) == 1 and stdout is not None
    # 40 // (4 scores + 4 gradients x 2) = 3 iterations (finite differences: 40 // 20 = 2)
    assert doc["regions"][0]["evaluations"] == 36


# ---------------------------------------------------------------- geometry checks
@needs_mitsuba
def test_interpenetrating_parts_are_unioned_or_refused():
    from robustlens.errors import BadInput
    from robustlens.render.diff import prepare_mesh

    a = trimesh.creation.box((1.0, 1.0, 1.0))
    b = trimesh.creation.box((1.0, 1.0, 1.0))
    b.apply_translation((0.5, 0.2, 0.2))
    solid = prepare_mesh(trimesh.util.concatenate([a, b]))
    assert any("unioned 2" in n for n in solid.notes)
    assert trimesh.Trimesh(solid.vertices, solid.faces).is_watertight
    ball = trimesh.creation.icosphere(2, radius=0.4)
    open_b = trimesh.Trimesh(ball.vertices + [0.5, 0.0, 0.0], ball.faces[5:])  # holed ball
    assert not open_b.is_watertight
    with pytest.raises(BadInput, match="interpenetrate"):
        prepare_mesh(trimesh.util.concatenate([a, open_b]))
    with pytest.raises(BadInput, match="interpenetrate"):
        prepare_mesh(trimesh.util.concatenate([a, b]), union=False)
    apart = b.copy()
    apart.apply_translation((3.0, 0.0, 0.0))
    assert not any("unioned" in n for n in prepare_mesh(trimesh.util.concatenate([a, apart])).notes)


# ---------------------------------------------------------------- spp and budgets
def test_spp_needs_mitsuba_and_positive_integers(capsys, tmp_path):
    from pydantic import ValidationError

    from robustlens.errors import BadInput
    from robustlens.regions.whitebox import DEFAULT_SPP, DEFAULT_SPP_GRAD, check_spp
    from robustlens.study.config import RegionsConfig

    assert check_spp("fd") is None
    assert check_spp("mitsuba") == (DEFAULT_SPP, DEFAULT_SPP_GRAD) == (64, 16)
    assert check_spp("mitsuba", 8, np.int64(2)) == (8, 2)
    for args, match in [(("fd", 8), "spp 8: applies only with grad mitsuba"),
                        (("fd", None, 4), "spp_grad 4: applies only with grad mitsuba"),
                        (("mitsuba", 0), "spp 0: expected an integer >= 1"),
                        (("mitsuba", None, 1.5), "spp_grad 1.5: expected an integer"),
                        (("mitsuba", True), "spp True: expected an integer")]:
        with pytest.raises(BadInput, match=match):
            check_spp(*args)
    # the CLI: one line, by flag, before any model loads
    code, _, err = run_cli(["regions", "--mesh", "demo:mug", "--spp-grad", "4", "--out",
                            str(tmp_path / "o")], capsys)
    assert code == 2 and err.strip() == (
        "error: --spp-grad 4: applies only with --grad mitsuba (samples per pixel of the "
        "Mitsuba renders; --grad fd renders with moderngl)")
    code, _, err = run_cli(["srvr", "--mesh", "demo:mug", "--grad", "mitsuba", "--spp", "0",
                            "--out", str(tmp_path / "o")], capsys)
    assert code == 2 and "--spp" in err and len(err.strip().splitlines()) == 1
    # the study config
    assert RegionsConfig(grad="mitsuba", spp=8, spp_grad=2).spp == 8
    assert RegionsConfig(grad="mitsuba").spp is None  # the defaults, filled in where used
    for kw, match in [({"spp": 8}, "applies only with grad: mitsuba"),
                      ({"grad": "mitsuba", "spp_grad": 0}, "greater than or equal to 1"),
                      ({"grad": "mitsuba", "spp": 2.0}, "valid integer")]:
        with pytest.raises(ValidationError, match=match):
            RegionsConfig(**kw)


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("max_evals", [13, 40, 100])
def test_paper_oir_w_with_gradients_stays_within_max_evals(n, max_evals):
    """With a grad_fn an OIR_W iteration costs 2^n scores + 2^n gradient points counted n
    each: --max-evals sizes iterations by that (grad mitsuba), not by finite differences."""
    from robustlens.regions import find_region
    from robustlens.regions.scene import max_evals_hyper

    lower, upper = np.zeros(n), np.full(n, 10.0)

    def score(x):
        return np.exp(-((x - 5.0) ** 2).sum(axis=1) / 20.0)

    def grad(x):
        return score(x)[:, None] * -(x - 5.0) / 10.0

    per_iter = 2**n * (1 + n)
    hyper = max_evals_hyper("paper", "oir_w", n, max_evals, grad="mitsuba")
    assert hyper == {"n_iter": max(1, max_evals // per_iter)}
    fd = max_evals_hyper("paper", "oir_w", n, max_evals)  # finite differences: 2^n (1 + 2n)
    assert fd == {"n_iter": max(1, max_evals // (2**n * (1 + 2 * n)))}
    r = find_region(score, np.full(n, 5.0), (lower, upper), "oir_w", variant="paper",
                    grad_fn=grad, **hyper)
    assert r.n_grad_calls == hyper["n_iter"] > 0
    assert r.n_evaluations == hyper["n_iter"] * per_iter
    if max_evals >= per_iter:  # within the budget, and no iteration left unused
        assert max_evals - per_iter < r.n_evaluations <= max_evals
    with pytest.raises(Exception, match="unknown gradient source"):
        max_evals_hyper("paper", "oir_w", n, max_evals, grad="adjoint")


# ---------------------------------------------------------------- a study
TINY_MODEL = Path(__file__).resolve().parent / "data" / "tiny_model.py"


def _wb_study(out: Path, **regions) -> dict:
    """One tiny model (32 px), one demo mesh, a 2 x 2 map; paper OIR_W with Mitsuba
    gradients from one start on a small azimuth x elevation domain; nothing else."""
    return {
        "seed": 0, "runtime": "torch", "out": str(out),
        "models": [{"spec": f"python:{TINY_MODEL}:build", "input_size": 32}],
        "semantic": {"meshes": [{"mesh": "demo:mug", "class": "class_0"}],
                     "grid": {"azimuth": "100:160:30", "elevation": "0:60:30"},
                     "curve": None, "views": {"enabled": False}, "batch_size": 8},
        "regions": {"params": ["azimuth", "elevation"],
                    "domain": {"azimuth": [100.0, 160.0], "elevation": [0.0, 60.0]},
                    "starts": [[130.0, 30.0]], "methods": ["oir_w"], "variant": "paper",
                    "max_evals": 24, "grad": "mitsuba", "spp": 4, "spp_grad": 2, **regions},
        "representation": {"enabled": False}, "turntable": False, "report": False,
    }


@needs_mitsuba
def test_study_with_mitsuba_gradients(tmp_path, monkeypatch):
    """regions.grad: mitsuba end to end through the study: regions.json records the
    gradient source and the samples per pixel, the search made gradient calls and kept to
    max_evals sized for gradients (24 = 2 iterations of 4 scores + 4 gradients x 2), a rerun
    reuses the step, a changed spp reruns it (and only it), and under an executor other than
    the local one a log line says the search runs on the driver."""
    import json

    import yaml

    from robustlens.study import Study, load_config
    from robustlens.study.executor import Executor

    out = tmp_path / "out"
    cfg = tmp_path / "study.yaml"
    cfg.write_text(yaml.safe_dump(_wb_study(out)))
    first = Study(load_config(cfg), log=lambda m: None)
    first.run()
    [(_, folder)] = first.layout_.regions_files()
    doc = json.loads(folder.read_text())
    assert (doc["grad"], doc["spp"], doc["spp_grad"], doc["ran_on"]) == ("mitsuba", 4, 2,
                                                                          "driver")
    assert (doc["method"], doc["variant"]) == ("oir_w", "paper")
    [rec] = doc["regions"]
    assert rec["evaluations"] == 24 and rec["calls"] == 2
    trace = json.loads((folder.parent / rec["trace_file"]).read_text())
    assert trace["n_grad_calls"] == 2 and trace["hyper"]["n_iter"] == 2
    region_step = [s for s in first.timings_ if s.startswith("regions ")]
    assert len(region_step) == 1

    again = Study(load_config(cfg), log=lambda m: None)
    again.run()
    assert region_step[0] in again.skipped_ and not [s for s in again.timings_
                                                     if s.startswith("regions ")]

    lines: list[str] = []
    cfg.write_text(yaml.safe_dump(_wb_study(out, spp=8)))
    monkeypatch.setattr(Executor, "kind", "ray")  # as under --ray: the line is written
    third = Study(load_config(cfg), log=lines.append)
    third.run()
    assert region_step[0] in third.timings_ and any(s.startswith("map ") for s in third.skipped_)
    assert json.loads(folder.read_text())["spp"] == 8
    assert any("grad mitsuba runs on the driver, not as ray tasks" in m for m in lines), lines


def test_paper_variant_through_regions_for_mesh():
    """The study's render path (`regions_for_mesh`, also the Ray task) runs the paper
    variant: no threshold is passed to the paper's rules (they have none)."""
    from robustlens.models import load_model
    from robustlens.regions.scene import regions_for_mesh
    from robustlens.render import load_mesh

    clf = load_model(f"python:{TINY_MODEL}:build", input_size=32)
    [r] = regions_for_mesh(clf, load_mesh("demo:mug"), 0, starts=[[130.0, 30.0]],
                           domain=([100.0, 0.0], [160.0, 60.0]), method="oir_w",
                           variant="paper", n_iter=1)
    assert r.variant == "paper" and r.threshold is None and r.n_evaluations == 20
