"""Surface colour of a mesh: UV textures, per-material colours and per-vertex colours.

A loaded mesh stays one ``trimesh.Trimesh`` (callers use vertices, faces, copy and rigid
transforms as before); its colour lives in ``mesh.metadata[MATERIALS_KEY]`` as a
:class:`Materials`: the faces are grouped into contiguous *parts*, one per material, each
with a linear RGBA factor and an optional sRGB texture, plus per-vertex UVs and linear
per-vertex colours. A mesh without that entry is *untextured* and renders plain
``object_color`` exactly as before.

Colour spaces (what the renderer does, precisely):

* texture images and 8-bit vertex/face colours of PLY/OFF/OBJ files are sRGB-encoded;
  glTF ``baseColorFactor`` and ``COLOR_0`` are linear (glTF 2.0 spec); OBJ/MTL ``Kd`` is
  treated as linear too (Blender writes its linear base colour there);
* textures are sampled (trilinear, mipmapped) on their sRGB values, as neural_renderer and
  PyTorch3D do; this is the one place that is not linear, and it only matters where
  contrasting texels are blended;
* the albedo is texture x material factor x vertex colour x ``object_color``, multiplied in
  linear light (each term decoded from sRGB where it is sRGB) and encoded back to sRGB; when
  every factor is one (the default) the sampled texture is the albedo as it is;
* shading multiplies that sRGB albedo by ``ambient + intensity * max(0, n.l)``, as for the
  untextured mesh (and as neural_renderer and the paper do): a white texture renders exactly
  like an untextured mesh, so "with and without texture" differ only in colour.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

import numpy as np
import trimesh

MATERIALS_KEY = "robustlens.materials"


def srgb_to_linear(c: np.ndarray) -> np.ndarray:
    """sRGB-encoded values in [0, 1] -> linear (IEC 61966-2-1), any shape, float64."""
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.04045, c / 12.92, ((c + 0.055) / 1.055) ** 2.4)


def linear_to_srgb(c: np.ndarray) -> np.ndarray:
    """Linear values in [0, 1] -> sRGB-encoded, any shape, float64."""
    c = np.clip(np.asarray(c, dtype=np.float64), 0.0, 1.0)
    return np.where(c <= 0.0031308, c * 12.92, 1.055 * c ** (1 / 2.4) - 0.055)


@dataclass
class Part:
    """Faces ``start:stop`` of the mesh drawn with one material.

    ``color``: (4,) linear RGBA factor; ``texture``: (H, W, 3) uint8 sRGB, first row = top of
    the image (v = 1), or None; ``name``: the material's name in the file.
    """

    start: int
    stop: int
    color: np.ndarray
    texture: np.ndarray | None = None
    name: str = ""


@dataclass
class Materials:
    """Colour of a mesh: parts cover all faces in order; ``uv`` (V, 2) float32 (OpenGL
    convention, v up) and ``vertex_color`` (V, 4) float32 linear, both per mesh vertex."""

    parts: list[Part]
    uv: np.ndarray
    vertex_color: np.ndarray

    @property
    def textured(self) -> bool:
        return any(p.texture is not None for p in self.parts)


def materials_of(mesh: trimesh.Trimesh) -> Materials | None:
    """The :class:`Materials` a mesh carries, or None for an untextured mesh."""
    mat = getattr(mesh, "metadata", {}).get(MATERIALS_KEY)
    return mat if isinstance(mat, Materials) else None


def _image_array(img) -> np.ndarray | None:
    """PIL image (any mode) -> (H, W, 3) uint8 sRGB; alpha is dropped (opaque rendering).

    16-bit images (``I;16``, ``I``: 0..65535) are scaled to 8 bits (/257), not clipped at
    255 (which PIL's ``convert`` does, turning a grey texture white). An image that does
    not decode (the loader checked and warned about it) gives None: the material colour."""
    if img is None:
        return None
    try:
        if img.mode.startswith("I;16") or img.mode == "I":
            grey = np.asarray(img).astype(np.float64)
            grey = np.clip(np.rint(grey / 257.0), 0, 255).astype(np.uint8)
            arr = np.repeat(grey.reshape(grey.shape[:2] + (1,)), 3, axis=2)
        else:
            arr = np.asarray(img.convert("RGB"), dtype=np.uint8)
    except (OSError, ValueError, SyntaxError):
        return None
    return np.ascontiguousarray(arr)


def _rgba(c) -> np.ndarray:
    """trimesh colour (uint8 0..255 or float 0..1, 3 or 4 channels) -> float64 RGBA 0..1."""
    a = np.asarray(c)
    if a.dtype.kind in "ui":  # normalised integers (glTF COLOR_0 may be 8- or 16-bit)
        a = a.astype(np.float64) / (65535.0 if a.dtype == np.uint16 else 255.0)
    else:
        a = a.astype(np.float64)
    if a.shape[-1] == 3:
        a = np.concatenate([a, np.ones(a.shape[:-1] + (1,))], -1)
    return a


def has_colour(geom: trimesh.Trimesh) -> bool:
    """Whether a loaded geometry carries colour worth rendering (a material, vertex or face
    colours); trimesh's default grey of a plain file does not count."""
    vis = geom.visual
    if isinstance(vis, trimesh.visual.TextureVisuals):
        return vis.material is not None
    if isinstance(vis, trimesh.visual.ColorVisuals):
        return vis.kind in ("vertex", "face")
    return False


def _unmerge_face_colours(geom: trimesh.Trimesh) -> trimesh.Trimesh:
    """Face colours -> one vertex per face corner with the face's colour."""
    faces = np.asarray(geom.faces)
    corners = np.asarray(geom.vertices)[faces].reshape(-1, 3)
    cols = np.repeat(np.asarray(geom.visual.face_colors), 3, axis=0)  # type: ignore[union-attr]
    return trimesh.Trimesh(corners, np.arange(len(corners)).reshape(-1, 3), vertex_colors=cols,
                           process=False)


def _geometry_colour(geom: trimesh.Trimesh, linear_colours: bool, white_if_no_kd: set[str]
                     ) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, np.ndarray, str]:
    """Colour of one loaded geometry: ``(uv (V, 2), vertex colour (V, 4) linear, texture
    (H, W, 3) uint8 sRGB or None, factor (4,) linear, material name)``.

    ``linear_colours``: vertex colours are linear (glTF) rather than sRGB (PLY, OFF, OBJ).
    ``white_if_no_kd``: OBJ materials whose MTL gives no ``Kd`` (trimesh would put 0.4 grey).
    """
    nv = len(geom.vertices)
    uv = np.zeros((nv, 2))
    vcol = np.ones((nv, 4))
    texture, factor, name = None, np.ones(4), ""
    vis = geom.visual
    if isinstance(vis, trimesh.visual.TextureVisuals) and vis.material is not None:
        mat = vis.material
        name = str(getattr(mat, "name", "") or "")
        if isinstance(mat, trimesh.visual.material.PBRMaterial):
            if mat.baseColorFactor is not None:
                factor = _rgba(mat.baseColorFactor)
            texture = _image_array(mat.baseColorTexture)
        elif isinstance(mat, trimesh.visual.material.SimpleMaterial):
            texture = _image_array(mat.image)
            if name not in white_if_no_kd and mat.diffuse is not None:
                factor = _rgba(mat.diffuse)
        if vis.uv is not None and len(vis.uv) == nv:
            uv = np.asarray(vis.uv, dtype=np.float64)
        else:
            texture = None  # a texture without UVs cannot be mapped: material colour only
        col: Any = geom.vertex_attributes.get("color")
        if col is not None and len(col) == nv:
            vcol = _rgba(col)
            if not linear_colours:
                vcol[:, :3] = srgb_to_linear(vcol[:, :3])
    elif isinstance(vis, trimesh.visual.ColorVisuals) and vis.kind == "vertex":
        vcol = _rgba(vis.vertex_colors)
        if not linear_colours:
            vcol[:, :3] = srgb_to_linear(vcol[:, :3])
    return uv, vcol, texture, factor, name


