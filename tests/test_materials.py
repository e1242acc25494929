"""Textures, material and vertex colours: known answers on a cube whose faces have their own
colours, from glTF, OBJ+MTL and PLY alike; sRGB handling; bad texture/colour input."""

from __future__ import annotations

import json

import numpy as np
import pytest
import torch
import trimesh
from PIL import Image

from robustlens.errors import BadInput
from robustlens.render import load_mesh, normalize_mesh
from robustlens.render.materials import linear_to_srgb, materials_of, srgb_to_linear

# +x, -x, +y, -y, +z, -z: one sRGB colour per face
FACE_COLOURS = np.array([[200, 30, 30], [30, 160, 40], [40, 60, 210], [230, 200, 20],
                         [20, 200, 200], [180, 40, 190]], dtype=np.uint8)
# camera (azimuth, elevation) that looks straight at each face
VIEWS = [(90.0, 0.0), (270.0, 0.0), (0.0, 90.0), (0.0, -90.0), (0.0, 0.0), (180.0, 0.0)]
FLAT = {"ambient": 1.0, "light_intensity": 0.0}  # albedo shows unshaded


def cube_quads() -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """24 vertices (4 per face, faces in FACE_COLOURS order), 12 triangles, and the (u, v)
    of each corner inside its face's square (0..1)."""
    verts, faces, local = [], [], []
    for k, (axis, sign) in enumerate([(0, 1), (0, -1), (1, 1), (1, -1), (2, 1), (2, -1)]):
        a, b = [i for i in range(3) if i != axis]
        for u, v in [(0, 0), (1, 0), (1, 1), (0, 1)]:
            p = np.zeros(3)
            p[axis] = sign
            p[a], p[b] = 2 * u - 1, 2 * v - 1
            verts.append(p)
            local.append((u, v))
        faces += [[4 * k, 4 * k + 1, 4 * k + 2], [4 * k, 4 * k + 2, 4 * k + 3]]
    return np.array(verts), np.array(faces), np.array(local, dtype=np.float64)


def atlas() -> tuple[Image.Image, np.ndarray]:
    """A 3x2 atlas of 16-px colour blocks and the UVs (OpenGL convention, v up) that map
    each cube face into the middle of its block."""
    img = np.zeros((32, 48, 3), dtype=np.uint8)
    _, _, local = cube_quads()
    uv = np.zeros((24, 2))
    for k, c in enumerate(FACE_COLOURS):
        col, row = k % 3, k // 3
        img[row * 16:(row + 1) * 16, col * 16:(col + 1) * 16] = c
        u0, v_top = col * 16 + 4, row * 16 + 4  # 4 px inset: filtering stays inside the block
        for j in range(4):
            lu, lv = local[4 * k + j]
            x = u0 + 8 * lu
            y = v_top + 8 * (1 - lv)  # image row, from the top
            uv[4 * k + j] = (x / 48, 1 - y / 32)
    return Image.fromarray(img), uv


def write_gltf(path):
    verts, faces, _ = cube_quads()
    img, uv = atlas()
    mat = trimesh.visual.material.PBRMaterial(baseColorTexture=img,
                                              baseColorFactor=[255, 255, 255, 255])
    trimesh.Trimesh(verts, faces, visual=trimesh.visual.TextureVisuals(uv=uv, material=mat),
                    process=False).export(path)


def write_obj(tmp_path, texture_name="atlas.png", kd="1 1 1"):
    verts, faces, _ = cube_quads()
    img, uv = atlas()
    img.save(tmp_path / "atlas.png")
    (tmp_path / "cube.mtl").write_text(f"newmtl faces\nKd {kd}\nmap_Kd {texture_name}\n")
    lines = ["mtllib cube.mtl"] + [f"v {x} {y} {z}" for x, y, z in verts]
    lines += [f"vt {u} {v}" for u, v in uv] + ["usemtl faces"]
    lines += ["f " + " ".join(f"{i + 1}/{i + 1}" for i in f) for f in faces]
    (tmp_path / "cube.obj").write_text("\n".join(lines) + "\n")
    return tmp_path / "cube.obj"


