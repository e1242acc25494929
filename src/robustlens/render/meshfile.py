"""Reading mesh files safely: one resolver for every file a mesh refers to.

A mesh file may name other files: an OBJ its ``mtllib`` material libraries and the
``map_Kd`` textures they name, a glTF its external buffers and images, a PLY its
``TextureFile``. :class:`MeshFiles` is the one place that turns such a name into a file,
reads it and records it; it is used for the checks, it is the resolver trimesh loads with
(``resolver=``, for every format) and its record is what the fingerprint hashes
(:func:`robustlens.fingerprint.mesh_files_digest`, ``mesh.metadata["robustlens.files"]``), so the
files checked, the files loaded and the files hashed are the same files.

The rules (the README's "What is refused and why" lists them for users):

* a name is looked up the way trimesh's ``FilePathResolver`` does (the name, the name
  without a leading ``/``, its last path component; a ``%20``-quoted glTF URI also
  unquoted), next to the MTL first for an MTL's textures, then in the mesh file's folder;
* the file must be *inside* the mesh file's folder (subfolders allowed, symlinks followed:
  the real path must stay inside the folder's real path), unless ``allow_outside=True`` or
  ``ROBUSTLENS_MESH_ALLOW_OUTSIDE=1``;
* only regular files are opened (never a FIFO, a device or a folder), never blocking;
* sizes are checked *before* reading: :data:`MAX_MTL_BYTES`, :data:`MAX_IMAGE_BYTES`,
  :data:`MAX_BUFFER_BYTES` (and never more than a buffer's declared ``byteLength`` plus
  :data:`BUFFER_SLACK_BYTES`); images are fully decoded once, under
  :data:`MAX_IMAGE_PIXELS` (decompression bombs);
* a file that rendering can do without (a texture, an MTL) that is missing or refused is
  one WARNING line (logger ``robustlens``) and the material colour is used; a file it cannot
  do without (a buffer), or a file that is there but broken (not an image, over a cap), is a
  :class:`BadInput` naming the file.
"""

from __future__ import annotations

import base64
import binascii
import contextlib
import hashlib
import io
import json
import logging
import os
import re
import stat
import struct
import threading
import warnings
from collections.abc import Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import unquote

import numpy as np
import trimesh

from ..errors import BadInput, first_line, printable

LOG = logging.getLogger("robustlens")

TEXT_FORMATS = (".obj", ".off", ".mtl", ".gltf")
UNSUPPORTED_GLTF = ("KHR_draco_mesh_compression", "EXT_meshopt_compression",
                    "KHR_meshopt_compression")

MiB = 1 << 20
#: an MTL material library larger than this is refused before it is read
MAX_MTL_BYTES = 64 * MiB
#: a texture file larger than this is refused before it is read
MAX_IMAGE_BYTES = 256 * MiB
#: a texture with more pixels than this is refused before it is decoded (decompression bombs)
MAX_IMAGE_PIXELS = 16384 * 16384
#: an external glTF buffer larger than this is refused before it is read ...
MAX_BUFFER_BYTES = 2048 * MiB
#: ... and so is one larger than its declared ``byteLength`` plus this much
BUFFER_SLACK_BYTES = 4096
#: ``=1`` lets meshes refer to files outside their folder (as ``load_mesh(allow_outside=True)``)
ALLOW_OUTSIDE_VARIABLE = "ROBUSTLENS_MESH_ALLOW_OUTSIDE"
#: ``mesh.metadata`` key of the files a loaded mesh was read from (mesh file first)
FILES_KEY = "robustlens.files"

_VIRTUAL_MTL = "robustlens-materials.mtl"  # the OBJ's MTL libraries, checked and combined
_GLB_BIN = "robustlens-glb-binary-chunk"    # a .glb's BIN chunk, handed to trimesh by name
_IMAGE_SUFFIXES = (".png", ".jpg", ".jpeg", ".bmp", ".tga", ".tif", ".tiff", ".gif", ".dds",
                   ".webp", ".ppm", ".pgm", ".ktx", ".ktx2", ".hdr", ".exr", ".jp2")


def warn(msg: str) -> None:
    """One WARNING line (logger ``robustlens``; the CLI prints it on stderr); rendering goes
    on."""
    LOG.warning("%s", msg)


def allow_outside_from_env() -> bool:
    """Whether ``$ROBUSTLENS_MESH_ALLOW_OUTSIDE`` lets meshes refer to files outside their
    folder (``1``, ``true``, ``yes`` or ``on``)."""
    return os.environ.get(ALLOW_OUTSIDE_VARIABLE, "").strip().lower() in ("1", "true", "yes",
                                                                          "on")


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


def _size(n: int) -> str:
    return f"{n / MiB:.0f} MiB" if n >= MiB else f"{n} bytes"


# ------------------------------------------------------------------------------ images
_PIL_LOCK = threading.RLock()


