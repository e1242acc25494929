"""Shared fixtures: the embedded default model is loaded once per session."""

from __future__ import annotations

import os
import tempfile

import numpy as np
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


def box_iou(lo1, hi1, lo2, hi2, period0: float = 360.0) -> float:
    """IoU of two (azimuth, elevation) boxes, azimuth periodic: overlap on the circle is the
    best of the shifts -1, 0, +1 turn (boxes narrower than one turn); two identical
    zero-volume boxes (a region that did not grow, on a point ground truth) have IoU 1."""
    lo1, hi1, lo2, hi2 = (np.asarray(v, float) for v in (lo1, hi1, lo2, hi2))
    az = max(max(0.0, min(hi1[0], hi2[0] + k) - max(lo1[0], lo2[0] + k))
             for k in (-period0, 0.0, period0))
    el = max(0.0, min(hi1[1], hi2[1]) - max(lo1[1], lo2[1]))
    inter = az * el
    union = np.prod(hi1 - lo1) + np.prod(hi2 - lo2) - inter
    if union <= 0:  # two zero-volume boxes: identical ones match fully
        return float(np.array_equal(lo1, lo2) and np.array_equal(hi1, hi2))
    return float(inter / union)


# ------------------------------------------------------------------ small glTF files
def gltf_document(positions, indices, colours=None, uv=None, material=None, images=()):
    """A glTF 2.0 document of one primitive and its binary buffer: ``(doc, binary)``.

    ``colours``: float RGBA per vertex (COLOR_0); ``uv``: TEXCOORD_0; ``material``: the
    material's JSON (its primitive uses it); ``images``: encoded image bytes stored in the
    buffer (bufferView images 0, 1, ...). The buffer has no uri: see :func:`write_gltf_file`.
    """
    blobs: list[bytes] = []
    views: list[dict] = []
    accessors: list[dict] = []

    def view(data: bytes) -> int:
        off = sum(len(b) for b in blobs)
        views.append({"buffer": 0, "byteOffset": off, "byteLength": len(data)})
        blobs.append(data + b"\0" * (-len(data) % 4))
        return len(views) - 1

    def accessor(arr, ctype: int, typ: str) -> int:
        accessors.append({"bufferView": view(arr.tobytes()), "componentType": ctype,
                          "type": typ, "count": len(arr)})
        return len(accessors) - 1

    pos = np.asarray(positions, dtype=np.float32)
    attrs = {"POSITION": accessor(pos, 5126, "VEC3")}
    accessors[-1].update(min=pos.min(0).tolist(), max=pos.max(0).tolist())
    if colours is not None:
        attrs["COLOR_0"] = accessor(np.asarray(colours, dtype=np.float32), 5126, "VEC4")
    if uv is not None:
        attrs["TEXCOORD_0"] = accessor(np.asarray(uv, dtype=np.float32), 5126, "VEC2")
    prim = {"attributes": attrs,
            "indices": accessor(np.asarray(indices, dtype=np.uint32).ravel(), 5125, "SCALAR")}
    doc: dict = {"asset": {"version": "2.0"}, "scene": 0, "scenes": [{"nodes": [0]}],
                 "nodes": [{"mesh": 0}], "meshes": [{"primitives": [prim]}],
                 "accessors": accessors, "bufferViews": views}
    if material is not None:
        prim["material"] = 0
        doc["materials"] = [material]
    if images:
        doc["images"] = [{"bufferView": view(img), "mimeType": "image/png"} for img in images]
    binary = b"".join(blobs)
    doc["buffers"] = [{"byteLength": len(binary)}]
    return doc, binary


def write_gltf_file(path, doc, binary, bin_name=None):
    """Write ``(doc, binary)`` as a ``.glb`` (BIN chunk) or a ``.gltf`` (the buffer in
    ``bin_name`` next to it, or a base64 data: URI)."""
    import base64
    import json
    import struct

    doc = json.loads(json.dumps(doc))
    if str(path).endswith(".glb"):
        js = json.dumps(doc).encode()
        js += b" " * (-len(js) % 4)
        bn = binary + b"\0" * (-len(binary) % 4)
        head = struct.pack("<4sII", b"glTF", 2, 28 + len(js) + len(bn))
        path.write_bytes(head + struct.pack("<II", len(js), 0x4E4F534A) + js
                         + struct.pack("<II", len(bn), 0x004E4942) + bn)
        return path
    if bin_name:
        (path.parent / bin_name).write_bytes(binary)
        doc["buffers"][0]["uri"] = bin_name
    else:
        doc["buffers"][0]["uri"] = ("data:application/octet-stream;base64,"
                                    + base64.b64encode(binary).decode())
    path.write_text(json.dumps(doc))
    return path
