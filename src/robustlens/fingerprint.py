"""Content fingerprints of the inputs that determine a result (step keys, resume keys).

A result may only be reused when every input it was computed from is byte-identical, so keys
hash file *contents*, never just paths. Hashes are cached by ``(path, size, mtime_ns)`` in a
small JSON file (:func:`cache_dir` ``/hashes.json``) so large weight files and image sets are
read once, not on every run.

* :func:`cache_dir`: the one user cache folder of robustlens (``$ROBUSTLENS_CACHE``).
* :func:`sha256_file`: SHA-256 of one file, read now; :func:`file_digest`: the same, cached.
* :func:`model_key`: every key that depends on a model (study steps, map chunks, CAM scoring
  runs, Ray workers' model cache, ONNX exports) hashes the model's
  :meth:`~robustlens.models.base.Classifier.identity` through this one function.
* :func:`mesh_fingerprint`: the files a loaded mesh was read from, as the loader recorded
  them (``mesh.metadata["robustlens.files"]``).
* :func:`mesh_files` / :func:`mesh_files_digest`: a mesh file plus every file the mesh loader
  reads for it (OBJ: its ``mtllib`` files and the ``map_Kd`` textures they name; glTF:
  external buffers and images; PLY: its ``TextureFile``), read through the loader's own
  resolver so that what is hashed is what is rendered.
* :func:`items_digest`: a loaded box dataset: every item's class, boxes and image contents.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
import threading
from collections.abc import Iterable
from pathlib import Path
from typing import Any

_LOCK = threading.Lock()
_MEMO: dict[str, tuple[int, int, str]] = {}
_LOADED = False
_DIRTY = False
#: at most this many entries are kept in the on-disk cache (the most recent ones)
CACHE_ENTRIES = 200_000


#: the deprecated name of ``$ROBUSTLENS_CACHE`` (read, with a warning, for one release)
DEPRECATED_CACHE_VARIABLE = "ROBUSTLENS_CACHE_DIR"


def cache_dir() -> Path:
    """The user cache folder of robustlens: ``$ROBUSTLENS_CACHE``, else
    ``$XDG_CACHE_HOME/robustlens``, else ``~/.cache/robustlens``. It holds the file-hash cache
    (``hashes.json``) and the ONNX exports (``onnx/``). ``$ROBUSTLENS_CACHE_DIR`` is read as
    a deprecated alias when ``$ROBUSTLENS_CACHE`` is unset."""
    given = os.environ.get("ROBUSTLENS_CACHE")
    if not given and os.environ.get(DEPRECATED_CACHE_VARIABLE):
        import warnings

        warnings.warn("ROBUSTLENS_CACHE_DIR is deprecated; set ROBUSTLENS_CACHE instead",
                      DeprecationWarning, stacklevel=2)
        given = os.environ[DEPRECATED_CACHE_VARIABLE]
    if given:
        return Path(given).expanduser()
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base).expanduser() / "robustlens"


def cache_file() -> Path:
    return cache_dir() / "hashes.json"


def sha256_file(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of a file's contents, read now (see :func:`file_digest` for the cached
    one)."""
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def _load_cache() -> None:
    global _LOADED
    if _LOADED:
        return
    _LOADED = True
    with contextlib.suppress(OSError, ValueError, TypeError):
        data = json.loads(cache_file().read_text())
        for k, v in data.items():
            if isinstance(v, list) and len(v) == 3:
                _MEMO.setdefault(k, (int(v[0]), int(v[1]), str(v[2])))


def save_cache() -> None:
    """Write the hash cache (best effort: an unwritable cache dir only costs rehashing)."""
    global _DIRTY
    from .io import write_text_atomic

    with _LOCK:
        if not _DIRTY:
            return
        items = list(_MEMO.items())[-CACHE_ENTRIES:]
        _DIRTY = False
    with contextlib.suppress(OSError):
        write_text_atomic(cache_file(), json.dumps({k: list(v) for k, v in items}))


def file_digest(path: str | os.PathLike[str]) -> str:
    """SHA-256 (hex) of a file's contents, cached by (absolute path, size, mtime_ns)."""
    p = os.path.abspath(os.fspath(path))
    st = os.stat(p)
    global _DIRTY
    with _LOCK:
        _load_cache()
        hit = _MEMO.get(p)
        if hit and hit[0] == st.st_size and hit[1] == st.st_mtime_ns:
            return hit[2]
    digest = sha256_file(p)
    with _LOCK:
        _MEMO.pop(p, None)
        _MEMO[p] = (st.st_size, st.st_mtime_ns, digest)
        _DIRTY = True
    return digest