@contextlib.contextmanager
def pixel_limit() -> Iterator[None]:
    """PIL's decompression-bomb limit set to :data:`MAX_IMAGE_PIXELS` (PIL's own default is
    lower: it would drop, inside trimesh and silently, a texture this module accepted)."""
    from PIL import Image

    with _PIL_LOCK, warnings.catch_warnings():
        warnings.simplefilter("ignore", Image.DecompressionBombWarning)
        old = Image.MAX_IMAGE_PIXELS
        Image.MAX_IMAGE_PIXELS = MAX_IMAGE_PIXELS
        try:
            yield
        finally:
            Image.MAX_IMAGE_PIXELS = old


class ImageTooLarge(Exception):
    """An image over :data:`MAX_IMAGE_PIXELS` (always a :class:`BadInput` for the caller)."""


def decode_image(data: bytes) -> None:
    """Decode an image completely (not only its header: a truncated file fails here).

    Raises :class:`ImageTooLarge` over :data:`MAX_IMAGE_PIXELS` (checked before decoding)
    and ``ValueError`` (one-line reason) for anything that is not a readable image."""
    from PIL import Image, UnidentifiedImageError

    with pixel_limit():
        try:
            im = Image.open(io.BytesIO(data))
        except Image.DecompressionBombError as exc:
            raise ImageTooLarge(first_line(exc, 80)) from None
        except UnidentifiedImageError:
            raise ValueError("not an image format Pillow can read") from None
        except Exception as exc:  # PIL raises many kinds for broken files
            raise ValueError(first_line(exc, 80)) from None
        try:
            w, h = im.size
            if w * h > MAX_IMAGE_PIXELS:
                raise ImageTooLarge(f"{w}x{h} pixels, more than the {MAX_IMAGE_PIXELS:,} "
                                    "allowed")
            try:
                im.load()
            except Exception as exc:
                raise ValueError(first_line(exc, 80)) from None
        finally:
            im.close()


# ------------------------------------------------------------------------------ resolver
@dataclass(frozen=True)
class FileRead:
    """A file a mesh was read from: absolute path (as named, not symlink-resolved), the
    SHA-256 of the bytes read and their number."""

    path: Path
    sha256: str
    size: int

    def as_dict(self) -> dict[str, Any]:
        return {"path": str(self.path), "sha256": self.sha256, "size": self.size}


def _kind(mode: int) -> str:
    if stat.S_ISFIFO(mode):
        return "a named pipe"
    if stat.S_ISDIR(mode):
        return "a folder"
    if stat.S_ISCHR(mode) or stat.S_ISBLK(mode):
        return "a device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


