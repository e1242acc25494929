"""Mesh loading and ShapeNet-style normalisation (trimesh)."""

from __future__ import annotations

import os
from pathlib import Path

import numpy as np
import trimesh

from ..errors import BadInput, first_line
from .materials import combine, has_colour
from .meshfile import FILES_KEY

DEMO_DIR = Path(__file__).resolve().parent.parent / "data" / "meshes"
MESH_SUFFIXES = (".obj", ".glb", ".gltf", ".ply", ".stl", ".off")


def demo_meshes() -> dict[str, Path]:
    """Name -> path of every shipped demo mesh (``demo:NAME``)."""
    return {p.stem: p for p in sorted(DEMO_DIR.glob("*")) if p.suffix in MESH_SUFFIXES}


def resolve_mesh_path(spec: str | os.PathLike[str]) -> Path:
    """``demo:NAME`` -> shipped file; ``pkg:SOURCE/NAME`` -> the file inside its installed
    package; anything else is a path that must exist."""
    from .catalog import is_pkg_spec, resolve_pkg

    s = str(spec)
    if is_pkg_spec(s):
        return resolve_pkg(s)[0]
    if s.startswith("demo:"):
        name = s[5:]
        demos = demo_meshes()
        if name not in demos:
            raise BadInput(f"{s}: unknown demo mesh; expected one of "
                           f"{', '.join('demo:' + n for n in demos)}", param="mesh")
        return demos[name]
    p = Path(s).expanduser()
    if not p.is_file():
        raise BadInput(f"{s}: file not found", param="mesh")
    if p.suffix.lower() not in MESH_SUFFIXES:
        raise BadInput(f"{s}: unsupported format {p.suffix!r}; expected one of "
                       f"{', '.join(MESH_SUFFIXES)}", param="mesh")
    return p


# Coordinates beyond this overflow float64 once squared (norms, normals): refused, not
# silently turned into inf/NaN.
MAX_COORDINATE = 1e150


def normalize_mesh(mesh: trimesh.Trimesh, name: str = "mesh") -> trimesh.Trimesh:
    """Centre on the bounding-box centre and scale to a unit bounding sphere (ShapeNet's
    ``model_normalized`` convention: the farthest vertex lies at distance 1). ``name`` (the
    file or spec) goes into the error when the geometry cannot be normalised."""
    v = np.asarray(mesh.vertices, dtype=np.float64)
    extent = float(np.abs(v).max()) if v.size else 0.0
    if extent > MAX_COORDINATE:
        raise BadInput(f"coordinates too large ({extent:.3g}; expected at most "
                       f"{MAX_COORDINATE:.0e} in magnitude)", param="mesh", value=name)
    m = mesh.copy()
    centre = (m.bounds[0] + m.bounds[1]) / 2.0
    m.apply_translation(-centre)
    radius = float(np.linalg.norm(m.vertices, axis=1).max())
    if not np.isfinite(radius) or radius <= 0:
        raise BadInput("degenerate geometry (all vertices at one point)", param="mesh",
                       value=name)
    m.apply_scale(1.0 / radius)
    return m


def _parse(path: Path, spec: str, allow_outside: bool = False
           ) -> tuple[list[trimesh.Trimesh], set[str], list[dict]]:
    """Check the file and what it refers to, then parse it into geometries with the scene
    graph's transforms applied (unprocessed: NaN vertices still visible). Also returns the
    files read (:data:`~robustlens.render.meshfile.FILES_KEY`)."""
    from .meshfile import read_mesh

    parsed = read_mesh(path, spec, allow_outside=allow_outside)
    defined = parsed.defined
    try:
        geoms = [g for g in parsed.scene.dump() if isinstance(g, trimesh.Trimesh)]
    except Exception as exc:  # trimesh raises many kinds for broken files
        raise BadInput(f"{spec}: cannot parse {path.suffix} file "
                       f"({first_line(exc, 120)})", param="mesh") from None
    for g in geoms:
        faces = np.asarray(g.faces)
        if faces.size and (faces.min() < 0 or faces.max() >= len(g.vertices)):
            raise BadInput(f"{spec}: face indices out of range in {path.name} (indices "
                           f"{faces.min()}..{faces.max()} for {len(g.vertices)} vertices)",
                           param="mesh")
        if not np.all(np.isfinite(np.asarray(g.vertices, dtype=np.float64))):
            raise BadInput(f"{spec}: vertices contain NaN or infinity ({path.name})", param="mesh")
        vis = g.visual
        if isinstance(vis, trimesh.visual.ColorVisuals) and vis.kind == "vertex" \
                and len(vis.vertex_colors) != len(g.vertices):
            raise BadInput(f"{spec}: vertex colours of the wrong length in {path.name} "
                           f"({len(vis.vertex_colors)} colours for {len(g.vertices)} vertices)", param="mesh")
        if defined is not None and isinstance(vis, trimesh.visual.TextureVisuals) and \
                getattr(vis.material, "name", None) not in defined:
            g.visual = trimesh.visual.ColorVisuals(g)  # trimesh's made-up grey material
    return geoms, parsed.no_kd, [f.as_dict() for f in parsed.files]


