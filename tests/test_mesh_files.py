"""The files a mesh refers to: one resolver checks them, loads them and hashes them.

Each test is a defect of issue 22 (a probe of how robustlens, its fingerprint and trimesh
each looked up MTL files, textures and glTF buffers by their own rules): a changed texture
answered with a reused result, hangs on named pipes, unbounded reads, tracebacks, dropped
colours, textures outside the mesh's folder, bad textures passed silently.
"""

from __future__ import annotations

import hashlib
import io
import json
import os
import signal
import struct
import time
import zlib
from pathlib import Path

import numpy as np
import pytest
from conftest import gltf_document, write_gltf_file
from PIL import Image

from robustlens.errors import BadInput
from robustlens.fingerprint import mesh_files, mesh_files_digest
from robustlens.render import load_mesh, meshfile
from robustlens.render.materials import materials_of

ALLOW_OUTSIDE = "ROBUSTLENS_MESH_ALLOW_OUTSIDE"  # the documented opt-in
FILES_KEY = "robustlens.files"  # mesh.metadata: the files a mesh was read from

# a quad (two triangles) with UVs over the whole texture
QUAD_V = [[-1, -1, 0], [1, -1, 0], [1, 1, 0], [-1, 1, 0]]
QUAD_UV = [[0, 0], [1, 0], [1, 1], [0, 1]]
QUAD_F = [[0, 1, 2], [0, 2, 3]]


def warnings_of(caplog) -> list[str]:
    return [r.getMessage() for r in caplog.records
            if r.name == "robustlens" and r.levelname == "WARNING"]


def png(path: Path, value=(200, 30, 30), size=8) -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    Image.fromarray(np.full((size, size, 3), value, np.uint8)).save(path)
    return path


def write_obj(folder: Path, mtl_text: str | None, mtllib: str = "m.mtl", name="q.obj",
              extra: str = "") -> Path:
    """A textured quad; its MTL (``m.mtl``) holds ``mtl_text``."""
    folder.mkdir(parents=True, exist_ok=True)
    if mtl_text is not None:
        (folder / "m.mtl").write_text(mtl_text)
    lines = [f"mtllib {mtllib}"] if mtllib else []
    lines += [f"v {x} {y} {z}" for x, y, z in QUAD_V] + [f"vt {u} {v}" for u, v in QUAD_UV]
    lines += [extra, "usemtl mat"] if extra else ["usemtl mat"]
    lines += ["f " + " ".join(f"{i + 1}/{i + 1}" for i in f) for f in QUAD_F]
    (folder / name).write_text("\n".join(lines) + "\n")
    return folder / name


def texture_of(mesh) -> np.ndarray | None:
    mat = materials_of(mesh)
    return None if mat is None else mat.parts[0].texture


@pytest.fixture()
def alarm():
    """Fails a test that blocks (a FIFO opened for reading waits for a writer forever):
    after 5 s, and every second after that, a blocked call is interrupted and ``fired`` is
    set."""
    state = {"fired": False}

    def on_alarm(signum, frame):
        state["fired"] = True
        raise TimeoutError("blocked for 5 s")

    old = signal.signal(signal.SIGALRM, on_alarm)
    signal.setitimer(signal.ITIMER_REAL, 5.0, 1.0)
    yield state
    signal.setitimer(signal.ITIMER_REAL, 0.0)
    signal.signal(signal.SIGALRM, old)


def png_header(w: int, h: int) -> bytes:
    """A PNG that claims w x h 8-bit grey pixels (the data is a few rows): a decompression
    bomb's header at no cost."""
    def chunk(kind: bytes, data: bytes) -> bytes:
        return struct.pack(">I", len(data)) + kind + data + \
            struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)

    ihdr = struct.pack(">IIBBBBB", w, h, 8, 0, 0, 0, 0)
    return b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", ihdr) + \
        chunk(b"IDAT", zlib.compress(b"\0" * (w + 1) * 4)) + chunk(b"IEND", b"")


def textured_gltf_doc(image_uri: str | None = None):
    doc, binary = gltf_document(QUAD_V, QUAD_F, uv=QUAD_UV, material={
        "pbrMetallicRoughness": {"baseColorFactor": [1, 1, 1, 1],
                                 "baseColorTexture": {"index": 0}}})
    doc["textures"] = [{"source": 0}]
    doc["images"] = [{"uri": image_uri}] if image_uri else []
    return doc, binary


