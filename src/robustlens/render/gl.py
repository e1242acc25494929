"""Headless batched rasteriser: moderngl over EGL (Mesa llvmpipe on CPU, the GPU driver where
there is one).

Lambert model (smooth or flat shading), two-sided, 4x MSAA: colour = albedo * (ambient +
intensity * max(0, n.l)). The albedo of an untextured mesh is ``object_color``; a mesh carrying
:class:`~robustlens.render.materials.Materials` gets texture x material x vertex colour x
``object_color``, multiplied in linear light and encoded back to sRGB (see materials.py).
Same parameters -> same image (no randomness anywhere).
"""

from __future__ import annotations

import threading
from collections.abc import Mapping
from typing import Any

import numpy as np
import torch
import trimesh

from .. import paper
from ..errors import BadInput
from .camera import light_direction, perspective, view_matrix
from .materials import Materials, materials_of, srgb_to_linear
from .scene import scene_batch

_VERT = """
#version 330
uniform mat4 mvp;
in vec3 in_pos;
in vec3 in_normal;
out vec3 v_normal;
void main() {
    v_normal = in_normal;
    gl_Position = mvp * vec4(in_pos, 1.0);
}
"""

_FRAG = """
#version 330
uniform vec3 light_dir;
uniform vec3 color;
uniform float ambient;
uniform float intensity;
in vec3 v_normal;
out vec4 f_color;
void main() {
    vec3 n = normalize(v_normal);
    if (!gl_FrontFacing) n = -n;   // two-sided: mesh winding need not be consistent
    float lambert = max(dot(n, light_dir), 0.0);
    f_color = vec4(clamp(color * (ambient + intensity * lambert), 0.0, 1.0), 1.0);
}
"""


# Coloured meshes: UVs and linear vertex colours; textures hold sRGB values (filtered as such).
# Two variants: TINTED multiplies texture x vertex colour x object colour in linear light; the
# plain one (nothing to multiply by, the common case) uses the texture as it is, because the
# sRGB round trip (pow) costs a third of the frame on llvmpipe, which evaluates both sides of
# any branch.
_VERT_TEX = """
#version 330
uniform mat4 mvp;
in vec3 in_pos;
in vec3 in_normal;
in vec2 in_uv;
out vec3 v_normal;
out vec2 v_uv;
#ifdef TINTED
in vec4 in_color;
out vec3 v_color;
#endif
void main() {
    v_normal = in_normal;
    v_uv = in_uv;
#ifdef TINTED
    v_color = in_color.rgb;
#endif
    gl_Position = mvp * vec4(in_pos, 1.0);
}
"""

_FRAG_TEX = """
#version 330
uniform sampler2D tex;
uniform vec3 light_dir;
uniform float ambient;
uniform float intensity;
in vec3 v_normal;
in vec2 v_uv;
out vec4 f_color;
#ifdef TINTED
uniform vec3 color_linear;   // object_color decoded from sRGB, times the part's factor
in vec3 v_color;
vec3 to_linear(vec3 c) {
    return mix(c / 12.92, pow((c + 0.055) / 1.055, vec3(2.4)), step(0.04045, c));
}
vec3 to_srgb(vec3 c) {
    c = clamp(c, 0.0, 1.0);
    return mix(c * 12.92, 1.055 * pow(c, vec3(1.0 / 2.4)) - 0.055, step(0.0031308, c));
}
#endif
void main() {
    vec3 n = normalize(v_normal);
    if (!gl_FrontFacing) n = -n;
    float lambert = max(dot(n, light_dir), 0.0);
    vec3 albedo = texture(tex, v_uv).rgb;
#ifdef TINTED
    albedo = to_srgb(to_linear(albedo) * v_color * color_linear);
#endif
    f_color = vec4(clamp(albedo * (ambient + intensity * lambert), 0.0, 1.0), 1.0);
}
"""


def _variant(src: str, tinted: bool) -> str:
    return src.replace("#version 330\n", "#version 330\n#define TINTED\n" if tinted else
                       "#version 330\n", 1)


