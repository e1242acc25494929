"""Reading mesh files safely: text decoding, and checks of the files a mesh refers to.

trimesh silently drops textures it cannot read and needs ``charset_normalizer`` for any text
file that is not UTF-8; these helpers look first so that every problem is one line naming
the file (a :class:`BadInput`, or a WARNING on stderr when rendering can go on).
"""

from __future__ import annotations

import io
import json
import struct
import sys
from pathlib import Path
from typing import Any

import trimesh

from ..errors import BadInput

TEXT_FORMATS = (".obj", ".off", ".mtl", ".gltf")
UNSUPPORTED_GLTF = ("KHR_draco_mesh_compression", "EXT_meshopt_compression",
                    "KHR_meshopt_compression")


def warn(msg: str) -> None:
    """One line on stderr; rendering goes on."""
    print(f"WARNING: {msg}", file=sys.stderr, flush=True)


def as_utf8(data: bytes, name: str) -> bytes:
    """Text file bytes -> UTF-8 bytes; not UTF-8 -> read as Latin-1 (every byte is a
    character, and the numbers and keywords of mesh formats are ASCII anyway)."""
    if b"\x00" in data[:65536]:
        raise BadInput(f"{name}: binary data in a text {Path(name).suffix} file "
                       "(not a mesh of that format)", param="mesh")
    try:
        data.decode("utf-8")
        return data
    except UnicodeDecodeError:
        return data.decode("latin-1").encode("utf-8")


class TextResolver(trimesh.resolvers.FilePathResolver):
    """Resolves files next to the mesh; MTL files are passed on as UTF-8."""

    def get(self, name: str) -> bytes:
        data = super().get(name)
        if str(name).lower().endswith(".mtl"):
            data = as_utf8(data, str(name))
        return data


def _check_image(path: Path, ref: str) -> None:
    from PIL import Image, UnidentifiedImageError

    try:
        with Image.open(path) as im:
            im.verify()
    except (UnidentifiedImageError, OSError, SyntaxError, ValueError) as exc:
        raise BadInput(f"{ref}: texture {path} is not a readable image "
                       f"({str(exc).splitlines()[0][:80] if str(exc) else type(exc).__name__})"
                       , param="mesh") from None


def _mtl_texture_name(line: str) -> str:
    """``map_Kd -s 1 1 1 tex.png`` -> ``tex.png`` (options come first, the file last)."""
    return line.split(None, 1)[1].split()[-1] if len(line.split()) > 1 else ""


def check_obj(path: Path, text: bytes, spec: str) -> tuple[set[str], set[str]]:
    """Check the MTL libraries and textures an OBJ names.

    Missing files -> one WARNING each (the material colour is used instead); a texture that
    is not an image -> BadInput. Returns the names of the materials the MTL files define (any
    other material is one trimesh made up: grey, for UVs without a material) and of those
    without ``Kd`` (their texture is not to be darkened by trimesh's 0.4 default).
    """
    no_kd: set[str] = set()
    defined: set[str] = set()
    for raw in text.decode("utf-8").splitlines():
        line = raw.strip()
        if not line.startswith("mtllib"):
            continue
        for lib in line.split()[1:]:
            mtl = path.parent / lib
            if not mtl.is_file():
                warn(f"{path}: material library {mtl} not found; rendering without its "
                     "materials")
                continue
            current, has_kd = None, False
            for mline in as_utf8(mtl.read_bytes(), str(mtl)).decode("utf-8").splitlines():
                words = mline.split()
                if not words:
                    continue
                key = words[0]
                if key == "newmtl":
                    if current is not None and not has_kd:
                        no_kd.add(current)
                    current, has_kd = (words[1] if len(words) > 1 else ""), False
                    defined.add(current)
                elif key == "Kd":
                    has_kd = True
                elif key == "map_Kd":
                    tex = mtl.parent / _mtl_texture_name(mline.strip())
                    if not tex.is_file():
                        warn(f"{mtl}: texture {tex} not found; using the material colour")
                    else:
                        _check_image(tex, spec)
            if current is not None and not has_kd:
                no_kd.add(current)
    return defined, no_kd


