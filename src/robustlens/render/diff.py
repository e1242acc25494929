"""Differentiable renderer (Mitsuba 3 + Dr.Jit): the :class:`MeshRenderer` image, with
gradients of anything computed from it with respect to the scene parameters.

Optional: installed by the ``whitebox`` extra (``pip install -e .[whitebox]``; ``make
whitebox`` also installs the system ``libllvm19`` that Dr.Jit's CPU backend needs).

How the moderngl image is reproduced (same camera, lights, materials, normalisation):

* the camera stays at the origin looking down -z with a fixed 60 deg field of view; the
  mesh is moved instead (``v_cam = Rx(el) Ry(-az) v - d e_z``, the inverse of
  :func:`~robustlens.render.camera.view_matrix`), and another ``fov`` scales camera-space
  x and y by ``tan(30 deg) / tan(fov / 2)`` (the same perspective image). Camera-pose
  gradients are not supported by Mitsuba (no visibility term for a moving sensor); object
  transforms are, so azimuth, elevation, distance and fov are all differentiable;
* Lambert shading ``albedo * (ambient + intensity * max(0, n.l))``, clamped to [0, 1], is
  evaluated per vertex in the world frame (shading does not depend on the camera) and
  emitted by the surface (an ``area`` emitter whose radiance is the mesh attribute, black
  BSDF, ``max_depth=1``): the image is that colour where the mesh is seen and the
  background colour (a ``constant`` emitter) elsewhere, box-filtered over each pixel like
  the 4x MSAA of moderngl. Meshes whose vertices mostly sit on creases sharper than 30 deg
  (boxes: chair, table) are shaded per face (flat) instead;
* albedo: ``object_color`` (sRGB) for an untextured mesh; ``to_srgb(vertex colour x part
  colour x to_linear(object_color))`` for a mesh with vertex / material colours (see
  :mod:`~robustlens.render.materials`). UV textures are refused (``--grad fd`` renders them).

Differences from moderngl that remain (measured in tests/test_whitebox.py): Gouraud
(per-vertex) instead of per-pixel shading; emitters are one-sided, so the back faces of
open surfaces render black (moderngl draws both sides); floats instead of 8-bit output;
Monte Carlo pixel sampling (``spp``) instead of 4 fixed MSAA samples.

Geometry is prepared once per mesh (:func:`prepare_mesh`): vertices are welded (split
vertices at creases or seams make Mitsuba's silhouette sampling count an edge twice and
bias the gradient), and parts that interpenetrate are unioned (trimesh + manifold3d) or,
when a part is open or coloured, refused with a one-line error naming them.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import numpy as np
import torch
import trimesh

from .. import paper
from ..errors import BadInput, ref
from .materials import materials_of
from .scene import PARAMETERS, scene_batch

#: Dr.Jit's LLVM backend aborts the process (``LLVM ERROR: Cannot select ... fminimum``) with
#: LLVM 15 and 16 (Debian 12's defaults); 19.1.7 is the version tested.
MIN_LLVM = (17, 0, 0)
TESTED_LLVM = "19.1.7"
INSTALL_HINT = ("install the white-box extra: make whitebox (or: apt-get install libllvm19 "
                "&& pip install -e '.[whitebox]')")
VARIANTS = ("llvm_ad_rgb", "cuda_ad_rgb")
_SENSOR_FOV = 60.0
_CREASE_DEG = 30.0


def backend_problem(variant: str = "llvm_ad_rgb") -> str | None:
    """Why the white-box backend cannot run here (one line), or None when it can.

    Imports Mitsuba, selects ``variant`` and, for the LLVM variant, checks the version of the
    libLLVM Dr.Jit loaded *before* anything is compiled (an old one aborts the process)."""
    if variant not in VARIANTS:
        return f"variant {variant!r}: expected one of {', '.join(VARIANTS)}"
    try:
        import drjit as dr
        import mitsuba as mi
    except ImportError:
        return f"Mitsuba 3 / Dr.Jit are not installed; {INSTALL_HINT}"
    try:
        mi.set_variant(variant)
    except (ImportError, AttributeError, RuntimeError) as exc:
        first = str(exc).strip().splitlines()[0] if str(exc).strip() else type(exc).__name__
        if variant == "llvm_ad_rgb":
            return f"Dr.Jit found no usable libLLVM ({first[:160]}); {INSTALL_HINT}"
        return f"Mitsuba variant {variant} is unavailable ({first[:160]})"
    if variant == "llvm_ad_rgb":
        ver = tuple(int(v) for v in dr.detail.llvm_version())
        if ver < MIN_LLVM:
            found = ".".join(map(str, ver))
            return (f"Dr.Jit loaded libLLVM {found}, which aborts while compiling Mitsuba's "
                    f"kernels (needs >= {MIN_LLVM[0]}, tested {TESTED_LLVM}); {INSTALL_HINT}, "
                    f"or point DRJIT_LIBLLVM_PATH at a newer libLLVM.so")
    return None


def check_backend(variant: str = "llvm_ad_rgb", param: str | None = "grad") -> None:
    """Raise a one-line :class:`BadInput` when :func:`backend_problem` finds one."""
    problem = backend_problem(variant)
    if problem is not None:
        raise BadInput(f"mitsuba: {problem}", param=param)


# ------------------------------------------------------------------ geometry preparation
def _winding_numbers(points: np.ndarray, tri: np.ndarray, chunk: int = 256) -> np.ndarray:
    """Generalised winding numbers of ``points`` (P, 3) w.r.t. the closed surface ``tri``
    (F, 3, 3): ~1 inside, ~0 outside, 1/2 on the surface (Van Oosterom-Strackee solid
    angles, summed)."""
    out = np.empty(len(points))
    for s in range(0, len(points), chunk):
        p = points[s:s + chunk, None, None, :]
        r = tri[None] - p  # (P, F, 3, 3)
        a, b, c = r[:, :, 0], r[:, :, 1], r[:, :, 2]
        la, lb, lc = (np.linalg.norm(x, axis=-1) for x in (a, b, c))
        det = np.einsum("pfi,pfi->pf", a, np.cross(b, c))
        den = (la * lb * lc + np.einsum("pfi,pfi->pf", a, b) * lc
               + np.einsum("pfi,pfi->pf", b, c) * la + np.einsum("pfi,pfi->pf", c, a) * lb)
        out[s:s + chunk] = (2.0 * np.arctan2(det, den)).sum(axis=1) / (4.0 * np.pi)
    return out


def _overlap_volume(p: trimesh.Trimesh, q: trimesh.Trimesh) -> float | None:
    """Volume shared by two closed parts (manifold3d), or None without the engine."""
    try:
        from trimesh.boolean import intersection

        return float(abs(intersection([p, q], engine="manifold").volume))
    except Exception:  # noqa: BLE001 - no engine, or a failed boolean: use winding numbers
        return None


def _interpenetrating(parts: list[trimesh.Trimesh]) -> list[tuple[int, int]]:
    """Pairs (i, j) of parts that interpenetrate: two closed parts sharing volume
    (manifold3d), or a part with a vertex strictly inside a closed one (winding numbers;
    open parts cannot contain anything)."""
    pairs = set()
    for i, p in enumerate(parts):
        for j, q in enumerate(parts):
            if i == j or not q.is_watertight:
                continue
            lo, hi = q.bounds
            plo, phi = p.bounds
            if np.any(plo > hi + 1e-9) or np.any(phi < lo - 1e-9):
                continue
            if p.is_watertight and i < j:
                vol = _overlap_volume(p, q)
                if vol is not None:
                    if vol > 1e-9 * max(min(abs(p.volume), abs(q.volume)), 1e-12) + 1e-12:
                        pairs.add((i, j))
                    continue
            elif p.is_watertight:
                continue  # the pair is decided at (j, i)
            v = np.asarray(p.vertices)
            near = np.all((v > lo - 1e-9) & (v < hi + 1e-9), axis=1)
            if near.any() and np.any(np.abs(_winding_numbers(v[near],
                                                             np.asarray(q.triangles))) > 0.75):
                pairs.add((min(i, j), max(i, j)))
    return sorted(pairs)


@dataclass
class PreparedMesh:
    """Welded (and, where needed, unioned) geometry with what the shading needs.

    ``vertices`` (V, 3) / ``faces`` (F, 3) consistently wound; ``normals`` (V, 3) smooth
    per-vertex normals; ``face_normals`` (F, 3); ``flat``: shade per face; ``albedo_linear``
    (V, 3) linear vertex x part colour, or None (untextured: object colour only);
    ``notes``: what was done (welded k vertices, unioned parts ...)."""

    vertices: np.ndarray
    faces: np.ndarray
    normals: np.ndarray
    face_normals: np.ndarray
    flat: bool
    albedo_linear: np.ndarray | None
    notes: list[str]


def _weld(vertices: np.ndarray, faces: np.ndarray, colours: np.ndarray | None,
          decimals: int = 7) -> tuple[np.ndarray, np.ndarray, np.ndarray | None, int]:
    """Merge vertices at the same position (colours averaged); drop degenerate faces."""
    key = np.round(np.asarray(vertices, dtype=np.float64), decimals)
    uniq, first, inv = np.unique(key, axis=0, return_index=True, return_inverse=True)
    inv = inv.reshape(-1)
    new_faces = inv[np.asarray(faces)]
    ok = (new_faces[:, 0] != new_faces[:, 1]) & (new_faces[:, 1] != new_faces[:, 2]) & \
        (new_faces[:, 0] != new_faces[:, 2])
    cols = None
    if colours is not None:
        cols = np.zeros((len(uniq), colours.shape[1]))
        np.add.at(cols, inv, colours)
        cols /= np.bincount(inv, minlength=len(uniq))[:, None]
    return np.asarray(vertices, dtype=np.float64)[first], new_faces[ok], cols, \
        len(vertices) - len(uniq)


def _capped_volume(verts: np.ndarray, faces: np.ndarray) -> float:
    """Signed volume of a consistently wound part, each boundary loop closed by a fan
    around its centroid (wound against the loop's edges): > 0 when it faces outwards."""
    e = np.concatenate([faces[:, [0, 1]], faces[:, [1, 2]], faces[:, [2, 0]]])
    key = np.sort(e, axis=1)
    _, inv, cnt = np.unique(key, axis=0, return_inverse=True, return_counts=True)
    bnd = e[cnt[inv.reshape(-1)] == 1]  # directed boundary edges
    tris = verts[faces]
    if len(bnd):
        lab = trimesh.graph.connected_component_labels(bnd, len(verts))[bnd[:, 0]]
        centre = np.zeros((lab.max() + 1, 3))
        np.add.at(centre, lab, verts[bnd[:, 0]])
        centre /= np.maximum(np.bincount(lab, minlength=len(centre)), 1)[:, None]
        caps = np.stack([verts[bnd[:, 1]], verts[bnd[:, 0]], centre[lab]], axis=1)
        tris = np.concatenate([tris, caps])
    return float(np.einsum("fi,fi->f", tris[:, 0], np.cross(tris[:, 1], tris[:, 2])).sum() / 6)


def _orient_outwards(tm: trimesh.Trimesh) -> tuple[trimesh.Trimesh, int]:
    """Consistent winding per part, each part facing outwards: by the sign of its volume,
    holes closed by fans (a tube, a cup). A sheet's side is then arbitrary: its back stays
    black (one-sided emitters)."""
    trimesh.repair.fix_winding(tm)
    faces = np.asarray(tm.faces).copy()
    labels = trimesh.graph.connected_component_labels(tm.face_adjacency, len(faces))
    flipped = 0
    for lab in np.unique(labels):
        idx = np.flatnonzero(labels == lab)
        if _capped_volume(np.asarray(tm.vertices), faces[idx]) < 0:
            faces[idx] = faces[idx][:, ::-1]
            flipped += 1
    return trimesh.Trimesh(np.asarray(tm.vertices), faces, process=False), flipped


def prepare_mesh(mesh: trimesh.Trimesh, union: bool = True, name: str = "mesh"
                 ) -> PreparedMesh:
    """Weld, orient and check a (normalised) mesh for :class:`DiffMeshRenderer`.

    Interpenetrating parts are unioned when ``union`` and every part involved is closed and
    uncoloured; otherwise BadInput names the parts. Textured meshes raise BadInput."""
    mat = materials_of(mesh)
    notes: list[str] = []
    colours = None
    if mat is not None:
        if mat.textured:
            raise BadInput(f"{name}: UV-textured meshes are not supported by the white-box "
                           f"renderer yet (use {ref('grad')} fd)", param="mesh")
        colours = np.asarray(mat.vertex_color[:, :3], dtype=np.float64).copy()
        for part in mat.parts:  # fold each part's colour into its vertices
            idx = np.unique(np.asarray(mesh.faces)[part.start:part.stop])
            colours[idx] *= np.asarray(part.color[:3], dtype=np.float64)
        if np.allclose(colours, 1.0):
            colours = None
    verts, faces, colours, merged = _weld(np.asarray(mesh.vertices), np.asarray(mesh.faces),
                                          colours)
    if merged:
        notes.append(f"welded {merged} duplicate vertices")
    tm = trimesh.Trimesh(verts, faces, process=False)
    parts = tm.split(only_watertight=False) if len(faces) else [tm]
    if len(parts) > 1:
        pairs = _interpenetrating(list(parts))
        if pairs:
            involved = sorted({i for p in pairs for i in p})
            desc = ", ".join(f"{i}&{j}" for i, j in pairs[:6]) + (" ..." if len(pairs) > 6 else "")
            why = None
            if not union:
                why = "union is off"
            elif colours is not None:
                why = "the mesh is coloured (a union would lose its colours)"
            elif not all(parts[i].is_watertight for i in involved):
                why = "some of them are open surfaces (a union needs closed ones)"
            if why is not None:
                raise BadInput(f"{name}: parts {desc} (of {len(parts)}) interpenetrate, which "
                               f"biases white-box gradients, and cannot be unioned: {why}",
                               param="mesh")
            try:
                from trimesh.boolean import union as _union

                solid: Any = _union([parts[i] for i in involved], engine="manifold")
            except Exception as exc:  # noqa: BLE001 - no engine, or a failed boolean
                raise BadInput(f"{name}: parts {desc} interpenetrate and their union failed "
                               f"({str(exc).splitlines()[0][:120] if str(exc) else type(exc).__name__}"
                               f"); install manifold3d (whitebox extra)", param="mesh") from None
            rest = [p for i, p in enumerate(parts) if i not in involved]
            joined: Any = trimesh.util.concatenate([solid, *rest]) if rest else solid
            v2, f2, _, _ = _weld(np.asarray(joined.vertices), np.asarray(joined.faces), None)
            tm = trimesh.Trimesh(v2, f2, process=False)
            notes.append(f"unioned {len(involved)} interpenetrating parts")
    # consistent winding, each body facing outwards (the area emitter is one-sided)
    tm, flipped = _orient_outwards(tm)
    if flipped:
        notes.append(f"turned {flipped} inward-facing part(s) outwards")
    verts = np.asarray(tm.vertices, dtype=np.float64)
    faces = np.asarray(tm.faces, dtype=np.int64)
    fn = np.asarray(tm.face_normals, dtype=np.float64)
    vn = np.asarray(tm.vertex_normals, dtype=np.float64)
    # crease vertices: an adjacent face more than 30 deg from the vertex normal
    cos_fv = np.einsum("fki,fi->fk", vn[faces], fn)
    crease = np.zeros(len(verts), bool)
    np.logical_or.at(crease, faces.reshape(-1),
                     (cos_fv < math.cos(math.radians(_CREASE_DEG))).reshape(-1))
    flat = False  # face colours jump at edges, which the projective sampling misses
    if crease.any():
        notes.append(f"{int(crease.sum())} crease vertices shaded smooth")
    return PreparedMesh(verts, faces, vn, fn, flat, colours, notes)


# ------------------------------------------------------------------ renderer
def _mesh_key(mesh: trimesh.Trimesh) -> tuple:
    mat = materials_of(mesh)
    return (id(mesh), len(mesh.faces), float(np.asarray(mesh.vertices).sum()),
            None if mat is None else id(mat))


#: parameters the differentiable path takes gradients for (all registered ones)
DIFF_PARAMS: tuple[str, ...] = tuple(PARAMETERS)


class DiffMeshRenderer:
    """Render a mesh like :class:`~robustlens.render.MeshRenderer`, differentiably.

    Args:
        image_size: output side in pixels.
        spp: samples per pixel of the image (the primal).
        spp_grad: samples per pixel of the adjoint (gradient) pass.
        seed: sampler seed: the same seed gives the same image for the same scene (common
            random numbers across poses, which finite differences need).
        variant: ``llvm_ad_rgb`` (CPU) or ``cuda_ad_rgb`` (NVIDIA GPU; written, untested).
        union: union interpenetrating closed parts (else refuse them).

    :meth:`render` has the ``MeshRenderer`` signature and returns ``(B, 3, H, W)`` in [0, 1]
    without gradients; :meth:`render_grad` returns one image and the gradients of
    ``sum(image * weight)`` with respect to the chosen parameters (per unit: per degree for
    angles).
    """

    def __init__(self, image_size: int = paper.IMAGE_SIZE, spp: int = 64, spp_grad: int = 16,
                 seed: int = 0, variant: str = "llvm_ad_rgb", union: bool = True) -> None:
        if image_size < 8 or image_size > 2048:
            raise BadInput(f"{image_size}: expected 8..2048 pixels", param="image_size")
        for nm, v in (("spp", spp), ("spp_grad", spp_grad)):
            if int(v) != v or v < 1:
                raise BadInput(f"{v}: expected a positive integer", param=nm)
        check_backend(variant, param="grad")
        import mitsuba as mi

        self.mi = mi
        self.image_size = int(image_size)
        self.spp = int(spp)
        self.spp_grad = int(spp_grad)
        self.seed = int(seed)
        self.variant = variant
        self.union = bool(union)
        self._key: tuple | None = None
        self.prepared: PreparedMesh | None = None
        self._scene: Any = None
        self._params: Any = None
        self.n_renders_ = 0

    # ------------------------------------------------------------------ setup
    def _setup(self, mesh: trimesh.Trimesh) -> None:
        import drjit as dr

        mi = self.mi
        key = _mesh_key(mesh)
        if key == self._key:
            return
        prep = prepare_mesh(mesh, union=self.union)
        nv, nf = len(prep.vertices), len(prep.faces)
        props = mi.Properties()
        attr = "face_color" if prep.flat else "vertex_color"
        props["emitter"] = mi.load_dict({"type": "area", "radiance": {
            "type": "mesh_attribute", "name": attr}})
        props["bsdf"] = mi.load_dict({"type": "diffuse", "reflectance": {
            "type": "rgb", "value": [0.0, 0.0, 0.0]}})
        shape = mi.Mesh("object", nv, nf, props=props, has_vertex_normals=False)
        shape.add_attribute(attr, 3, np.zeros((nf if prep.flat else nv) * 3, np.float32))
        sp = mi.traverse(shape)
        sp["vertex_positions"] = mi.Float(prep.vertices.astype(np.float32).ravel())
        sp["faces"] = mi.UInt32(prep.faces.astype(np.uint32).ravel())
        sp.update()
        s = self.image_size
        self._scene = mi.load_dict({
            "type": "scene",
            "integrator": {"type": "prb_projective", "max_depth": 1, "sppi": 0},
            "sensor": {
                "type": "perspective", "fov": _SENSOR_FOV, "fov_axis": "y",
                "near_clip": 1e-3, "far_clip": 1e4,
                "to_world": mi.ScalarTransform4f().look_at(origin=[0, 0, 0], target=[0, 0, -1],
                                                           up=[0, 1, 0]),
                "film": {"type": "hdrfilm", "width": s, "height": s, "pixel_format": "rgb",
                         "rfilter": {"type": "box"}, "sample_border": True},
                "sampler": {"type": "independent"}},
            "object": shape,
            "background": {"type": "constant", "radiance": {"type": "rgb",
                                                            "value": [0.0, 0.0, 0.0]}},
        })
        self._params = mi.traverse(self._scene)
        self._attr = f"object.{attr}"
        self._v = mi.Point3f(*(mi.Float(prep.vertices[:, i].astype(np.float32))
                               for i in range(3)))
        normals = prep.face_normals if prep.flat else prep.normals
        self._n = mi.Vector3f(*(mi.Float(normals[:, i].astype(np.float32)) for i in range(3)))
        self._alb = None
        if prep.albedo_linear is not None:
            a = prep.albedo_linear
            if prep.flat:  # face colour: mean of its corners
                a = a[prep.faces].mean(axis=1)
            self._alb = mi.Color3f(*(mi.Float(a[:, i].astype(np.float32)) for i in range(3)))
        dr.make_opaque(self._v, self._n)
        if self._alb is not None:
            dr.make_opaque(self._alb)
        self.prepared = prep
        self._key = key

    # ----------------------------------------------------------- scene update
    @staticmethod
    def _srgb_to_linear(dr: Any, c: Any) -> Any:
        c = dr.clip(c, 0.0, 1.0)
        return dr.select(c <= 0.04045, c / 12.92, dr.power((c + 0.055) / 1.055, 2.4))

    @staticmethod
    def _linear_to_srgb(dr: Any, c: Any) -> Any:
        c = dr.clip(c, 0.0, 1.0)
        return dr.select(c <= 0.0031308, c * 12.92,
                         1.055 * dr.power(dr.maximum(c, 1e-12), 1.0 / 2.4) - 0.055)

    def _apply(self, q: Mapping[str, Any]) -> None:
        """Write vertex positions, colours and background of pose ``q`` (name -> mi.Float)
        into the scene (differentiably when the floats carry gradients)."""
        import drjit as dr

        mi = self.mi
        deg = math.pi / 180.0
        az, el, dist = q["azimuth"] * deg, q["elevation"] * deg, q["distance"]
        ca, sa, ce, se = dr.cos(az), dr.sin(az), dr.cos(el), dr.sin(el)
        v = self._v
        # Ry(-az) v, then Rx(el)
        x1 = ca * v.x - sa * v.z
        z1 = sa * v.x + ca * v.z
        y2 = ce * v.y - se * z1
        z2 = se * v.y + ce * z1
        k = math.tan(math.radians(_SENSOR_FOV) / 2.0) / dr.tan(q["fov"] * deg / 2.0)
        pos = mi.Point3f(x1 * k, y2 * k, z2 - dist)
        self._params["object.vertex_positions"] = dr.ravel(pos)
        # Lambert in the world frame
        laz, lel = q["light_azimuth"] * deg, q["light_elevation"] * deg
        ldir = mi.Vector3f(dr.cos(lel) * dr.sin(laz), dr.sin(lel), dr.cos(lel) * dr.cos(laz))
        lam = dr.maximum(dr.dot(self._n, ldir), 0.0)
        shade = q["ambient"] + q["light_intensity"] * lam
        obj = mi.Color3f(q["object_r"], q["object_g"], q["object_b"])
        if self._alb is None:
            albedo = obj
        else:
            albedo = self._linear_to_srgb(dr, self._alb * self._srgb_to_linear(dr, obj))
        col = dr.clip(albedo * shade, 0.0, 1.0)
        self._params[self._attr] = dr.ravel(col)
        self._params["background.radiance.value"] = mi.Color3f(
            q["background_r"], q["background_g"], q["background_b"])
        self._params.update()

    def _pose(self, p: Mapping[str, np.ndarray], i: int, grad: Sequence[str] = ()
              ) -> dict[str, Any]:
        import drjit as dr

        mi = self.mi
        q: dict[str, Any] = {}
        for name in DIFF_PARAMS:
            val = float(p[name][i])
            if name in ("azimuth", "light_azimuth"):
                val = val % 360.0
            f = dr.opaque(mi.Float, val)
            if name in grad:
                dr.enable_grad(f)
            q[name] = f
        return q

    # ----------------------------------------------------------------- render
    def render(self, mesh: trimesh.Trimesh, params: Mapping[str, np.ndarray | float],
               fixed: Mapping[str, float] | None = None) -> torch.Tensor:
        """``(B, 3, H, W)`` float32 images in [0, 1] (no gradients), as MeshRenderer."""
        import drjit as dr

        p = scene_batch(params, fixed=fixed)
        self._setup(mesh)
        out = []
        for i in range(len(p["azimuth"])):
            with dr.suspend_grad():
                self._apply(self._pose(p, i))
                img = self.mi.render(self._scene, spp=self.spp, seed=self.seed)  # type: ignore[arg-type]
            self.n_renders_ += 1
            out.append(torch.from_numpy(np.array(img, dtype=np.float32)).permute(2, 0, 1))
        return torch.stack(out).clamp_(0.0, 1.0)

    def render_grad(self, mesh: trimesh.Trimesh, params: Mapping[str, np.ndarray | float],
                    names: Sequence[str], weight_fn: Any,
                    fixed: Mapping[str, float] | None = None
                    ) -> tuple[torch.Tensor, np.ndarray, np.ndarray]:
        """Images, values and gradients of ``weight_fn`` for each pose.

        ``weight_fn`` maps one ``(1, 3, H, W)`` image to ``(value, dvalue/dimage)`` (e.g. a
        classifier's score and its torch gradient). Returns the images ``(B, 3, H, W)``, the
        values ``(B,)`` and the gradients ``(B, len(names))`` of each value with respect to
        ``names`` (per degree for angles): one primal and one adjoint render per pose, the
        value computed on that very primal image."""
        import drjit as dr

        mi = self.mi
        for n in names:
            if n not in DIFF_PARAMS:
                raise BadInput(f"{n!r}: no gradient for this parameter", param="param")
        p = scene_batch(params, fixed=fixed)
        self._setup(mesh)
        b = len(p["azimuth"])
        imgs, values = [], np.zeros(b)
        grads = np.zeros((b, len(names)))
        for i in range(b):
            q = self._pose(p, i, grad=names)
            self._apply(q)
            img = mi.render(self._scene, self._params, spp=self.spp, spp_grad=self.spp_grad,
                            seed=self.seed, seed_grad=self.seed + 1)
            self.n_renders_ += 1
            image = torch.from_numpy(np.array(img, dtype=np.float32)).permute(2, 0, 1)
            value, dimg = weight_fn(image[None])
            d = torch.as_tensor(dimg).detach().float()[0].permute(1, 2, 0).contiguous()
            dr.backward(img * mi.TensorXf(d.numpy()))
            grads[i] = [float(dr.grad(q[n])[0]) for n in names]
            values[i] = float(value)
            imgs.append(image.clamp(0.0, 1.0))
        return torch.stack(imgs), values, grads

    def image_derivative(self, mesh: trimesh.Trimesh, params: Mapping[str, float], name: str,
                         fixed: Mapping[str, float] | None = None
                         ) -> tuple[torch.Tensor, torch.Tensor]:
        """One image ``(3, H, W)`` and its derivative with respect to ``name`` (per unit:
        per degree for angles), by forward-mode differentiation through the renderer."""
        import drjit as dr

        mi = self.mi
        if name not in DIFF_PARAMS:
            raise BadInput(f"{name!r}: no gradient for this parameter", param="param")
        p = scene_batch({k: np.atleast_1d(v) for k, v in params.items()}, fixed=fixed)
        self._setup(mesh)
        q = self._pose(p, 0, grad=[name])
        self._apply(q)
        img = mi.render(self._scene, self._params, spp=self.spp, spp_grad=self.spp_grad,
                        seed=self.seed, seed_grad=self.seed + 1)
        dr.forward(q[name])
        grad = dr.grad(img)
        self.n_renders_ += 1

        def chw(t: Any) -> torch.Tensor:
            return torch.from_numpy(np.array(t, dtype=np.float32)).permute(2, 0, 1)

        return chw(img), chw(grad)

    def close(self) -> None:
        """Drop the scene (idempotent)."""
        self._scene = self._params = None
        self._key = None

    def __enter__(self) -> DiffMeshRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()


def llvm_in_use() -> str:
    """The libLLVM version Dr.Jit loaded (after :func:`check_backend`), e.g. ``19.1.7``."""
    import drjit as dr

    return ".".join(map(str, dr.detail.llvm_version()))


def whitebox_available(variant: str = "llvm_ad_rgb") -> bool:
    """Whether the white-box backend runs here (see :func:`backend_problem`)."""
    return backend_problem(variant) is None


__all__ = ["DIFF_PARAMS", "DiffMeshRenderer", "MIN_LLVM", "PreparedMesh", "backend_problem",
           "check_backend", "llvm_in_use", "prepare_mesh", "whitebox_available"]