def load_mesh(spec: str | os.PathLike[str], up: str = "y", normalize: bool = True,
              texture: bool = True, allow_outside: bool = False) -> trimesh.Trimesh:
    """Load ``.obj .glb .gltf .ply .stl .off`` (or ``demo:NAME``, ``pkg:PACKAGE/NAME``) as one
    triangle mesh.

    Scenes are flattened into one mesh (the scene graph's transforms applied). ``up`` names
    the file's vertical axis (``"y"`` as in ShapeNet/glTF, or ``"z"`` as in many CAD/STL
    files); it is rotated onto +y. ``pkg:`` entries carry their own up axis (``up`` is not
    used for them).

    With ``texture=True`` a file with textures, material colours or vertex/face colours
    returns a mesh carrying them (see :mod:`robustlens.render.materials`); otherwise, and for
    files without colour, a plain mesh that renders in ``object_color`` (white by default).

    The files a mesh refers to (MTL libraries, textures, glTF buffers) are read only from
    inside the mesh file's folder, unless ``allow_outside=True`` (or
    ``$ROBUSTLENS_MESH_ALLOW_OUTSIDE=1``); see :mod:`robustlens.render.meshfile` for what is
    refused. ``mesh.metadata["robustlens.files"]`` lists the files read (path, sha256, size;
    the mesh file first): the content fingerprint of the mesh.
    """
    from .catalog import catalog_entry, is_pkg_spec

    if up not in ("y", "z"):
        raise BadInput(f"{up!r}: expected 'y' or 'z'", param="up")
    path = resolve_mesh_path(spec)
    if is_pkg_spec(spec):  # catalog meshes know their own up axis
        up = catalog_entry(str(spec)).up
    if path.stat().st_size == 0:
        raise BadInput(f"{spec}: file is empty", param="mesh")
    geoms, no_kd, files = _parse(path, str(spec), allow_outside)
    geoms = [g for g in geoms if len(g.faces)]
    if not geoms:
        raise BadInput(f"{spec}: no triangles found (expected a surface mesh)", param="mesh")
    if texture and any(has_colour(g) for g in geoms):
        loaded = combine(geoms, linear_colours=path.suffix.lower() in (".gltf", ".glb"),
                         white_if_no_kd=no_kd)
    else:
        # untextured: exactly the mesh trimesh.load(force="mesh", process=True) gives
        for g in geoms:
            g.visual = trimesh.visual.ColorVisuals(g)
            g.process()
        loaded = trimesh.util.concatenate(geoms) if len(geoms) > 1 else geoms[0]  # type: ignore[assignment]
    if up == "z":
        loaded.apply_transform(trimesh.transformations.rotation_matrix(-np.pi / 2, [1, 0, 0]))
    if normalize:
        loaded = normalize_mesh(loaded, str(spec))
    loaded.metadata[FILES_KEY] = files
    return loaded


def demo_class(spec: str) -> str | None:
    """The ImageNet class name a shipped demo mesh or a ``pkg:`` catalog mesh shows
    (``demo:mug`` -> ``coffee mug``, ``pkg:pybullet/soccerball`` -> ``soccer ball``)."""
    import json

    from .catalog import CATALOG

    s = str(spec)
    if s in CATALOG:
        return CATALOG[s].class_name
    if not s.startswith("demo:"):
        return None
    table = json.loads((DEMO_DIR / "classes.json").read_text())
    return table.get(s[5:])