def write_ply(path):
    verts, faces, _ = cube_quads()
    cols = np.repeat(FACE_COLOURS, 4, axis=0)
    trimesh.Trimesh(verts, faces, vertex_colors=cols, process=False).export(path)


def face_colours(renderer, mesh, fixed=None) -> np.ndarray:
    """(6, 3) uint8 colour at the image centre, looking at each face in turn."""
    az = np.array([v[0] for v in VIEWS])
    el = np.array([v[1] for v in VIEWS])
    img = renderer.render(mesh, {"azimuth": az, "elevation": el}, fixed={**FLAT, **(fixed or {})})
    return (img[:, :, 112, 112] * 255).round().to(torch.int64).numpy()


@pytest.mark.parametrize("kind", ["glb", "obj", "ply"])
def test_cube_faces_render_in_their_own_colours(tmp_path, renderer, kind):
    path = {"glb": lambda: (write_gltf(tmp_path / "cube.glb"), tmp_path / "cube.glb")[1],
            "obj": lambda: write_obj(tmp_path),
            "ply": lambda: (write_ply(tmp_path / "cube.ply"), tmp_path / "cube.ply")[1]}[kind]()
    mesh = load_mesh(path)
    assert materials_of(mesh) is not None
    got = face_colours(renderer, mesh)
    np.testing.assert_allclose(got, FACE_COLOURS, atol=1)
    # texture off: plain white, like an untextured mesh
    plain = load_mesh(path, texture=False)
    assert materials_of(plain) is None
    np.testing.assert_array_equal(face_colours(renderer, plain), np.full((6, 3), 255))


def test_object_colour_multiplies_texture_in_linear_light(tmp_path, renderer):
    write_gltf(tmp_path / "cube.glb")
    mesh = load_mesh(tmp_path / "cube.glb")
    got = face_colours(renderer, mesh, {"object_r": 0.5, "object_g": 1.0, "object_b": 0.25})
    obj = np.array([0.5, 1.0, 0.25])
    want = linear_to_srgb(srgb_to_linear(FACE_COLOURS / 255.0) * srgb_to_linear(obj)) * 255
    np.testing.assert_allclose(got, want, atol=1.01)


def test_mtl_kd_multiplies_texture(tmp_path, renderer):
    mesh = load_mesh(write_obj(tmp_path, kd="0.5 0.5 0.5"))
    want = linear_to_srgb(srgb_to_linear(FACE_COLOURS / 255.0) * 0.5) * 255
    np.testing.assert_allclose(face_colours(renderer, mesh), want, atol=1.01)


def test_white_texture_renders_like_untextured_mesh(tmp_path, renderer):
    """Shading is the same with and without texture: only the albedo changes."""
    sphere = trimesh.creation.icosphere(subdivisions=4)
    uv = np.random.default_rng(0).random((len(sphere.vertices), 2))
    white = trimesh.visual.material.PBRMaterial(
        baseColorTexture=Image.new("RGB", (8, 8), (255, 255, 255)),
        baseColorFactor=[255, 255, 255, 255])
    textured = trimesh.Trimesh(sphere.vertices, sphere.faces, process=False,
                               visual=trimesh.visual.TextureVisuals(uv=uv, material=white))
    textured.export(tmp_path / "s.glb")
    a = load_mesh(tmp_path / "s.glb")
    assert materials_of(a) is not None
    b = normalize_mesh(sphere)
    params = {"azimuth": np.array([0.0, 70.0]), "elevation": np.array([10.0, 50.0])}
    ia, ib = renderer.render(a, params), renderer.render(b, params)
    diff = (ia - ib).abs()
    assert float(diff.max()) <= 2.5 / 255, float(diff.max())


def test_srgb_round_trip_and_known_values():
    x = np.linspace(0, 1, 101)
    np.testing.assert_allclose(linear_to_srgb(srgb_to_linear(x)), x, atol=1e-12)
    assert abs(float(srgb_to_linear(np.array(0.5))) - 0.214041) < 1e-5
    assert float(linear_to_srgb(np.array(1.0))) == pytest.approx(1.0)