# ------------------------------------------------------------------ 1: reuse of results
def test_glb_external_image_is_read_and_hashed(tmp_path):
    doc, binary = textured_gltf_doc("wood.png")
    glb = write_gltf_file(tmp_path / "q.glb", doc, binary)
    png(tmp_path / "wood.png", (200, 30, 30))
    assert texture_of(load_mesh(glb)) is not None
    assert [p.name for p in mesh_files(glb)] == ["q.glb", "wood.png"]
    before = mesh_files_digest(glb)
    png(tmp_path / "wood.png", (30, 200, 30))
    assert mesh_files_digest(glb) != before


def test_texture_found_by_fallback_is_hashed(tmp_path):
    """``textures/wood.png`` is missing; ``./wood.png`` is what gets loaded (trimesh's
    fallback to the base name), so it is what is hashed."""
    obj = write_obj(tmp_path, "newmtl mat\nKd 1 1 1\nmap_Kd textures/wood.png\n")
    png(tmp_path / "wood.png", (200, 30, 30))
    mesh = load_mesh(obj)
    assert texture_of(mesh)[0, 0].tolist() == [200, 30, 30]
    assert [p.name for p in mesh_files(obj)] == ["q.obj", "m.mtl", "wood.png"]
    before = mesh_files_digest(obj)
    png(tmp_path / "wood.png", (30, 200, 30))
    assert mesh_files_digest(obj) != before


def test_loaded_mesh_records_the_files_read(tmp_path):
    from robustlens.study.runner import mesh_fingerprint

    obj = write_obj(tmp_path, "newmtl mat\nKd 1 1 1\nmap_Kd wood.png\n")
    png(tmp_path / "wood.png")
    mesh = load_mesh(obj)
    files = mesh.metadata[FILES_KEY]
    assert [Path(f["path"]).name for f in files] == ["q.obj", "m.mtl", "wood.png"]
    for f in files:
        assert f["sha256"] == hashlib.sha256(Path(f["path"]).read_bytes()).hexdigest()
    assert mesh_fingerprint(str(obj), mesh) == mesh_fingerprint(str(obj)) == mesh_files_digest(obj)


# ------------------------------------------------------------------ 2: named pipes
@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_fifo_texture_and_mtl_are_refused_without_blocking(tmp_path, alarm, caplog):
    obj = write_obj(tmp_path / "a", "newmtl mat\nKd 1 0 0\nmap_Kd wood.png\n")
    os.mkfifo(tmp_path / "a" / "wood.png")
    mesh = load_mesh(obj)
    assert texture_of(mesh) is None
    obj = write_obj(tmp_path / "b", None)
    os.mkfifo(tmp_path / "b" / "m.mtl")
    load_mesh(obj)
    assert not alarm["fired"]
    err = warnings_of(caplog)
    assert len(err) == 2 and all("named pipe" in e for e in err)
    assert "wood.png" in err[0] and "m.mtl" in err[1]


@pytest.mark.skipif(not hasattr(os, "mkfifo"), reason="no named pipes")
def test_fifo_gltf_buffer_is_bad_input_without_blocking(tmp_path, alarm):
    doc, binary = gltf_document(QUAD_V, QUAD_F)
    gltf = write_gltf_file(tmp_path / "q.gltf", doc, binary, bin_name="q.bin")
    (tmp_path / "q.bin").unlink()
    os.mkfifo(tmp_path / "q.bin")
    with pytest.raises(BadInput, match="q.bin.*named pipe") as exc:
        load_mesh(gltf)
    assert exc.value.param == "mesh"
    assert not alarm["fired"]


# ------------------------------------------------------------------ 3: size caps
def test_gltf_buffer_larger_than_declared_is_refused_before_reading(tmp_path):
    doc, binary = gltf_document(QUAD_V, QUAD_F)
    gltf = write_gltf_file(tmp_path / "q.gltf", doc, binary, bin_name="q.bin")
    with open(tmp_path / "q.bin", "r+b") as f:
        f.truncate(64 << 20)  # sparse: 64 MiB on disk for a 48-byte buffer
    t0 = time.perf_counter()
    with pytest.raises(BadInput, match="q.bin.*too large"):
        load_mesh(gltf)
    assert time.perf_counter() - t0 < 2.0


