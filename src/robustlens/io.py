"""File output: atomic results, output folders checked before any work, one writer per folder.

A result file is either complete or absent, never half-written (:func:`atomic_path`). An
output folder is checked for writability before anything is computed
(:func:`check_out_dir`) and held with an exclusive lock while a command writes into it
(:func:`locked_out_dir`), so two runs into one folder cannot mix their files.
"""

from __future__ import annotations

import contextlib
import errno
import os
import re
import tempfile
from collections.abc import Iterator, Sequence
from pathlib import Path

from .errors import BadInput, ref

#: errors of a full disk or quota, reported as bad input naming the file (exit 2)
DISK_FULL = (errno.ENOSPC, errno.EDQUOT, errno.EFBIG)
#: the lock file every command holds inside its output folder while it writes there
LOCK_NAME = ".robustlens.lock"
#: temporary files of :func:`atomic_path` look like ``.NAME.XXXXXXXX.tmpSUFFIX``
_TEMP_RE = re.compile(r"^\..+\.[A-Za-z0-9_]{8}\.tmp")


@contextlib.contextmanager
def atomic_path(path: str | os.PathLike[str]) -> Iterator[Path]:
    """Yield a temporary path next to ``path``; move it onto ``path`` only on success.

    The temporary file lives in the same folder so that ``os.replace`` is atomic.
    On any exception the temporary file is removed and ``path`` is left untouched.
    """
    with atomic_paths([path]) as (tmp,):
        yield tmp


@contextlib.contextmanager
def atomic_paths(paths: Sequence[str | os.PathLike[str]]) -> Iterator[list[Path]]:
    """Like :func:`atomic_path` for several files that belong together (``map.nc`` +
    ``map.png``): all are written to temporary files first and renamed one after the other
    only when every one of them was written, so a failure leaves the old set untouched."""
    targets = [Path(p) for p in paths]
    tmps: list[Path] = []
    # mkstemp creates 0600 files; results are meant to be shared: use the umask like open()
    umask = os.umask(0)
    os.umask(umask)
    try:
        for path in targets:
            path.parent.mkdir(parents=True, exist_ok=True)
            fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".tmp" + path.suffix,
                                       dir=path.parent)
            os.close(fd)
            os.chmod(tmp, 0o666 & ~umask)
            tmps.append(Path(tmp))
        yield list(tmps)
        for tmp_path, target in zip(tmps, targets, strict=True):
            os.replace(tmp_path, target)
    except OSError as exc:
        if exc.errno in DISK_FULL:  # the user's disk, not a bug: say which file, keep the rest
            raise BadInput(f"cannot write it: {os.strerror(exc.errno)} "
                           f"(results finished before it are complete and kept; free some "
                           f"space and run again to continue)", value=targets[0]) from None
        raise
    finally:
        for leftover in tmps:
            if leftover.exists():
                leftover.unlink()


def write_text_atomic(path: str | os.PathLike[str], text: str) -> None:
    """Write ``text`` to ``path`` atomically."""
    with atomic_path(path) as tmp:
        tmp.write_text(text)


def check_out_dir(path: str | os.PathLike[str], param: str = "out") -> Path:
    """Raise BadInput (with ``param``, the caller's name for the folder) unless ``path`` is
    (or can be created as) a writable folder.

    Nothing is created: the nearest existing ancestor must be a writable folder.
    """
    p = Path(path).expanduser()
    if p.exists():
        if not p.is_dir():
            raise BadInput("exists and is not a folder", param=param, value=path)
        if not _can_write(p):
            raise BadInput("folder is not writable", param=param, value=path)
        return p
    parent = p.absolute().parent
    while not parent.exists():
        parent = parent.parent
    if not parent.is_dir():
        raise BadInput(f"cannot create it ({parent} is not a folder)", param=param, value=path)
    if not _can_write(parent):
        raise BadInput(f"cannot create it ({parent} is not writable)", param=param, value=path)
    return p


def _can_write(folder: Path) -> bool:
    """Try it (permission bits lie for root and on read-only mounts): create and delete a
    temporary file."""
    if not os.access(folder, os.W_OK | os.X_OK):
        return False
    try:
        with tempfile.TemporaryFile(dir=folder):
            pass
    except OSError:
        return False
    return True


def remove_stale_temps(folder: str | os.PathLike[str]) -> int:
    """Delete temporary files left in ``folder`` (recursively) by a killed run; returns how
    many. Only call it while holding the folder's lock (no other run writes there)."""
    n = 0
    root = Path(folder)
    if not root.is_dir():
        return 0
    for dirpath, _dirs, files in os.walk(root):
        for f in files:
            if _TEMP_RE.match(f):
                with contextlib.suppress(OSError):
                    os.unlink(os.path.join(dirpath, f))
                    n += 1
    return n


@contextlib.contextmanager
def locked_out_dir(path: str | os.PathLike[str], param: str = "out") -> Iterator[Path]:
    """Create ``path`` if needed and hold an exclusive lock on it while the block runs.

    A second run into the same folder fails at once with BadInput (no waiting, no mixing of
    two runs' files). Temporary files of killed runs are removed. A folder created here that
    is still empty at the end (the run failed before writing) is removed again.
    """
    import fcntl

    p = check_out_dir(path, param)
    created = not p.exists()
    try:
        p.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise BadInput(f"cannot create the folder ({exc.strerror})", param=param,
                       value=path) from None
    lock = p / LOCK_NAME
    try:
        fd = os.open(lock, os.O_RDWR | os.O_CREAT, 0o666)
    except OSError as exc:
        raise BadInput(f"cannot write into the folder ({exc.strerror})", param=param,
                       value=path) from None
    locked = False
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            locked = True
        except OSError as exc:
            if exc.errno in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise BadInput(f"another robustlens run is writing into this "
                               f"folder; wait for it or choose another {ref(param)}", param=param,
                               value=path) from None
            raise
        # the lock file may have been unlinked by a finishing run between open and flock
        try:
            same = os.path.samestat(os.fstat(fd), os.stat(lock))
        except FileNotFoundError:
            same = False
        if not same:
            raise BadInput(f"another robustlens run is writing into this "
                           f"folder; wait for it or choose another {ref(param)}", param=param,
                           value=path)
        remove_stale_temps(p)
        yield p
    finally:
        with contextlib.suppress(OSError):
            if locked and os.path.samestat(os.fstat(fd), os.stat(lock)):
                os.unlink(lock)  # unlink before unlocking: a waiter re-checks the inode
        os.close(fd)
        if created:
            with contextlib.suppress(OSError):
                p.rmdir()  # only when empty: a failed run leaves no folder behind