class MeshFiles(trimesh.resolvers.FilePathResolver):
    """The files of one mesh: resolves, checks, reads and records every file it refers to.

    Given to trimesh as ``resolver=``: trimesh asks it only for names this class checked
    and read before (they are served from memory, so what was checked is what is loaded),
    and anything else goes through the same rules. :attr:`records` lists every file read,
    the mesh file first."""

    def __init__(self, path: str | os.PathLike[str], spec: str,
                 allow_outside: bool = False) -> None:
        super().__init__(os.path.abspath(path))
        # trimesh names geometry after the file, and hashes those names as UTF-8: a file name
        # that is not UTF-8 (surrogate escapes) would fail there, so give it a printable one
        if isinstance(getattr(self, "file_name", None), str):
            self.file_name = printable(self.file_name)
        self.mesh_path = Path(os.path.abspath(path))
        self.folder = self.mesh_path.parent
        self.real_folder = Path(os.path.realpath(self.folder))
        self.spec = spec
        self.allow_outside = bool(allow_outside) or allow_outside_from_env()
        self.allow_anywhere = self.allow_outside  # trimesh's name for it
        self._records: dict[str, FileRead] = {}  # real path -> record, in reading order
        self._data: dict[str, bytes] = {}        # real path -> bytes (while loading)
        self._served: dict[str, bytes] = {}      # name trimesh asks for -> bytes
        self._warned: set[str] = set()
        self.failure: BadInput | None = None     # a BadInput raised while trimesh loaded

    @property
    def records(self) -> list[FileRead]:
        return list(self._records.values())

    def release(self) -> None:
        """Drop the bytes kept for trimesh (the records stay)."""
        self._data.clear()
        self._served.clear()

    def warn_once(self, msg: str) -> None:
        if msg not in self._warned:
            self._warned.add(msg)
            warn(msg)

    # ------------------------------------------------------------------ lookup
    def _candidates(self, name: str, base: Path | None, uri: bool) -> list[str]:
        names = [unquote(name), name] if uri and "%" in name else [name]
        out: list[str] = []
        for n in names:
            n = n.strip()
            for c in (n, n.lstrip("/"), os.path.basename(n), n.replace("\\", "/").split("/")[-1]):
                for b in ([base] if base is not None and base != self.folder else []) + \
                        [self.folder]:
                    if c:
                        out.append(os.path.abspath(os.path.join(b, c)))
        return list(dict.fromkeys(out))

    def locate(self, name: str, base: Path | None = None, uri: bool = False
               ) -> tuple[Path | None, str]:
        """``(path, "")`` of the file ``name`` refers to, or ``(None, reason)``: not found,
        outside the mesh's folder, not a regular file. Looks in ``base`` (an MTL's folder)
        first, then in the mesh file's folder."""
        outside = None
        for cand in self._candidates(name, base, uri):
            real = os.path.realpath(cand)
            try:
                st = os.stat(real)
            except (OSError, ValueError):
                continue
            if not self.allow_outside and not Path(real).is_relative_to(self.real_folder):
                outside = outside or real
                continue
            if not stat.S_ISREG(st.st_mode):
                return None, f"is {_kind(st.st_mode)}, not a regular file"
            return Path(cand), ""
        if outside is not None:
            return None, (f"is outside the mesh's folder {self.folder} (it is {outside}; "
                          f"set {ALLOW_OUTSIDE_VARIABLE}=1 or load_mesh(..., "
                          "allow_outside=True) to allow that)")
        return None, "not found"

    def shown(self, name: str, base: Path | None = None) -> str:
        """A referenced name as a path, for messages."""
        return os.path.join(base or self.folder, name.strip())

    # ------------------------------------------------------------------ reading
    def read(self, path: Path, what: str, limit: int | None, inside: bool = True) -> bytes:
        """The bytes of a regular file, at most ``limit`` (checked before reading), recorded
        with their SHA-256. Never blocks, and opens the real path that was checked without
        following a symlink: a FIFO or a link put in place after :meth:`locate` looked is
        still refused. ``inside``: the file must be inside the mesh's folder (unless
        outside files are allowed)."""
        key = os.path.realpath(path)
        if key in self._data:
            return self._data[key]
        if inside and not self.allow_outside and not Path(key).is_relative_to(self.real_folder):
            raise BadInput(f"{self.spec}: {what} {path} is outside the mesh's folder "
                           f"{self.folder}", param="mesh")
        flags = os.O_RDONLY | getattr(os, "O_NONBLOCK", 0) | getattr(os, "O_CLOEXEC", 0) | \
            getattr(os, "O_NOFOLLOW", 0)
        try:
            fd = os.open(key, flags)
        except OSError as exc:
            raise BadInput(f"{self.spec}: cannot read {what} {path} "
                           f"({exc.strerror or type(exc).__name__})", param="mesh") from None
        try:
            st = os.fstat(fd)
            if not stat.S_ISREG(st.st_mode):
                raise BadInput(f"{self.spec}: {what} {path} is {_kind(st.st_mode)}, not a "
                               "regular file", param="mesh")
            if limit is not None and st.st_size > limit:
                raise BadInput(f"{self.spec}: {what} {path} is too large ({_size(st.st_size)}; "
                               f"at most {_size(limit)} allowed)", param="mesh")
            chunks, left = [], (limit + 1 if limit is not None else -1)
            while left != 0:
                chunk = os.read(fd, 1 << 24 if left < 0 else min(left, 1 << 24))
                if not chunk:
                    break
                chunks.append(chunk)
                left = left - len(chunk) if left > 0 else left
            data = b"".join(chunks)
        finally:
            os.close(fd)
        if limit is not None and len(data) > limit:
            raise BadInput(f"{self.spec}: {what} {path} grew past {_size(limit)} while it was "
                           "read", param="mesh")
        self._records.setdefault(key, FileRead(Path(path), hashlib.sha256(data).hexdigest(),
                                               len(data)))
        self._data[key] = data
        return data

    def read_mesh_file(self) -> bytes:
        """The mesh file itself (the first record)."""
        return self.read(self.mesh_path, "mesh file", None, inside=False)

    def serve(self, name: str, data: bytes) -> None:
        """Hand ``data`` to trimesh when it asks for ``name``."""
        self._served[name] = data

    def texture(self, name: str, where: str, base: Path | None = None, uri: bool = False
                ) -> tuple[Path, bytes] | None:
        """The path and bytes of a referenced texture, read and fully decoded; None (after
        one WARNING line) when it is missing or refused; BadInput when it is there but is not
        a readable image or is over a cap."""
        path, reason = self.locate(name, base, uri)
        if path is None:
            self.warn_once(f"{where}: texture {self.shown(unquote(name) if uri else name, base)}"
                           f" {reason}; using the material colour")
            return None
        data = self.read(path, "texture", MAX_IMAGE_BYTES)
        check_image(data, self.spec, f"texture {path}")
        return path, data

    # ------------------------------------------------------------------ trimesh's API
    def get(self, name: str) -> bytes:
        """What trimesh reads: a name checked before, or one found by the same rules now (a
        BadInput is kept in :attr:`failure` and raised after trimesh returns: trimesh
        swallows errors of the files it reads)."""
        for key in (name, name.strip()):
            if key in self._served:
                return self._served[key]
        try:
            suffix = Path(name.strip()).suffix.lower()
            if suffix == ".mtl":
                path, reason = self.locate(name)
                if path is None:
                    self.warn_once(f"{self.mesh_path}: material library "
                                   f"{self.shown(name)} {reason}; rendering without its "
                                   "materials")
                    raise FileNotFoundError(name)
                return as_utf8(self.read(path, "material library", MAX_MTL_BYTES), str(path))
            if suffix in _IMAGE_SUFFIXES:
                found = self.texture(name, str(self.mesh_path))
                if found is None:
                    raise FileNotFoundError(name)
                return found[1]
            path, reason = self.locate(name, uri=True)
            if path is None:
                raise BadInput(f"{self.spec}: file {self.shown(name)} {reason}", param="mesh")
            return self.read(path, "file", MAX_BUFFER_BYTES)
        except BadInput as exc:
            self.failure = self.failure or exc
            raise FileNotFoundError(name) from None

    def write(self, name: str, data: str | bytes) -> None:
        raise OSError(f"{name}: robustlens never writes next to a mesh")