def test_scene_graph_transforms_and_parts_keep_materials(tmp_path, renderer):
    """Two coloured boxes placed by scene nodes: both parts keep their own colour."""
    scene = trimesh.Scene()
    for name, colour, x in [("red", [255, 0, 0, 255], -1.0), ("blue", [0, 0, 255, 255], 1.0)]:
        box = trimesh.creation.box(extents=(1.0, 1.0, 1.0))
        box.visual = trimesh.visual.TextureVisuals(
            material=trimesh.visual.material.PBRMaterial(baseColorFactor=colour))
        scene.add_geometry(box, geom_name=name,
                           transform=trimesh.transformations.translation_matrix([x, 0, 0]))
    scene.export(tmp_path / "two.glb")
    mesh = load_mesh(tmp_path / "two.glb")
    assert len(materials_of(mesh).parts) == 2
    img = renderer.render(mesh, {}, fixed=FLAT)[0]
    left, right = img[:, 112, 60], img[:, 112, 164]
    torch.testing.assert_close(left, torch.tensor([1.0, 0.0, 0.0]), atol=0.01, rtol=0)
    torch.testing.assert_close(right, torch.tensor([0.0, 0.0, 1.0]), atol=0.01, rtol=0)


def test_textured_render_is_deterministic_and_copy_safe(tmp_path, renderer):
    write_gltf(tmp_path / "cube.glb")
    mesh = load_mesh(tmp_path / "cube.glb")
    params = {"azimuth": np.array([30.0, 200.0]), "elevation": np.array([20.0, -5.0])}
    a = renderer.render(mesh, params)
    b = renderer.render(mesh.copy(), params)
    assert torch.equal(a, b)


# ------------------------------------------------------------------ bad input
def warnings_of(caplog) -> list[str]:
    """The WARNING lines robustlens logged (logger ``robustlens``; the CLI prints them)."""
    return [r.getMessage() for r in caplog.records
            if r.name == "robustlens" and r.levelname == "WARNING"]


def test_missing_texture_warns_and_uses_material_colour(tmp_path, renderer, caplog):
    obj = write_obj(tmp_path, texture_name="gone.png", kd="1 0 0")
    mesh = load_mesh(obj)
    err = warnings_of(caplog)
    assert len(err) == 1 and "\n" not in err[0]
    assert "cube.mtl" in err[0] and "gone.png" in err[0]
    np.testing.assert_allclose(face_colours(renderer, mesh), np.tile([255, 0, 0], (6, 1)),
                               atol=1)


def test_missing_gltf_texture_warns(tmp_path, renderer, caplog):
    write_gltf(tmp_path / "cube.gltf")
    doc = json.loads((tmp_path / "cube.gltf").read_text())
    doc["images"] = [{"uri": "missing.png"}]
    (tmp_path / "m.gltf").write_text(json.dumps(doc))
    mesh = load_mesh(tmp_path / "m.gltf")
    err = "\n".join(warnings_of(caplog))
    assert "m.gltf" in err and "missing.png" in err
    assert renderer.render(mesh, {}).shape == (1, 3, 224, 224)


def test_texture_that_is_not_an_image(tmp_path):
    obj = write_obj(tmp_path, texture_name="bad.png")
    (tmp_path / "bad.png").write_text("this is not a png")
    with pytest.raises(BadInput, match="bad.png"):
        load_mesh(obj)


@pytest.mark.parametrize("ext", ["KHR_draco_mesh_compression", "EXT_meshopt_compression"])
def test_compressed_gltf_is_refused_naming_the_extension(tmp_path, ext):
    write_gltf(tmp_path / "cube.gltf")
    doc = json.loads((tmp_path / "cube.gltf").read_text())
    doc["extensionsUsed"] = [ext]
    doc["extensionsRequired"] = [ext]
    (tmp_path / "c.gltf").write_text(json.dumps(doc))
    with pytest.raises(BadInput, match=ext):
        load_mesh(tmp_path / "c.gltf")


def test_gltf_without_geometry(tmp_path):
    (tmp_path / "empty.gltf").write_text(json.dumps({"asset": {"version": "2.0"},
                                                     "scenes": [{"nodes": []}]}))
    with pytest.raises(BadInput, match="no geometry"):
        load_mesh(tmp_path / "empty.gltf")


