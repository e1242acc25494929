"""Mesh loading and ShapeNet-style normalisation (trimesh)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import trimesh

from ..errors import BadInput

DEMO_DIR = Path(__file__).resolve().parent.parent / "data" / "meshes"
MESH_SUFFIXES = (".obj", ".glb", ".gltf", ".ply", ".stl", ".off")


def demo_meshes() -> dict[str, Path]:
    """Name -> path of every shipped demo mesh (``demo:NAME``)."""
    return {p.stem: p for p in sorted(DEMO_DIR.glob("*")) if p.suffix in MESH_SUFFIXES}


def resolve_mesh_path(spec: str | os.PathLike[str]) -> Path:
    """``demo:NAME`` -> shipped file; anything else is a path that must exist."""
    s = str(spec)
    if s.startswith("demo:"):
        name = s[5:]
        demos = demo_meshes()
        if name not in demos:
            raise BadInput(f"--mesh {s}: unknown demo mesh; expected one of "
                           f"{', '.join('demo:' + n for n in demos)}")
        return demos[name]
    p = Path(s).expanduser()
    if not p.is_file():
        raise BadInput(f"--mesh {s}: file not found")
    if p.suffix.lower() not in MESH_SUFFIXES:
        raise BadInput(f"--mesh {s}: unsupported format {p.suffix!r}; expected one of "
                       f"{', '.join(MESH_SUFFIXES)}")
    return p


def normalize_mesh(mesh: trimesh.Trimesh) -> trimesh.Trimesh:
    """Centre on the bounding-box centre and scale to a unit bounding sphere (ShapeNet's
    ``model_normalized`` convention: the farthest vertex lies at distance 1)."""
    m = mesh.copy()
    centre = (m.bounds[0] + m.bounds[1]) / 2.0
    m.apply_translation(-centre)
    radius = float(np.linalg.norm(m.vertices, axis=1).max())
    if not np.isfinite(radius) or radius <= 0:
        raise BadInput("mesh: degenerate geometry (all vertices at one point)")
    m.apply_scale(1.0 / radius)
    return m


def load_mesh(spec: str | os.PathLike[str], up: str = "y", normalize: bool = True) -> trimesh.Trimesh:
    """Load ``.obj .glb .gltf .ply .stl .off`` (or ``demo:NAME``) as one triangle mesh.

    Scenes are flattened into one mesh. ``up`` names the file's vertical axis (``"y"`` as in
    ShapeNet/glTF, or ``"z"`` as in many CAD/STL files); it is rotated onto +y.
    """
    path = resolve_mesh_path(spec)
    if path.stat().st_size == 0:
        raise BadInput(f"--mesh {spec}: file is empty")
    try:
        loaded = trimesh.load(str(path), force="mesh", process=True)
    except Exception as exc:  # trimesh raises many kinds for broken files
        msg = str(exc).strip().splitlines()
        raise BadInput(f"--mesh {spec}: cannot parse {path.suffix} file "
                       f"({msg[0][:120] if msg else type(exc).__name__})") from None
    if not isinstance(loaded, trimesh.Trimesh) or len(loaded.faces) == 0:
        raise BadInput(f"--mesh {spec}: no triangles found (expected a surface mesh)")
    if not np.all(np.isfinite(loaded.vertices)):
        raise BadInput(f"--mesh {spec}: vertices contain NaN or infinity")
    if up == "z":
        loaded.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]))
    elif up != "y":
        raise BadInput(f"--up {up!r}: expected 'y' or 'z'")
    return normalize_mesh(loaded) if normalize else loaded


def demo_class(spec: str) -> str | None:
    """The ImageNet class name a shipped demo mesh shows (``demo:mug`` -> ``coffee mug``)."""
    import json

    if not str(spec).startswith("demo:"):
        return None
    table = json.loads((DEMO_DIR / "classes.json").read_text())
    return table.get(str(spec)[5:])