def check_image(data: bytes, spec: str, what: str) -> None:
    """BadInput unless ``data`` is an image that decodes completely under the caps."""
    if len(data) > MAX_IMAGE_BYTES:
        raise BadInput(f"{spec}: {what} is too large ({_size(len(data))}; at most "
                       f"{_size(MAX_IMAGE_BYTES)} allowed)", param="mesh")
    try:
        decode_image(data)
    except ImageTooLarge as exc:
        raise BadInput(f"{spec}: {what} is too large to decode ({exc}; a decompression "
                       "bomb?)", param="mesh") from None
    except ValueError as exc:
        raise BadInput(f"{spec}: {what} is not a readable image ({exc})", param="mesh") from None


# ------------------------------------------------------------------------------ OBJ
_MTLLIB = re.compile(rb"^[ \t]*mtllib[ \t]+([^\r\n]*)", re.M)
_OBJ_V = re.compile(rb"^[ \t]*v[ \t]+([^\r\n]*)", re.M)
# MTL texture options and how many values follow each (-o/-s/-t take 1 to 3 numbers)
_MAP_OPTIONS = {"-blendu": 1, "-blendv": 1, "-boost": 1, "-cc": 1, "-clamp": 1, "-imfchan": 1,
                "-texres": 1, "-bm": 1, "-type": 1, "-mm": 2, "-o": 3, "-s": 3, "-t": 3}


def mtl_texture_name(line: str) -> str:
    """``map_Kd -s 1 1 1 my tex.png`` -> ``my tex.png``: the options first, then the file
    name, which is the rest of the line (it may hold spaces)."""
    words = list(re.finditer(r"\S+", line))
    i = 1
    while i < len(words):
        opt = words[i].group().lower()
        if opt not in _MAP_OPTIONS:
            break
        n, i = _MAP_OPTIONS[opt], i + 1
        if opt in ("-o", "-s", "-t"):
            k = 0
            while k < n and i < len(words):
                try:
                    float(words[i].group())
                except ValueError:
                    break
                i, k = i + 1, k + 1
        else:
            i += n
    return line[words[i].start():].strip() if i < len(words) else ""


@dataclass
class ObjMaterials:
    """What the MTL libraries of an OBJ define: every material's name, and those without
    ``Kd`` (their texture is not to be darkened by trimesh's 0.4 default)."""

    defined: set[str] = field(default_factory=set)
    no_kd: set[str] = field(default_factory=set)


def _check_obj_vertex_colours(data: bytes, spec: str, name: str) -> None:
    counts = [len(v.split()) for v in _OBJ_V.findall(data)]
    coloured = sum(c >= 6 for c in counts)
    if 0 < coloured < len(counts):
        raise BadInput(f"{spec}: vertex colours on {coloured} of {len(counts)} vertices in "
                       f"{name} (give every vertex a colour, or none)", param="mesh")