def combine(geoms: list[trimesh.Trimesh], linear_colours: bool,
            white_if_no_kd: set[str] | None = None) -> trimesh.Trimesh:
    """Concatenate loaded geometries (scene transforms already applied) into one mesh that
    carries :class:`Materials`: one part per geometry, unreferenced vertices dropped."""
    verts, faces, uvs, cols, parts = [], [], [], [], []
    nv = nf = 0
    for g in geoms:
        if len(g.faces) == 0:
            continue
        if isinstance(g.visual, trimesh.visual.ColorVisuals) and g.visual.kind == "face":
            g = _unmerge_face_colours(g)
        uv, vcol, tex, factor, name = _geometry_colour(g, linear_colours, white_if_no_kd or set())
        f = np.asarray(g.faces, dtype=np.int64)
        used = np.unique(f)
        remap = np.full(len(g.vertices), -1, dtype=np.int64)
        remap[used] = np.arange(len(used))
        verts.append(np.asarray(g.vertices, dtype=np.float64)[used])
        uvs.append(uv[used])
        cols.append(vcol[used])
        faces.append(remap[f] + nv)
        parts.append(Part(nf, nf + len(f), factor.astype(np.float32), tex, name))
        nv += len(used)
        nf += len(f)
    mesh = trimesh.Trimesh(np.concatenate(verts), np.concatenate(faces), process=False)
    mesh.metadata[MATERIALS_KEY] = Materials(
        parts, np.concatenate(uvs).astype(np.float32), np.concatenate(cols).astype(np.float32))
    return mesh