def test_buffer_without_declared_length_has_a_cap(tmp_path, monkeypatch):
    doc, binary = gltf_document(QUAD_V, QUAD_F)
    del doc["buffers"][0]["byteLength"]  # no declared length: the absolute cap applies
    gltf = write_gltf_file(tmp_path / "q.gltf", doc, binary, bin_name="q.bin")
    monkeypatch.setattr(meshfile, "MAX_BUFFER_BYTES", 1 << 20)
    with open(tmp_path / "q.bin", "r+b") as f:
        f.truncate(2 << 20)
    with pytest.raises(BadInput, match="q.bin.*too large"):
        load_mesh(gltf)


def test_mtl_and_texture_over_their_caps_are_refused_before_reading(tmp_path):
    # an MTL over 64 MiB (sparse) is refused before it is read, naming its size
    obj = write_obj(tmp_path / "o", None)
    with open(tmp_path / "o" / "m.mtl", "wb") as f:
        f.truncate((64 << 20) + 1)  # MAX_MTL_BYTES + 1
    with pytest.raises(BadInput, match="m.mtl.*too large"):
        load_mesh(obj)
    # a texture over 256 MiB (sparse) likewise
    obj = write_obj(tmp_path / "t", "newmtl mat\nmap_Kd big.png\n")
    with open(tmp_path / "t" / "big.png", "wb") as f:
        f.truncate((256 << 20) + 1)  # MAX_IMAGE_BYTES + 1
    with pytest.raises(BadInput, match="big.png.*too large"):
        load_mesh(obj)


# ------------------------------------------------------------------ 4: tracebacks
@pytest.mark.parametrize("size", [(30000, 30000), (20000, 20000)])
def test_decompression_bomb_texture_is_bad_input(tmp_path, size):
    obj = write_obj(tmp_path, "newmtl mat\nmap_Kd bomb.png\n")
    (tmp_path / "bomb.png").write_bytes(png_header(*size))
    with pytest.raises(BadInput, match="bomb.png.*too large") as exc:
        load_mesh(obj)
    assert exc.value.param == "mesh"


def test_decompression_bomb_embedded_in_glb_is_bad_input(tmp_path):
    doc, binary = gltf_document(QUAD_V, QUAD_F, uv=QUAD_UV, images=[png_header(30000, 30000)],
                                material={"pbrMetallicRoughness": {
                                    "baseColorTexture": {"index": 0}}})
    doc["textures"] = [{"source": 0}]
    glb = write_gltf_file(tmp_path / "bomb.glb", doc, binary)
    with pytest.raises(BadInput, match="bomb.glb.*too large"):
        load_mesh(glb)


def test_gltf_face_indices_out_of_range_are_bad_input(tmp_path):
    doc, binary = gltf_document(QUAD_V, [[0, 1, 2], [0, 2, 9]])
    gltf = write_gltf_file(tmp_path / "faces.gltf", doc, binary)
    with pytest.raises(BadInput, match="faces.gltf.*out of range") as exc:
        load_mesh(gltf)
    assert exc.value.param == "mesh"


# ------------------------------------------------------------------ 5: dropped colours
def test_gltf_vertex_colours_multiply_the_material_colour(tmp_path):
    cols = np.array([[1, 0, 0, 1], [0, 1, 0, 1], [0, 0, 1, 1], [1, 1, 1, 1]], dtype=np.float32)
    doc, binary = gltf_document(QUAD_V, QUAD_F, colours=cols, material={
        "pbrMetallicRoughness": {"baseColorFactor": [1, 0.5, 0.25, 1]}})
    mesh = load_mesh(write_gltf_file(tmp_path / "vc.gltf", doc, binary))
    mat = materials_of(mesh)
    np.testing.assert_allclose(mat.parts[0].color, [1, 0.5, 0.25, 1], atol=0.01)
    # per vertex (order may change): the four COLOR_0 values, linear as glTF says
    got = {tuple(np.round(c, 3)) for c in mat.vertex_color}
    assert got == {tuple(c) for c in cols.tolist()}


