"""Shared fixtures: the embedded default model is loaded once per session."""

from __future__ import annotations

import os
import tempfile

import numpy as np
import pytest

os.environ.setdefault("MPLBACKEND", "Agg")
# ONNX exports (--runtime auto) go to a throw-away cache, never the user's ~/.cache
os.environ["ROBUSTLENS_CACHE"] = tempfile.mkdtemp(prefix="robustlens-test-cache-")


@pytest.fixture(scope="session")
def default_model():
    from robustlens.models import load_model

    return load_model()


@pytest.fixture(scope="session")
def renderer():
    from robustlens.render import MeshRenderer

    return MeshRenderer(224)


def run_cli(args: list[str], capsys) -> tuple[int, str, str]:
    """Run the CLI in-process; return (exit code, stdout, stderr)."""
    from robustlens.cli import main

    with pytest.raises(SystemExit) as exc:
        main(args)
    out = capsys.readouterr()
    return int(exc.value.code or 0), out.out, out.err


@pytest.fixture(scope="session")
def real_study(tmp_path_factory):
    """A tiny study folder that ``robustlens run`` produced (see tests/real_study.py), built
    once per session.  Read only: tests that change it copy it first (`copy_study`)."""
    from real_study import run_tiny_study

    return run_tiny_study(tmp_path_factory.mktemp("real_study"))


def copy_study(src, dest):
    """A private copy of a study folder (tests edit it freely)."""
    import shutil

    shutil.copytree(src, dest)
    return dest


def box_iou(lo1, hi1, lo2, hi2, period0: float = 360.0) -> float:
    """IoU of two (azimuth, elevation) boxes, azimuth periodic: overlap on the circle is the
    best of the shifts -1, 0, +1 turn (boxes narrower than one turn); two identical
    zero-volume boxes (a region that did not grow, on a point ground truth) have IoU 1."""
    lo1, hi1, lo2, hi2 = (np.asarray(v, float) for v in (lo1, hi1, lo2, hi2))
    az = max(max(0.0, min(hi1[0], hi2[0] + k) - max(lo1[0], lo2[0] + k))
             for k in (-period0, 0.0, period0))
    el = max(0.0, min(hi1[1], hi2[1]) - max(lo1[1], lo2[1]))
    inter = az * el
    union = np.prod(hi1 - lo1) + np.prod(hi2 - lo2) - inter
    if union <= 0:  # two zero-volume boxes: identical ones match fully
        return float(np.array_equal(lo1, lo2) and np.array_equal(hi1, hi2))
    return float(inter / union)