def prepare_obj(files: MeshFiles, data: bytes) -> tuple[bytes, ObjMaterials]:
    """Check an OBJ and what it names; return the OBJ text trimesh is to parse (its
    ``mtllib`` lines replaced by one library that combines them all, with the checked
    textures) and the materials defined.

    Every ``mtllib`` line and every library on it is used (trimesh alone reads only the
    first); a library or texture that is missing or refused is one WARNING line."""
    spec, obj = files.spec, files.mesh_path
    _check_obj_vertex_colours(data, spec, obj.name)
    mats = ObjMaterials()
    combined: list[str] = []
    done: set[str] = set()
    for m in _MTLLIB.finditer(data):
        rest = m.group(1).decode("utf-8").strip()
        if not rest:
            continue
        whole, _ = files.locate(rest)
        names = [rest] if whole is not None or len(rest.split()) == 1 else rest.split()
        for lib in names:
            path, reason = files.locate(lib)
            if path is None:
                files.warn_once(f"{obj}: material library {files.shown(lib)} {reason}; "
                                "rendering without its materials")
                continue
            if os.path.realpath(path) in done:
                continue
            done.add(os.path.realpath(path))
            text = as_utf8(files.read(path, "material library", MAX_MTL_BYTES), str(path))
            combined += _prepare_mtl(files, path, text.decode("utf-8"), mats)
    files.serve(_VIRTUAL_MTL, "\n".join(combined).encode("utf-8"))
    return b"mtllib " + _VIRTUAL_MTL.encode() + b"\n" + data, mats


def _prepare_mtl(files: MeshFiles, mtl: Path, text: str, mats: ObjMaterials) -> list[str]:
    """The lines of one MTL as trimesh is to parse them: each ``map_Kd`` names a texture
    checked here (or is dropped, after one WARNING line); the materials go into ``mats``
    (named as trimesh names them)."""
    out: list[str] = []
    current: str | None = None
    has_kd = False
    for line in text.splitlines():
        words = line.split()
        if len(words) <= 1:  # trimesh skips these too
            continue
        key = words[0].lower()
        if key == "newmtl":
            if current is not None and not has_kd:
                mats.no_kd.add(current)
            current, has_kd = " ".join(words[1:]), False
            mats.defined.add(current)
        elif key == "kd":
            has_kd = True
        elif key == "map_kd":
            name = mtl_texture_name(line.strip())
            if not name:
                files.warn_once(f"{mtl}: map_Kd without a file name; using the material "
                                "colour")
                continue
            found = files.texture(name, str(mtl), base=mtl.parent)
            if found is None:
                continue
            served = os.path.relpath(found[0], files.folder)
            if served != served.strip() or not served:
                served = f"robustlens-texture-{len(files._served)}"
            files.serve(served, found[1])
            line = f"map_Kd {served}"
        out.append(line)
    if current is not None and not has_kd:
        mats.no_kd.add(current)
    return out


# ------------------------------------------------------------------------------ glTF
def gltf_json(data: bytes, suffix: str, spec: str) -> tuple[dict, bytes | None]:
    """The JSON document of a ``.gltf`` or ``.glb`` file's bytes, and a ``.glb``'s BIN
    chunk."""
    binary = None
    try:
        if suffix == ".glb":
            magic, _version, length = struct.unpack_from("<4sII", data, 0)
            if magic != b"glTF":
                raise ValueError("not a binary glTF (bad magic bytes)")
            chunk_len, chunk_type = struct.unpack_from("<II", data, 12)
            if chunk_type != 0x4E4F534A:  # "JSON"
                raise ValueError("first chunk is not JSON")
            if 20 + chunk_len > len(data):
                raise ValueError("the JSON chunk is cut short")
            doc = json.loads(data[20:20 + chunk_len].decode("utf-8"))
            pos = 20 + chunk_len
            while pos + 8 <= min(len(data), length):
                clen, ctype = struct.unpack_from("<II", data, pos)
                if pos + 8 + clen > len(data):
                    raise ValueError("a chunk is cut short (truncated file)")
                if ctype == 0x004E4942 and binary is None:  # "BIN"
                    binary = data[pos + 8:pos + 8 + clen]
                pos += 8 + clen
        else:
            doc = json.loads(as_utf8(data, spec).decode("utf-8"))
    except (struct.error, ValueError) as exc:
        raise BadInput(f"{spec}: cannot parse {suffix} file "
                       f"({str(exc).splitlines()[0][:120] if str(exc) else 'bad data'})",
                       param="mesh") from None
    if not isinstance(doc, dict):
        raise BadInput(f"{spec}: cannot parse {suffix} file (no JSON object)", param="mesh")
    return doc, binary


def _items(doc: dict, key: str) -> list:
    v = doc.get(key)
    return v if isinstance(v, list) else []


def _data_uri(uri: str) -> bytes:
    """The bytes of a base64 ``data:`` URI; ValueError otherwise."""
    i = uri.find("base64,")
    if i < 0:
        raise ValueError("not a base64 data: URI")
    try:
        return base64.b64decode(uri[i + 7:])
    except (binascii.Error, ValueError):
        raise ValueError("bad base64 in a data: URI") from None