@pytest.mark.parametrize("mtllib", ["a.mtl b.mtl", "a.mtl\nmtllib b.mtl"])
def test_obj_with_several_material_libraries_uses_all(tmp_path, mtllib):
    (tmp_path / "a.mtl").write_text("newmtl red\nKd 1 0 0\n")
    (tmp_path / "b.mtl").write_text("newmtl blue\nKd 0 0 1\n")
    (tmp_path / "two.obj").write_text(
        f"mtllib {mtllib}\n"
        "v -1 -0.5 0\nv 0 -0.5 0\nv 0 0.5 0\nv -1 0.5 0\n"
        "v 0 -0.5 0\nv 1 -0.5 0\nv 1 0.5 0\nv 0 0.5 0\n"
        "usemtl red\nf 1 2 3\nf 1 3 4\nusemtl blue\nf 5 6 7\nf 5 7 8\n")
    mesh = load_mesh(tmp_path / "two.obj")
    colours = {p.name: p.color[:3].tolist() for p in materials_of(mesh).parts}
    assert colours == {"red": [1, 0, 0], "blue": [0, 0, 1]}
    assert [p.name for p in mesh_files(tmp_path / "two.obj")] == ["two.obj", "a.mtl", "b.mtl"]


# ------------------------------------------------------------------ 6: where files may be
@pytest.mark.parametrize("how", ["absolute", "dotdot", "symlink"])
def test_texture_outside_the_mesh_folder_is_refused_in_one_line(tmp_path, how, caplog,
                                                                monkeypatch):
    monkeypatch.delenv(ALLOW_OUTSIDE, raising=False)
    outside = png(tmp_path / "elsewhere" / "wood.png", (200, 30, 30))
    name = {"absolute": str(outside), "dotdot": "../elsewhere/wood.png",
            "symlink": "link.png"}[how]
    obj = write_obj(tmp_path / "mesh", f"newmtl mat\nKd 0 1 0\nmap_Kd {name}\n")
    if how == "symlink":
        (tmp_path / "mesh" / "link.png").symlink_to(outside)
    mesh = load_mesh(obj)
    assert texture_of(mesh) is None  # the material colour
    err = warnings_of(caplog)
    assert len(err) == 1 and "outside the mesh's folder" in err[0] and "m.mtl" in err[0]
    assert [p.name for p in mesh_files(obj)] == ["q.obj", "m.mtl"]
    # the opt-in: a keyword, or the environment variable
    caplog.clear()
    assert texture_of(load_mesh(obj, allow_outside=True)) is not None
    monkeypatch.setenv(ALLOW_OUTSIDE, "1")
    assert texture_of(load_mesh(obj)) is not None
    assert warnings_of(caplog) == []


def test_system_file_is_not_read_as_a_material_library(tmp_path, caplog, monkeypatch):
    monkeypatch.delenv(ALLOW_OUTSIDE, raising=False)
    obj = write_obj(tmp_path, None, mtllib="/etc/passwd")
    assert materials_of(load_mesh(obj)) is None
    err = warnings_of(caplog)
    assert len(err) == 1 and "/etc/passwd" in err[0] and "outside" in err[0]
    assert [p.name for p in mesh_files(obj)] == ["q.obj"]


def test_texture_name_with_a_space_and_options(tmp_path, caplog):
    obj = write_obj(tmp_path, "newmtl mat\nKd 1 1 1\nmap_Kd -s 1 1 1 -bm 0.5 my tex.png\n")
    png(tmp_path / "my tex.png", (10, 20, 30))
    assert texture_of(load_mesh(obj))[0, 0].tolist() == [10, 20, 30]
    assert warnings_of(caplog) == []
    assert [p.name for p in mesh_files(obj)] == ["q.obj", "m.mtl", "my tex.png"]


def test_gltf_image_uri_with_quoted_space(tmp_path, caplog):
    doc, binary = textured_gltf_doc("my%20tex.png")
    gltf = write_gltf_file(tmp_path / "q.gltf", doc, binary, bin_name="q.bin")
    png(tmp_path / "my tex.png", (10, 20, 30))
    assert texture_of(load_mesh(gltf))[0, 0].tolist() == [10, 20, 30]
    assert warnings_of(caplog) == []
    assert [p.name for p in mesh_files(gltf)] == ["q.gltf", "q.bin", "my tex.png"]


# ------------------------------------------------------------------ 7: wrong renders
def test_16_bit_grey_texture_is_scaled_not_clipped(tmp_path):
    obj = write_obj(tmp_path, "newmtl mat\nKd 1 1 1\nmap_Kd grey16.png\n")
    Image.fromarray(np.full((8, 8), 40000, np.uint16)).save(tmp_path / "grey16.png")
    assert Image.open(tmp_path / "grey16.png").mode.startswith("I;16")
    tex = texture_of(load_mesh(obj))
    assert tex.shape == (8, 8, 3) and tex[0, 0].tolist() == [156, 156, 156]  # 40000 / 257


