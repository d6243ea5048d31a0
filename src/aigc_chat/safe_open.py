"""Open only regular files, and read them only up to a bound.

A path the user gives us can name a FIFO (`open()` blocks until a writer comes, forever),
a character device (`/dev/zero` reads forever, `/dev/tty` steals the keyboard) or a
directory. Every file aigc-chat reads by name (config, models, checkpoints, data, stdin
when it is one) goes through here: the file is opened with O_NONBLOCK, so even a FIFO
returns at once, and `fstat` on the open descriptor (not a `stat` of the name, which a
swap could outrun) decides whether it is a regular file.
"""

from __future__ import annotations

import errno
import os
import stat
from collections.abc import Callable
from pathlib import Path
from typing import BinaryIO

from aigc_chat.atomic_write import write_atomic
from aigc_chat.errors import AigcError, OutputError, UsageError

ErrorFactory = Callable[[str], AigcError]


def kind_of(mode: int) -> str:
    """A user-facing name for what a path is, when it is not a regular file."""
    if stat.S_ISDIR(mode):
        return "a directory"
    if stat.S_ISFIFO(mode):
        return "a FIFO (named pipe)"
    if stat.S_ISCHR(mode):
        return "a character device"
    if stat.S_ISBLK(mode):
        return "a block device"
    if stat.S_ISSOCK(mode):
        return "a socket"
    return "not a regular file"


def open_regular(path: str | Path, what: str = "file", error: ErrorFactory = UsageError) -> BinaryIO:
    """Open `path` for reading if, and only if, it is a regular file (symlinks followed)."""
    p = Path(path).expanduser()
    try:
        fd = os.open(p, os.O_RDONLY | os.O_NONBLOCK | getattr(os, "O_CLOEXEC", 0))
    except FileNotFoundError:
        raise error(f"{what} not found: {p}") from None
    except IsADirectoryError:
        raise error(f"{what} {p} is a directory, not a file") from None
    except PermissionError:
        raise error(f"cannot read {what} {p}: permission denied") from None
    except OSError as exc:
        raise error(f"cannot read {what} {p}: {exc.strerror or exc}") from None
    try:
        st = os.fstat(fd)
        if not stat.S_ISREG(st.st_mode):
            raise error(f"{what} {p} is {kind_of(st.st_mode)}, not a regular file")
        os.set_blocking(fd, True)
        return os.fdopen(fd, "rb")
    except BaseException:
        os.close(fd)
        raise


def read_regular(path: str | Path, limit: int, what: str = "file",
                 error: ErrorFactory = UsageError) -> bytes:
    """The whole file, refused before reading when it is larger than `limit` bytes."""
    with open_regular(path, what, error) as fh:
        size = os.fstat(fh.fileno()).st_size
        if size > limit:
            raise error(f"{what} {Path(path).expanduser()} is {_size(size)}, over the {_size(limit)} limit")
        data = fh.read(limit + 1)  # the file may grow while we read
    if len(data) > limit:
        raise error(f"{what} {Path(path).expanduser()} is over the {_size(limit)} limit")
    return data


def read_stream(fh: BinaryIO, limit: int, what: str, error: ErrorFactory = UsageError) -> bytes:
    """Read an already open stream (stdin) to its end, but never more than `limit` bytes:
    `< /dev/zero` must end with an error, not fill the memory."""
    chunks: list[bytes] = []
    total = 0
    while True:
        chunk = fh.read(min(1 << 20, limit + 1 - total))
        if not chunk:
            return b"".join(chunks)
        chunks.append(chunk)
        total += len(chunk)
        if total > limit:
            raise error(f"{what} is over the {_size(limit)} limit")


def _size(n: int) -> str:
    if n >= 1 << 20:
        return f"{n / (1 << 20):.1f} MiB"
    if n >= 1 << 10:
        return f"{n / (1 << 10):.1f} KiB"
    return f"{n} bytes"


def write_private(path: Path, text: str) -> None:
    """An export holds a conversation: it is the user's alone (0600 when new), from either
    front end. Written atomically (aigc_chat.atomic_write): a full disk keeps an earlier
    export whole and leaves no empty or half file."""
    try:
        write_atomic(path, text.encode("utf-8"), new_mode=0o600)
    except OSError as exc:
        reason = exc.strerror or str(exc)
        # A path that cannot be right (no such folder, a directory, no permission) is the
        # user's to fix (2); a disk that fills up or fails while writing is a failure (1).
        if exc.errno in (errno.ENOENT, errno.ENOTDIR, errno.EISDIR, errno.EACCES, errno.EPERM, errno.EROFS):
            raise UsageError(f"cannot write {path}: {reason}") from None
        raise OutputError(f"cannot write {path}: {reason}") from None