def gltf_json(path: Path, spec: str) -> dict:
    """The JSON document of a ``.gltf`` or ``.glb`` file."""
    data = path.read_bytes()
    try:
        if path.suffix.lower() == ".glb":
            magic, _version, _length = struct.unpack_from("<4sII", data, 0)
            if magic != b"glTF":
                raise ValueError("not a binary glTF (bad magic bytes)")
            chunk_len, chunk_type = struct.unpack_from("<II", data, 12)
            if chunk_type != 0x4E4F534A:  # "JSON"
                raise ValueError("first chunk is not JSON")
            doc = json.loads(data[20:20 + chunk_len].decode("utf-8"))
        else:
            doc = json.loads(as_utf8(data, spec).decode("utf-8"))
    except (struct.error, ValueError) as exc:
        raise BadInput(f"{spec}: cannot parse {path.suffix} file "
                       f"({str(exc).splitlines()[0][:120]})", param="mesh") from None
    if not isinstance(doc, dict):
        raise BadInput(f"{spec}: cannot parse {path.suffix} file (no JSON object)", param="mesh")
    return doc


def check_gltf(path: Path, spec: str) -> None:
    """Refuse compressed or empty glTF files; warn about missing external textures; refuse
    external textures that are not images and ``COLOR_0`` arrays of the wrong length."""
    doc = gltf_json(path, spec)
    used = set(doc.get("extensionsRequired", [])) | set(doc.get("extensionsUsed", []))
    for mesh in doc.get("meshes", []) or []:
        for prim in mesh.get("primitives", []) or []:
            used |= set((prim.get("extensions") or {}).keys())
    for ext in UNSUPPORTED_GLTF:
        if ext in used:
            raise BadInput(f"{spec}: uses {ext}, which is not supported; export the "
                           "glTF without mesh compression", param="mesh")
    prims = [p for m in doc.get("meshes", []) or [] for p in (m.get("primitives") or [])]
    if not prims:
        raise BadInput(f"{spec}: the glTF has no geometry (no meshes with primitives)", param="mesh")
    accessors = doc.get("accessors", []) or []

    def count(i) -> int | None:
        try:
            return int(accessors[i]["count"])
        except (IndexError, KeyError, TypeError, ValueError):
            return None

    for prim in prims:
        attrs = prim.get("attributes") or {}
        if "COLOR_0" in attrs and "POSITION" in attrs:
            nc, nv = count(attrs["COLOR_0"]), count(attrs["POSITION"])
            if nc is not None and nv is not None and nc != nv:
                raise BadInput(f"{spec}: vertex colours of the wrong length "
                               f"(COLOR_0 has {nc} entries for {nv} vertices)", param="mesh")
    for img in doc.get("images", []) or []:
        uri = img.get("uri")
        if not uri or uri.startswith("data:"):
            continue
        from urllib.parse import unquote

        tex = path.parent / unquote(uri)
        if not tex.is_file():
            warn(f"{path}: texture {tex} not found; using the material colour")
        else:
            _check_image(tex, spec)


def load_scene(path: Path, spec: str, process: bool = False) -> trimesh.Scene:
    """Parse a mesh file into a trimesh Scene (geometry not processed: NaN vertices and
    duplicate faces are still there for the caller to check)."""
    suffix = path.suffix.lower()
    kwargs: dict[str, Any] = {"process": process}
    if suffix == ".stl":
        data = path.read_bytes()
        if data[:5].lower() == b"solid" and b"\x00" not in data[:65536]:
            data = as_utf8(data, spec)  # ASCII STL
        elif len(data) < 84 or len(data) != 84 + 50 * struct.unpack_from("<I", data, 80)[0]:
            raise BadInput(f"{spec}: not an STL file (no 'solid' header of an ASCII STL, "
                           "and the size does not match a binary STL's triangle count)", param="mesh")
        return trimesh.load_scene(io.BytesIO(data), file_type="stl", **kwargs)
    if suffix in TEXT_FORMATS:
        data = as_utf8(path.read_bytes(), spec)
        return trimesh.load_scene(io.BytesIO(data), file_type=suffix[1:],
                                  resolver=TextResolver(str(path)), **kwargs)
    return trimesh.load_scene(str(path), **kwargs)
