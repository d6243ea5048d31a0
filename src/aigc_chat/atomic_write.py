"""Replace a file the user sees in one step, or not at all.

Writing a file in place (`open(path, "w")`, then the text) first empties it: on a full disk,
a quota or a crash in between, the user is left with a 0-byte or truncated file where a good
one was (an earlier export, their config.toml). Here the new content goes into a temporary
file beside the *target*, is flushed to the disk, takes the old file's mode, and only then
is renamed over it, so a reader sees either the old file or the whole new one.

A symlink (config.toml kept in a dotfiles repo) is written through: the file it points at is
replaced and the link stays a link. A path that names something other than a regular file
(`-o /dev/stdout`, a FIFO) cannot be replaced by a rename and is written directly, as before.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from pathlib import Path


def target_of(path: Path) -> Path:
    """The file a write to `path` should change: the end of its symlink chain, if any."""
    return Path(os.path.realpath(path))


def write_atomic(path: Path, data: bytes, new_mode: int | None = 0o600) -> Path:
    """Write `data` to `path` atomically; returns the file actually replaced.

    An existing file keeps its permission bits; a new one gets `new_mode` (None: what `open()`
    would give it, 0666 less the umask). Raises OSError
    (ENOSPC, EACCES, ...) with the old file untouched and no temporary file left behind."""
    target = target_of(path)
    try:
        st: os.stat_result | None = os.stat(target)
    except FileNotFoundError:
        st = None
    if st is not None and not stat.S_ISREG(st.st_mode):
        _write_direct(target, data)
        return target
    mode = stat.S_IMODE(st.st_mode) if st is not None else new_mode if new_mode is not None else _default_mode()
    fd, tmp = tempfile.mkstemp(prefix=f".{target.name}.", suffix=".tmp", dir=target.parent)
    try:
        with os.fdopen(fd, "wb") as fh:
            fh.write(data)
            fh.flush()
            os.fchmod(fh.fileno(), mode)
            if st is not None:
                with contextlib.suppress(OSError):  # only root may give a file away
                    os.fchown(fh.fileno(), st.st_uid, st.st_gid)
            os.fsync(fh.fileno())
        os.replace(tmp, target)
    except BaseException:
        with contextlib.suppress(OSError):
            os.unlink(tmp)
        raise
    _sync_dir(target.parent)
    return target


def _default_mode() -> int:
    umask = os.umask(0o022)  # the only way to read it; set straight back
    os.umask(umask)
    return 0o666 & ~umask


def _write_direct(target: Path, data: bytes) -> None:
    with open(target, "wb") as fh:
        fh.write(data)


def _sync_dir(folder: Path) -> None:
    """Make the rename itself durable (best effort: not every file system allows it)."""
    try:
        fd = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)