def _create_context():  # -> moderngl.Context
    import moderngl

    # Triton (pulled in lazily by torch._dynamo, torchvision.ops, timm...) segfaults when it is
    # first imported after Mesa has loaded its own LLVM into the process. Import it first.
    try:
        import triton  # noqa: F401
    except Exception:  # not installed, or a CPU-only build: nothing to protect against
        pass

    errors = []
    backends: list[dict[str, Any]] = [{"backend": "egl"}, {}]
    for kwargs in backends:
        try:
            return moderngl.create_standalone_context(require=330, **kwargs)
        except Exception as exc:  # noqa: PERF203 - try the next backend
            errors.append(f"{kwargs.get('backend', 'default')}: {str(exc).splitlines()[0]}")
    raise BadInput("renderer: no headless OpenGL 3.3 context (" + "; ".join(errors) +
                   "); on Debian/Ubuntu install libegl1 and libgl1-mesa-dri")


class MeshRenderer:
    """Render a mesh under batches of scene parameters.

    Args:
        image_size: output side H = W in pixels (paper: 224).
        msaa: multisample count for anti-aliasing (0 disables).
        smooth: smooth shading (normals averaged across edges flatter than 30 deg) instead of
            flat per-face shading.

    The OpenGL context belongs to the thread that first renders; use one renderer per thread.
    """

    def __init__(self, image_size: int = paper.IMAGE_SIZE, msaa: int = 4, smooth: bool = True) -> None:
        if image_size < 8 or image_size > 2048:
            raise BadInput(f"{image_size}: expected 8..2048 pixels", param="image_size")
        self.image_size = int(image_size)
        self.msaa = int(msaa)
        self.smooth = bool(smooth)
        self._ctx: Any = None
        self._thread: int | None = None
        self._mesh_key: tuple | None = None
        self._vao: Any = None
        self._vbo: Any = None
        self._ibo: Any = None
        self._vao_tint: Any = None
        self._vertex_colours = False
        self._draws: list[tuple[int, int, Any, np.ndarray]] = []  # first, count, tex, factor
        self._textures: list = []

    # ------------------------------------------------------------------ setup
    def _setup(self) -> None:
        import moderngl

        self._thread = threading.get_ident()
        ctx = _create_context()
        self._ctx = ctx
        self._prog = ctx.program(vertex_shader=_VERT, fragment_shader=_FRAG)
        self._prog_tex = ctx.program(vertex_shader=_variant(_VERT_TEX, False),
                                     fragment_shader=_variant(_FRAG_TEX, False))
        self._prog_tint = ctx.program(vertex_shader=_variant(_VERT_TEX, True),
                                      fragment_shader=_variant(_FRAG_TEX, True))
        self._white = ctx.texture((1, 1), 3, b"\xff\xff\xff")
        side = self.image_size
        self._fbo = ctx.simple_framebuffer((side, side), components=4)
        if self.msaa:
            self._ms_fbo = ctx.framebuffer(
                color_attachments=[ctx.renderbuffer((side, side), 4, samples=self.msaa)],
                depth_attachment=ctx.depth_renderbuffer((side, side), samples=self.msaa))
        else:
            self._ms_fbo = ctx.framebuffer(
                color_attachments=[ctx.renderbuffer((side, side), 4)],
                depth_attachment=ctx.depth_renderbuffer((side, side)))
        ctx.enable(moderngl.DEPTH_TEST)
        ctx.disable(moderngl.CULL_FACE)

    def _corners(self, mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
        """Per-corner positions and normals ``(F, 3, 3)`` each, as today's untextured path."""
        if self.smooth:
            # split vertices at creases sharper than 30 deg, average normals elsewhere
            shaded = trimesh.graph.smooth_shade(mesh, angle=np.radians(30.0))
            faces = np.asarray(shaded.faces)
            tri = np.asarray(shaded.vertices, dtype=np.float32)[faces]  # (F, 3, 3)
            normals = np.asarray(shaded.vertex_normals, dtype=np.float32)[faces]
        else:
            tri = np.asarray(mesh.vertices, dtype=np.float32)[np.asarray(mesh.faces)]
            normals = np.repeat(np.asarray(mesh.face_normals, dtype=np.float32)[:, None], 3, 1)
        return tri, normals

    def _release_mesh(self) -> None:
        if self._vao is not None:
            self._vao.release()
            self._vbo.release()
        if self._vao_tint is not None:
            self._vao_tint.release()
            self._vao_tint = None
        if self._ibo is not None:
            self._ibo.release()
            self._ibo = None
        for t in self._textures:
            t.release()
        self._vao, self._vbo, self._textures, self._draws = None, None, [], []

    def _upload(self, mesh: trimesh.Trimesh) -> None:
        mat = materials_of(mesh)
        key = (id(mesh), len(mesh.faces), float(np.asarray(mesh.vertices).sum()),
               None if mat is None else id(mat))
        if self._mesh_key == key:
            return
        self._release_mesh()
        if mat is None:
            tri, normals = self._corners(mesh)
            data = np.concatenate([tri, normals], axis=2)
            self._vbo = self._ctx.buffer(np.ascontiguousarray(data).tobytes())
            self._vao = self._ctx.vertex_array(self._prog,
                                               [(self._vbo, "3f 3f", "in_pos", "in_normal")])
        else:
            self._upload_coloured(mesh, mat)
        self._mesh_key = key

    def _upload_coloured(self, mesh: trimesh.Trimesh, mat: Materials) -> None:
        import moderngl

        faces = np.asarray(mesh.faces)
        if len(mat.uv) != len(mesh.vertices) or len(mat.vertex_color) != len(mesh.vertices):
            raise BadInput(f": materials describe {len(mat.uv)} vertices but the mesh has "
                           f"{len(mesh.vertices)} (the mesh was edited after loading)",
                           param="mesh")
        tri, normals = self._smooth_corners_by_position(mesh) if self.smooth else \
            self._corners(mesh)
        uv = mat.uv[faces]  # (F, 3, 2)
        col = mat.vertex_color[faces]  # (F, 3, 4)
        corners = np.ascontiguousarray(
            np.concatenate([tri, normals, uv, col], axis=2).astype(np.float32).reshape(-1, 12))
        # Indexed drawing: corners shared by several triangles (same position, normal, UV and
        # colour) are shaded once; on llvmpipe this more than pays for the wider vertices.
        rows = corners.view(np.dtype((np.void, corners.dtype.itemsize * 12))).ravel()
        _, first, index = np.unique(rows, return_index=True, return_inverse=True)
        self._vbo = self._ctx.buffer(corners[first].tobytes())
        self._ibo = self._ctx.buffer(index.reshape(-1).astype(np.uint32).tobytes())
        self._vao = self._ctx.vertex_array(
            self._prog_tex, [(self._vbo, "3f 3f 2f 16x", "in_pos", "in_normal", "in_uv")],
            index_buffer=self._ibo, index_element_size=4)
        self._vao_tint = self._ctx.vertex_array(
            self._prog_tint, [(self._vbo, "3f 3f 2f 4f", "in_pos", "in_normal", "in_uv",
                               "in_color")], index_buffer=self._ibo, index_element_size=4)
        for part in mat.parts:
            tex = self._white
            if part.texture is not None:
                img = np.ascontiguousarray(part.texture[::-1])  # GL rows start at v = 0
                h, w = img.shape[:2]
                # sRGB values in a plain RGB8 texture: llvmpipe's fast 8-bit filtering path
                tex = self._ctx.texture((w, h), 3, img.tobytes(), alignment=1)
                tex.build_mipmaps()
                tex.filter = (moderngl.LINEAR_MIPMAP_LINEAR, moderngl.LINEAR)
                self._textures.append(tex)
            self._draws.append((3 * part.start, 3 * (part.stop - part.start), tex,
                                np.asarray(part.color[:3], dtype=np.float64)))
        self._vertex_colours = bool(np.any(mat.vertex_color[:, :3] != 1.0))

    @staticmethod
    def _smooth_corners_by_position(mesh: trimesh.Trimesh) -> tuple[np.ndarray, np.ndarray]:
        """Smooth-shading normals of a mesh whose vertices are split at UV seams: the normals
        come from the mesh with coincident vertices merged (seams must not show in the
        shading), with the same 30 deg crease rule; corners keep the original face order."""
        verts = np.asarray(mesh.vertices)
        faces = np.asarray(mesh.faces)
        uniq, inv = np.unique(verts, axis=0, return_inverse=True)
        merged = trimesh.Trimesh(uniq, inv.reshape(-1)[faces], process=False)
        shaded = trimesh.graph.smooth_shade(merged, angle=np.radians(30.0))
        comps = shaded.metadata.get("original_components")
        order = np.concatenate([np.asarray(c).reshape(-1) for c in comps]) if comps is not None \
            and len(shaded.faces) == len(faces) else np.arange(len(faces))
        normals = np.empty((len(faces), 3, 3), dtype=np.float32)
        normals[order] = np.asarray(shaded.vertex_normals, dtype=np.float32)[
            np.asarray(shaded.faces)]
        tri = verts.astype(np.float32)[faces]
        return tri, normals

    # ----------------------------------------------------------------- render
    def render(self, mesh: trimesh.Trimesh, params: Mapping[str, np.ndarray | float],
               fixed: Mapping[str, float] | None = None) -> torch.Tensor:
        """Render ``mesh`` for each pose of ``params``.

        Args:
            mesh: a (normalised) trimesh.
            params: per-pose values ``name -> (B,)`` of registered scene parameters.
            fixed: scalar overrides for the other parameters' defaults.

        Returns:
            ``(B, 3, H, W)`` float32 tensor in [0, 1].
        """
        if self._ctx is None:
            self._setup()
        elif threading.get_ident() != self._thread:
            raise RuntimeError("MeshRenderer used from a second thread; create one per thread")
        # several renderers may live in one thread: make this one's context current
        with self._ctx:
            return self._render(mesh, params, fixed)

    @staticmethod
    def _set_common(prog, mvp: np.ndarray, light: np.ndarray, p: Mapping[str, np.ndarray],
                    i: int) -> None:
        # GL wants column-major matrices
        prog["mvp"].write(np.ascontiguousarray(mvp.T).tobytes())
        prog["light_dir"].value = tuple(light)
        prog["ambient"].value = float(p["ambient"][i])
        prog["intensity"].value = float(p["light_intensity"][i])

    def _render(self, mesh: trimesh.Trimesh, params: Mapping[str, np.ndarray | float],
                fixed: Mapping[str, float] | None) -> torch.Tensor:
        p = scene_batch(params, fixed=fixed)
        b = len(p["azimuth"])
        self._upload(mesh)
        view = view_matrix(p["azimuth"], p["elevation"], p["distance"])
        near = np.maximum(p["distance"] - 1.5, 0.01)
        far = p["distance"] + 1.5
        mvp = (perspective(p["fov"], near, far) @ view).astype(np.float32)
        light = light_direction(p["light_azimuth"], p["light_elevation"]).astype(np.float32)
        obj = np.stack([p["object_r"], p["object_g"], p["object_b"]], -1).astype(np.float32)
        bg = np.stack([p["background_r"], p["background_g"], p["background_b"]], -1)
        s = self.image_size
        out = np.empty((b, s, s, 3), dtype=np.uint8)
        # Every pose is drawn at the same framebuffer position: window coordinates, and so the
        # rasterised pixels, do not depend on where a pose falls in the batch.
        vp = (0, 0, s, s)
        for i in range(b):
            self._ms_fbo.use()
            self._ctx.viewport = vp
            r, g, bb = (float(c) for c in bg[i])
            self._ctx.clear(r, g, bb, 1.0, depth=1.0)
            if self._draws:
                obj_lin = srgb_to_linear(obj[i])
                for first, count, tex, factor in self._draws:
                    k = obj_lin * factor
                    tinted = self._vertex_colours or not np.all(k == 1.0)
                    prog, vao = (self._prog_tint, self._vao_tint) if tinted else \
                        (self._prog_tex, self._vao)
                    self._set_common(prog, mvp[i], light[i], p, i)
                    if tinted:
                        prog["color_linear"].value = tuple(float(c) for c in k)
                    tex.use(0)
                    vao.render(first=first, vertices=count)
            else:
                self._set_common(self._prog, mvp[i], light[i], p, i)
                self._prog["color"].value = tuple(obj[i])
                self._vao.render()
            self._ctx.copy_framebuffer(self._fbo, self._ms_fbo)
            self._fbo.read_into(out[i], viewport=vp, components=3, alignment=1)
        out = out[:, ::-1]  # GL rows start at the bottom
        return torch.from_numpy(np.ascontiguousarray(out)).permute(0, 3, 1, 2).float().div_(255.0)

    def close(self) -> None:
        """Release the OpenGL context (idempotent)."""
        if self._ctx is not None:
            self._ctx.release()
            self._ctx = None

    def __enter__(self) -> MeshRenderer:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()