def test_vertex_colours_of_wrong_length(tmp_path):
    verts, faces, _ = cube_quads()
    m = trimesh.Trimesh(verts, faces, vertex_colors=np.repeat(FACE_COLOURS, 4, 0), process=False)
    m.export(tmp_path / "c.gltf")
    doc = json.loads((tmp_path / "c.gltf").read_text())
    prim = doc["meshes"][0]["primitives"][0]
    doc["accessors"][prim["attributes"]["COLOR_0"]]["count"] = 5
    (tmp_path / "bad_colours.gltf").write_text(json.dumps(doc))
    with pytest.raises(BadInput, match="bad_colours.gltf.*wrong length|wrong length"):
        load_mesh(tmp_path / "bad_colours.gltf")


# ------------------------------------------------------------ issue 11 defects
def test_nan_vertices_are_refused_not_dropped(tmp_path):
    p = tmp_path / "nan.obj"
    p.write_text("v 0 0 0\nv nan 0 0\nv 0 1 0\nv 1 1 0\nf 1 2 3\nf 1 3 4\n")
    with pytest.raises(BadInput, match="nan.obj.*NaN|NaN.*nan.obj"):
        load_mesh(p)
    p.write_text("v 0 0 0\nv inf 0 0\nv 0 1 0\nv 1 1 0\nf 1 2 3\nf 1 3 4\n")
    with pytest.raises(BadInput, match="infinity"):
        load_mesh(p)


def test_latin1_obj_loads_without_charset_normalizer(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "charset_normalizer", None)  # as on a fresh install
    p = tmp_path / "latin1.obj"
    p.write_bytes(b"# caf\xe9 cr\xe8me\nv 0 0 0\nv 1 0 0\nv 0 1 0\nf 1 2 3\n")
    assert len(load_mesh(p).faces) == 1


def test_garbage_obj_gets_a_sensible_reason(tmp_path, monkeypatch):
    import sys

    monkeypatch.setitem(sys.modules, "charset_normalizer", None)
    p = tmp_path / "garbage.obj"
    p.write_bytes(bytes(range(256)) * 8)
    with pytest.raises(BadInput, match="garbage.obj") as exc:
        load_mesh(p)
    assert "charset" not in str(exc.value)


def test_obj_with_two_materials_keeps_each_colour(tmp_path, renderer):
    """Two quads side by side, each with its own MTL Kd (no texture)."""
    (tmp_path / "two.mtl").write_text("newmtl red\nKd 1 0 0\nnewmtl blue\nKd 0 0 1\n")
    (tmp_path / "two.obj").write_text(
        "mtllib two.mtl\n"
        "v -1 -0.5 0\nv 0 -0.5 0\nv 0 0.5 0\nv -1 0.5 0\n"
        "v 0 -0.5 0\nv 1 -0.5 0\nv 1 0.5 0\nv 0 0.5 0\n"
        "usemtl red\nf 1 2 3\nf 1 3 4\nusemtl blue\nf 5 6 7\nf 5 7 8\n")
    mesh = load_mesh(tmp_path / "two.obj")
    assert len(materials_of(mesh).parts) == 2
    img = renderer.render(mesh, {}, fixed=FLAT)[0]
    torch.testing.assert_close(img[:, 112, 70], torch.tensor([1.0, 0.0, 0.0]), atol=0.01, rtol=0)
    torch.testing.assert_close(img[:, 112, 154], torch.tensor([0.0, 0.0, 1.0]), atol=0.01, rtol=0)


def test_obj_with_uvs_but_no_material_stays_untextured(tmp_path, caplog):
    """trimesh invents a grey material for UVs without one; that is not the file's colour."""
    (tmp_path / "uv.obj").write_text("v 0 0 0\nv 1 0 0\nv 0 1 0\nvt 0 0\nvt 1 0\nvt 0 1\n"
                                     "f 1/1 2/2 3/3\n")
    assert materials_of(load_mesh(tmp_path / "uv.obj")) is None
    (tmp_path / "gone.obj").write_text("mtllib gone.mtl\n" +
                                       (tmp_path / "uv.obj").read_text().replace("f ", "usemtl x\nf "))
    assert materials_of(load_mesh(tmp_path / "gone.obj")) is None
    err = "\n".join(warnings_of(caplog))
    assert "gone.mtl" in err