def prepare_gltf(files: MeshFiles, data: bytes) -> bytes:
    """Check a ``.gltf``/``.glb`` file and what it refers to; return the glTF JSON trimesh is
    to parse (a ``.glb``'s BIN chunk and external buffers and images are served by
    ``files``; images that cannot be used and texture references that lead nowhere are
    taken out, after one WARNING line each).

    BadInput: compressed or empty glTF, ``COLOR_0`` of the wrong length, a missing, refused
    or wrongly sized buffer, an external texture that is not a readable image, any image
    over a cap. WARNING: a missing or refused external texture, an embedded image that is not
    an image, a texture index that does not exist."""
    spec, path = files.spec, files.mesh_path
    suffix = path.suffix.lower()
    doc, binary = gltf_json(data, suffix, spec)
    try:
        _check_gltf_geometry(doc, spec)
        buffers = _gltf_buffers(files, doc, binary)
        bad = _gltf_images(files, doc, buffers)
        _gltf_textures(files, doc, bad)
    except (TypeError, KeyError, IndexError, AttributeError, ValueError) as exc:
        if isinstance(exc, BadInput):
            raise
        raise BadInput(f"{spec}: cannot parse {suffix} file ({first_line(exc, 120)})",
                       param="mesh") from None
    return json.dumps(doc).encode("utf-8")


def _check_gltf_geometry(doc: dict, spec: str) -> None:
    used = set(_items(doc, "extensionsRequired")) | set(_items(doc, "extensionsUsed"))
    prims = [p for m in _items(doc, "meshes") if isinstance(m, dict)
             for p in (m.get("primitives") or []) if isinstance(p, dict)]
    for prim in prims:
        used |= set((prim.get("extensions") or {}).keys())
    for ext in UNSUPPORTED_GLTF:
        if ext in used:
            raise BadInput(f"{spec}: uses {ext}, which is not supported; export the "
                           "glTF without mesh compression", param="mesh")
    if not prims:
        raise BadInput(f"{spec}: the glTF has no geometry (no meshes with primitives)",
                       param="mesh")
    accessors = _items(doc, "accessors")

    def count(i: Any) -> int | None:
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


def _gltf_buffers(files: MeshFiles, doc: dict, binary: bytes | None) -> list[Any]:
    """Check, read and serve the buffers; returns per buffer its bytes, its data: URI (not
    decoded yet) or None."""
    spec = files.spec
    out: list[Any] = []
    for i, b in enumerate(_items(doc, "buffers")):
        if not isinstance(b, dict):
            raise BadInput(f"{spec}: glTF buffer {i} is not a JSON object", param="mesh")
        uri, declared = b.get("uri"), b.get("byteLength")
        if not isinstance(declared, int) or isinstance(declared, bool) or declared < 0:
            declared = None
        if uri is None:
            if i == 0 and binary is not None:
                files.serve(_GLB_BIN, binary)
                b["uri"] = _GLB_BIN
                out.append(binary)
                continue
            raise BadInput(f"{spec}: glTF buffer {i} has no uri (and no binary chunk holds "
                           "it)", param="mesh")
        if not isinstance(uri, str):
            raise BadInput(f"{spec}: glTF buffer {i} has a uri that is not a string",
                           param="mesh")
        if uri.startswith("data:"):
            if "base64," not in uri:
                raise BadInput(f"{spec}: glTF buffer {i} is a data: URI without base64 data",
                               param="mesh")
            out.append(uri)  # trimesh decodes it (and so do the image checks, if they need it)
            continue
        path, reason = files.locate(uri, uri=True)
        if path is None:
            raise BadInput(f"{spec}: buffer {files.shown(unquote(uri))} {reason}",
                           param="mesh")
        limit = MAX_BUFFER_BYTES if declared is None else \
            min(MAX_BUFFER_BYTES, declared + BUFFER_SLACK_BYTES)
        data = files.read(path, "buffer", limit)
        if declared is not None and len(data) < declared:
            raise BadInput(f"{spec}: buffer {path} is cut short ({len(data)} bytes; the glTF "
                           f"declares {declared})", param="mesh")
        files.serve(uri, data)
        out.append(data)
    return out


