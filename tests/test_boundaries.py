"""Regression tests for issue 23 ("one rule per concept, round two"): module boundaries that a
test can hold -- data modules never import drawing code, mypy checks every module, a model
provider name is registered once."""

from __future__ import annotations

import tomllib
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
SRC = ROOT / "src" / "robustlens"


def test_mypy_checks_every_module():
    """No module is excused from mypy, and bodies of untyped functions are checked too."""
    cfg = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["mypy"]
    assert "overrides" not in cfg
    assert cfg.get("check_untyped_defs") is True
    assert not cfg.get("ignore_errors")


def test_a_builtin_name_is_registered_once():
    """A second model under a registered name is an error, never a silent replacement."""
    import pytest

    from robustlens.models import list_builtins, register_builtin, registry

    before = dict(registry._BUILTINS)
    with pytest.raises(ValueError, match="'planted_cue' is already registered"):
        register_builtin("planted_cue", "an impostor")(lambda: None)  # type: ignore[arg-type]
    assert registry._BUILTINS == before
    assert list_builtins()["planted_cue"] == before["planted_cue"][1]
