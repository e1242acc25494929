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


def _imports(path: Path) -> set[str]:
    """Absolute names of every robustlens module ``path`` imports (any depth: module level
    or inside a function)."""
    import ast

    pkg = path.relative_to(SRC.parent).with_suffix("").parts
    pkg = pkg[:-1] if pkg[-1] != "__init__" else pkg[:-1]
    out: set[str] = set()
    for node in ast.walk(ast.parse(path.read_text())):
        if isinstance(node, ast.ImportFrom):
            base = list(pkg[:len(pkg) - node.level + 1]) if node.level else []
            mod = ".".join(base + ([node.module] if node.module else []))
            out.add(mod)
            out.update(f"{mod}.{a.name}" for a in node.names)
        elif isinstance(node, ast.Import):
            out.update(a.name for a in node.names)
    return {m for m in out if m == "robustlens" or m.startswith("robustlens.")}


def _reachable(module: str) -> set[str]:
    """robustlens modules imported by ``module``, transitively (static: every import
    statement counts, lazy ones too)."""
    seen: set[str] = set()
    todo = [module]
    while todo:
        m = todo.pop()
        if m in seen:
            continue
        seen.add(m)
        parts = m.split(".")[1:]
        todo += [".".join(["robustlens", *parts[:k]]) for k in range(1, len(parts))]  # packages
        if not parts:
            continue
        rel = Path(*parts)
        for cand in (SRC / rel.with_suffix(".py"), SRC / rel / "__init__.py"):
            if cand.is_file():
                todo += sorted(_imports(cand) - seen)
                break
    return seen


DATA_MODULES = ["robustlens.regions.records", "robustlens.regions.srvr",
                "robustlens.representation.scores",
                *sorted(f"robustlens.semantic.{p.stem}" for p in (SRC / "semantic").glob("*.py")
                        if p.stem != "__init__")]


def test_data_modules_never_import_drawing_code():
    """Data modules (region records, SRVR, semantic maps, robustness scores) never import
    robustlens.figures, directly or through another module; figures may import them."""
    assert "robustlens.semantic.maps" in DATA_MODULES
    for mod in DATA_MODULES:
        reach = _reachable(mod)
        assert "robustlens.figures" not in reach, f"{mod} reaches robustlens.figures"
    # the checker does see an import of figures where there is one
    assert "robustlens.figures" in _reachable("robustlens.study.steps")


def _sources() -> list[tuple[Path, str]]:
    return [(p, p.read_text()) for p in sorted(SRC.rglob("*.py"))]


def test_one_image_io_module_and_figures_in_figures():
    """Images are encoded and written only by robustlens.images, figures drawn only by
    robustlens.figures (no cv2 text, no second save helper)."""
    # the mesh loader decodes embedded textures from bytes; that is reading a mesh, not I/O
    allowed = {SRC / "images.py", SRC / "render" / "meshfile.py"}
    for path, text in _sources():
        if path in allowed:
            continue
        for bad in ("imageio", "cv2.imwrite", "cv2.imread", "cv2.putText", "Image.open(",
                    ".save(buf", "savefig("):
            if bad == "savefig(" and path == SRC / "figures.py":
                continue
            assert bad not in text, f"{path.relative_to(SRC)} uses {bad}"
    assert not (SRC / "representation" / "plots.py").exists()


def test_one_slug_rule():
    """File and folder names come from the layout's slug; no module has its own rule."""
    for path, text in _sources():
        if path == SRC / "study" / "layout.py":
            continue
        assert 'r"[^A-Za-z0-9' not in text, f"{path.relative_to(SRC)} has its own slug rule"
        assert "ch if ch.isalnum() else" not in text, path


def test_readme_layout_matches_the_tree():
    """Every module and folder the README's Layout section names exists, and every top-level
    module and package of src/robustlens is named there."""
    import re

    text = (ROOT / "README.md").read_text()
    layout = text[text.index("## Layout"):]
    layout = layout[:layout.index("\n## ", 5)]
    named = set(re.findall(r"\b([a-z_]+\.py)\b", layout))
    files = {p.name for p in SRC.rglob("*.py")} | {p.name for p in (ROOT / "tests").glob("*.py")}
    assert named <= files, sorted(named - files)
    top = {p.name for p in SRC.glob("*.py") if p.name != "__init__.py"}
    top |= {p.name + "/" for p in SRC.iterdir() if p.is_dir() and not p.name.startswith("_")}
    for name in top:
        assert re.search(rf"^\s+{re.escape(name)}\s", layout, re.M), f"{name} not in Layout"