def _gltf_images(files: MeshFiles, doc: dict, buffers: list[Any]) -> set[int]:
    """Check every image; the indices of those that cannot be used (each after one WARNING
    line) are blanked for trimesh and returned."""
    spec, where = files.spec, str(files.mesh_path)
    views = _items(doc, "bufferViews")
    images = _items(doc, "images")
    bad: set[int] = set()

    def view_bytes(v: Any) -> bytes:
        view = views[v]
        buf = buffers[view["buffer"]]
        if isinstance(buf, str):  # a data: URI, decoded only when an image needs it
            buf = buffers[view["buffer"]] = _data_uri(buf)
        start = int(view.get("byteOffset", 0))
        blob = buf[start:start + int(view["byteLength"])]
        if len(blob) != int(view["byteLength"]):
            raise ValueError("the buffer view runs past its buffer")
        return blob

    for i, img in enumerate(images):
        reason = None
        if not isinstance(img, dict):
            reason = "is not a JSON object"
        elif img.get("mimeType") == "image/ktx2":
            reason = "is a KTX2 image, which is not supported"
        elif "bufferView" in img or (isinstance(img.get("uri"), str)
                                     and img["uri"].startswith("data:")):
            try:
                blob = view_bytes(img["bufferView"]) if "bufferView" in img \
                    else _data_uri(img["uri"])
            except (ValueError, TypeError, KeyError, IndexError) as exc:
                reason = f"cannot be read ({first_line(exc, 80)})"
            else:
                try:
                    if len(blob) > MAX_IMAGE_BYTES:
                        raise ImageTooLarge(f"{_size(len(blob))}, more than "
                                            f"{_size(MAX_IMAGE_BYTES)}")
                    decode_image(blob)
                except ImageTooLarge as exc:
                    raise BadInput(f"{spec}: embedded image {i} is too large ({exc}; a "
                                   "decompression bomb?)", param="mesh") from None
                except ValueError as exc:
                    reason = f"is not a readable image ({exc})"
        elif isinstance(img.get("uri"), str):
            found = files.texture(img["uri"], where, uri=True)
            if found is None:
                bad.add(i)
            else:
                files.serve(img["uri"], found[1])
        else:
            reason = "has neither a uri nor a bufferView"
        if reason is not None:
            files.warn_once(f"{where}: embedded image {i} {reason}; using the material "
                            "colour")
            bad.add(i)
    for i in bad:
        images[i] = {}
    return bad


def _gltf_textures(files: MeshFiles, doc: dict, bad: set[int]) -> None:
    """Base-colour textures that lead to no usable image: one WARNING line each (unless the
    image was warned about already), and taken out."""
    where = str(files.mesh_path)
    textures, n_images = _items(doc, "textures"), len(_items(doc, "images"))
    for mi, mat in enumerate(_items(doc, "materials")):
        if not isinstance(mat, dict) or not isinstance(mat.get("pbrMetallicRoughness"), dict):
            continue
        pbr = mat["pbrMetallicRoughness"]
        ref = pbr.get("baseColorTexture")
        if ref is None:
            continue
        name = mat.get("name") or mi
        idx = ref.get("index") if isinstance(ref, dict) else None
        if not isinstance(idx, int) or isinstance(idx, bool) or not 0 <= idx < len(textures) \
                or not isinstance(textures[idx], dict):
            files.warn_once(f"{where}: material {name}: baseColorTexture index {idx!r} is not "
                            "a texture of the file; using the material colour")
            del pbr["baseColorTexture"]
            continue
        src = textures[idx].get("source")
        if src is None and textures[idx].get("extensions"):
            continue  # an extension names the image (KHR_texture_basisu, EXT_texture_webp)
        if not isinstance(src, int) or isinstance(src, bool) or not 0 <= src < n_images:
            files.warn_once(f"{where}: material {name}: texture {idx} names image {src!r}, "
                            "which does not exist; using the material colour")
            del pbr["baseColorTexture"]
        elif src in bad:
            del pbr["baseColorTexture"]


# ------------------------------------------------------------------------------ PLY
def prepare_ply(files: MeshFiles, data: bytes) -> bytes:
    """Check a PLY file: an ASCII body must hold exactly the elements its header declares
    (trimesh would shift the data silently), and its ``TextureFile`` goes through the rules.
    Returns the bytes trimesh is to parse (a refused texture's line taken out)."""
    spec, name = files.spec, files.mesh_path.name
    end = data.find(b"end_header")
    if not data.startswith(b"ply") or end < 0:
        return data  # trimesh says what is wrong
    nl = data.find(b"\n", end)
    body_at = len(data) if nl < 0 else nl + 1
    header = data[:body_at].decode("latin-1")
    lines = header.splitlines(keepends=True)
    ascii_body = False
    elements: list[tuple[str, int, list[bool]]] = []
    for k, raw in enumerate(lines):
        words = raw.split()
        if not words:
            continue
        if words[0] == "format":
            ascii_body = len(words) > 1 and words[1] == "ascii"
        elif words[0] == "element" and len(words) == 3:
            try:
                elements.append((words[1], int(words[2]), []))
            except ValueError:
                return data
        elif words[0] == "property" and elements:
            elements[-1][2].append(len(words) > 1 and words[1] == "list")
        elif "texturefile" in raw.lower():
            tex = raw[raw.lower().index("texturefile") + 11:].strip()
            found = files.texture(tex, str(files.mesh_path)) if tex else None
            if found is None:
                lines[k] = "comment (texture left out)\n"
            else:
                files.serve(tex, found[1])
    if ascii_body:
        _check_ply_ascii(data[body_at:], elements, spec, name)
    return "".join(lines).encode("latin-1") + data[body_at:]