def test_bad_embedded_textures_warn_in_one_line(tmp_path, caplog):
    doc, binary = textured_gltf_doc()
    doc["images"] = [{"uri": "data:image/png;base64,"
                             + __import__("base64").b64encode(b"not an image").decode()}]
    mesh = load_mesh(write_gltf_file(tmp_path / "d.gltf", doc, binary))
    assert texture_of(mesh) is None
    err = warnings_of(caplog)
    assert len(err) == 1 and "d.gltf" in err[0] and "image 0" in err[0]
    caplog.clear()
    doc["images"] = []
    doc["materials"][0]["pbrMetallicRoughness"]["baseColorTexture"]["index"] = 7
    load_mesh(write_gltf_file(tmp_path / "i.gltf", doc, binary))
    err = warnings_of(caplog)
    assert len(err) == 1 and "i.gltf" in err[0] and "index 7" in err[0]


def test_obj_vertex_colours_on_some_vertices_are_bad_input(tmp_path):
    lines = [f"v {x} {y} {z} 1 0 0" if i < 5 else f"v {x} {y} {z}"
             for i, (x, y, z) in enumerate(np.array(np.meshgrid([0, 1], [0, 1], [0, 1]))
                                           .reshape(3, -1).T.tolist())]
    (tmp_path / "vc.obj").write_text("\n".join(lines) + "\nf 1 2 4\nf 5 6 8\n")
    with pytest.raises(BadInput, match=r"vc.obj.*5 of 8") as exc:
        load_mesh(tmp_path / "vc.obj")
    assert exc.value.param == "mesh"


def test_ply_with_fewer_vertices_than_declared_is_bad_input(tmp_path):
    corners = [(x, y, z) for x in (-1, 1) for y in (-1, 1) for z in (-1, 1)]
    faces = [(0, 1, 3), (0, 3, 2), (4, 6, 7), (4, 7, 5), (0, 4, 5), (0, 5, 1), (2, 3, 7),
             (2, 7, 6), (0, 2, 6), (0, 6, 4), (1, 5, 7), (1, 7, 3)]
    head = ("ply\nformat ascii 1.0\nelement vertex 8\nproperty float x\nproperty float y\n"
            "property float z\nelement face 12\nproperty list uchar int vertex_indices\n"
            "end_header\n")
    body = "".join(f"3 {a} {b} {c}\n" for a, b, c in faces)
    (tmp_path / "ok.ply").write_text(head + "".join(f"{x} {y} {z}\n" for x, y, z in corners)
                                     + body)
    assert len(load_mesh(tmp_path / "ok.ply").faces) == 12
    (tmp_path / "short.ply").write_text(head + "".join(f"{x} {y} {z}\n"
                                                       for x, y, z in corners[:7]) + body)
    with pytest.raises(BadInput, match="short.ply.*8 vertex") as exc:
        load_mesh(tmp_path / "short.ply")
    assert exc.value.param == "mesh"


# ------------------------------------------------------------------ 8: checks that decode
def test_truncated_texture_is_named(tmp_path):
    buf = io.BytesIO()
    Image.fromarray(np.full((64, 64, 3), 120, np.uint8)).save(buf, "DDS")
    obj = write_obj(tmp_path, "newmtl mat\nmap_Kd t.dds\n")
    (tmp_path / "t.dds").write_bytes(buf.getvalue()[:len(buf.getvalue()) // 2])
    with pytest.raises(BadInput, match=r"t\.dds.*not a readable image") as exc:
        load_mesh(obj)
    assert exc.value.param == "mesh"


# ------------------------------------------------------------------ the CLI shows warnings
def test_cli_prints_warnings_on_stderr(capsys):
    from robustlens.cli import _show_warnings

    _show_warnings()
    _show_warnings()  # installed once
    meshfile.warn("x.mtl: texture y.png not found; using the material colour")
    assert capsys.readouterr().err == \
        "warning: x.mtl: texture y.png not found; using the material colour\n"


def test_mesh_files_json_is_stable(tmp_path):
    """The record is plain data (it travels in ``mesh.metadata``)."""
    obj = write_obj(tmp_path, "newmtl mat\nKd 1 1 1\n")
    files = load_mesh(obj).metadata[FILES_KEY]
    assert json.loads(json.dumps(files)) == files
