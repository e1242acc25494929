"""Shared fixtures: the embedded default model is loaded once per session."""

from __future__ import annotations

import os
import tempfile

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