def _check_ply_ascii(body: bytes, elements: list[tuple[str, int, list[bool]]], spec: str,
                     name: str) -> None:
    """An ASCII PLY holds one element per row: as many rows as the header declares, each
    with as many values as its properties need (trimesh would read a short file shifted,
    dropping faces silently)."""
    rows = [line for line in body.splitlines() if line.strip()]
    declared = sum(n for _, n, _ in elements)
    if len(rows) != declared:
        counts = ", ".join(f"{n} {e}" for e, n, _ in elements)
        raise BadInput(f"{spec}: the PLY header declares {counts} ({declared} rows) but the "
                       f"data holds {len(rows)} rows ({name}: wrong element count)",
                       param="mesh")
    r = 0
    for ename, n, props in elements:
        for j in range(r, r + n):
            words = rows[j].split()
            if props == [True]:  # one list, e.g. a face's vertex indices
                try:
                    need = 1 + int(float(words[0]))
                except ValueError:
                    need = -1
            elif not any(props):
                need = len(props)
            else:
                break  # several lists in a row: not checked
            if len(words) != need:
                raise BadInput(f"{spec}: PLY {ename} {j - r} has {len(words)} values, "
                               f"expected {max(need, 0)} ({name}: wrong counts)", param="mesh")
        r += n


# ------------------------------------------------------------------------------ loading
@dataclass
class ParsedMesh:
    """A mesh file parsed into a trimesh Scene, with the files it was read from."""

    scene: trimesh.Scene
    files: list[FileRead]
    defined: set[str] | None = None  # OBJ: the materials its MTL files define
    no_kd: set[str] = field(default_factory=set)


def read_mesh(path: Path, spec: str, allow_outside: bool = False,
              process: bool = False) -> ParsedMesh:
    """Check a mesh file and everything it refers to, and parse it into a trimesh Scene
    (geometry not processed: NaN vertices and duplicate faces are still there for the caller
    to check); every file read goes through one :class:`MeshFiles`."""
    files = MeshFiles(path, spec, allow_outside)
    suffix = path.suffix.lower()
    kwargs: dict[str, Any] = {"process": process, "resolver": files}
    data = files.read_mesh_file()
    mats: ObjMaterials | None = None
    try:
        if suffix == ".stl":
            if data[:5].lower() == b"solid" and b"\x00" not in data[:65536]:
                data = as_utf8(data, spec)  # ASCII STL
            elif len(data) < 84 or len(data) != 84 + 50 * struct.unpack_from("<I", data, 80)[0]:
                raise BadInput(f"{spec}: not an STL file (no 'solid' header of an ASCII STL, "
                               "and the size does not match a binary STL's triangle count)",
                               param="mesh")
            file_type = "stl"
        elif suffix in (".gltf", ".glb"):
            data, file_type = prepare_gltf(files, data), "gltf"
        elif suffix == ".obj":
            data, mats = prepare_obj(files, as_utf8(data, spec))
            file_type = "obj"
        elif suffix == ".ply":
            data, file_type = prepare_ply(files, data), "ply"
        elif suffix in TEXT_FORMATS:
            data, file_type = as_utf8(data, spec), suffix[1:]
        else:
            file_type = suffix[1:]
        try:
            with pixel_limit():
                scene = trimesh.load_scene(io.BytesIO(data), file_type=file_type, **kwargs)
        except BadInput:
            raise
        except Exception as exc:  # trimesh raises many kinds for broken files
            if files.failure is not None:
                raise files.failure from None
            raise BadInput(f"{spec}: cannot parse {path.suffix} file "
                           f"({first_line(exc, 120)})", param="mesh") from None
        if files.failure is not None:
            raise files.failure
    finally:
        files.release()
    _keep_vertex_colours(scene)
    return ParsedMesh(scene, files.records, mats.defined if mats else None,
                      mats.no_kd if mats else set())


def _keep_vertex_colours(scene: trimesh.Scene) -> None:
    """glTF ``COLOR_0`` of a primitive with a material: trimesh keeps it on the visual, where
    ``Scene.dump`` loses it; it moves to the geometry's vertex attributes."""
    for g in scene.geometry.values():
        vis = getattr(g, "visual", None)
        col = getattr(vis, "vertex_attributes", {}).get("color") \
            if isinstance(vis, trimesh.visual.TextureVisuals) else None
        if col is not None and len(col) == len(g.vertices):
            g.vertex_attributes["color"] = np.asarray(col)


def load_scene(path: Path, spec: str, process: bool = False) -> trimesh.Scene:
    """Parse a mesh file into a trimesh Scene (see :func:`read_mesh`)."""
    return read_mesh(path, spec, process=process).scene


__all__ = ["ALLOW_OUTSIDE_VARIABLE", "BUFFER_SLACK_BYTES", "FILES_KEY", "MAX_BUFFER_BYTES",
           "MAX_IMAGE_BYTES", "MAX_IMAGE_PIXELS", "MAX_MTL_BYTES", "FileRead", "MeshFiles",
           "ParsedMesh", "as_utf8", "check_image", "read_mesh", "warn"]