def digest_of(obj: Any) -> str:
    """SHA-256 (hex) of a JSON-able object (sorted keys)."""
    return hashlib.sha256(json.dumps(obj, sort_keys=True, default=str).encode()).hexdigest()


def model_key(model: Any, *parts: Any, runtime: bool = True) -> str:
    """SHA-256 (hex) of a model's full identity (``model.identity(runtime)``: spec, weight
    and source hashes, preprocessing, labels, CAM layer, runtime) and ``parts``.

    The one place a key that depends on a model is built: change any single setting of the
    model and every such key changes."""
    return digest_of([model.identity(runtime=runtime), *parts])


# ------------------------------------------------------------------------------ meshes
def _read_mesh_files(path: str | os.PathLike[str], allow_outside: bool = False) -> list[Any]:
    """The files the mesh loader reads for ``path`` (records with path and sha256)."""
    from .render.meshfile import read_mesh

    p = Path(path)
    return read_mesh(p, str(path), allow_outside=allow_outside).files


def mesh_files(path: str | os.PathLike[str], allow_outside: bool = False) -> list[Path]:
    """The mesh file followed by every file the mesh loader reads for it (material
    libraries, textures, external glTF buffers and images; found and refused by the same
    rules, :class:`robustlens.render.meshfile.MeshFiles`), each once, in reading order."""
    return [f.path for f in _read_mesh_files(path, allow_outside)]


def files_digest(path: str | os.PathLike[str], files: Iterable[Any]) -> str:
    """Digest of the files a mesh was read from: each one's path relative to the mesh
    file's folder and the SHA-256 of the bytes read. ``files``: the records of
    :func:`~robustlens.render.meshfile.read_mesh` or the dicts of
    ``mesh.metadata["robustlens.files"]``."""
    base = Path(path).parent
    parts = []
    for f in files:
        fpath, sha = (f["path"], f["sha256"]) if isinstance(f, dict) else (f.path, f.sha256)
        try:
            rel = os.path.relpath(fpath, base)
        except ValueError:
            rel = str(fpath)
        parts.append([rel, sha])
    return digest_of(parts)


def mesh_files_digest(path: str | os.PathLike[str], allow_outside: bool = False) -> str:
    """Digest of a mesh file and every file the loader reads for it (see
    :func:`mesh_files`): exactly the bytes a render of it depends on."""
    return files_digest(path, _read_mesh_files(path, allow_outside))


def mesh_fingerprint(spec: str, mesh: Any = None) -> str:
    """Digest of a mesh spec's file contents plus every file the loader read for it
    (materials, textures, buffers). ``mesh``: the mesh ``load_mesh(spec)`` returned; the
    loader's own record of the files it read (``mesh.metadata["robustlens.files"]``) is
    hashed, nothing is parsed again. Without one the spec is read by the loader's reader."""
    from .render.mesh import resolve_mesh_path
    from .render.meshfile import FILES_KEY

    path = resolve_mesh_path(spec)
    files = getattr(mesh, "metadata", {}).get(FILES_KEY) if mesh is not None else None
    if files:
        return files_digest(path, files)
    return mesh_files_digest(path)


# ---------------------------------------------------------------------------- datasets
def items_digest(items: Iterable[Any]) -> str:
    """Digest of a box dataset: each item's name, class id, boxes and image contents (a
    file path is hashed by contents; an in-memory image by its bytes)."""
    import numpy as np

    h = hashlib.sha256()
    for it in items:
        img = it.image
        if isinstance(img, (str, os.PathLike)):
            img_d = file_digest(img)
        else:
            arr = img.detach().cpu().numpy() if hasattr(img, "detach") else np.asarray(img)
            img_d = hashlib.sha256(np.ascontiguousarray(arr).tobytes()).hexdigest() + \
                str(arr.shape) + str(arr.dtype)
        boxes = np.asarray(it.boxes, dtype=np.float64).round(6).tolist()
        h.update(json.dumps([str(getattr(it, "name", "")), int(it.class_id), boxes, img_d])
                 .encode())
        h.update(b"\n")
    save_cache()
    return h.hexdigest()
