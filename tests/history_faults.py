"""Real faults for the history: another process holding the write lock, a full database,
a read-only file or directory. Shared by the store, CLI, TUI and terminal tests.

- `LockHolder`: a real `sqlite3` shell (a Python one where there is none) that runs
  `BEGIN IMMEDIATE` on the file and keeps the write lock until released.
- `fill_up`: SQLite's own SQLITE_FULL ("database or disk is full"), made on demand with
  `PRAGMA max_page_count` on the store's connection and rows until not even one more fits.
- `read_only`: the file or directory really refuses writes to this process: chmod when not
  root; as root (which ignores modes) a read-only bind mount for a directory and the
  immutable attribute for a file. The test is skipped when neither can be done.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

import pytest

_PY_HOLDER = """
import sqlite3, sys
conn = sqlite3.connect(sys.argv[1], isolation_level=None)
conn.execute("BEGIN IMMEDIATE")
print("locked", flush=True)
sys.stdin.readline()
conn.execute("ROLLBACK")
"""


class LockHolder:
    """Another process holding the history's write lock (`BEGIN IMMEDIATE`) until release()."""

    def __init__(self, path: Path) -> None:
        self.path = Path(path)
        if shutil.which("sqlite3"):
            self.proc = subprocess.Popen(["sqlite3", str(self.path)], stdin=subprocess.PIPE,
                                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
            assert self.proc.stdin is not None
            self.proc.stdin.write("BEGIN IMMEDIATE;\nSELECT 'locked';\n")
            self.proc.stdin.flush()
        else:
            self.proc = subprocess.Popen([sys.executable, "-c", _PY_HOLDER, str(self.path)],
                                         stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                                         stderr=subprocess.PIPE, text=True)
        assert self.proc.stdout is not None
        line = self.proc.stdout.readline()  # blocks until the lock is really held
        if line.strip() != "locked":
            self.proc.kill()
            raise AssertionError(f"could not take the lock: {line!r} {self.proc.stderr.read()!r}")

    def release(self) -> None:
        if self.proc.poll() is not None:
            return
        assert self.proc.stdin is not None
        try:
            self.proc.stdin.write("ROLLBACK;\n.quit\n" if shutil.which("sqlite3") else "\n")
            self.proc.stdin.flush()
            self.proc.stdin.close()
        except BrokenPipeError:
            pass
        try:
            self.proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()

    def __enter__(self) -> LockHolder:
        return self

    def __exit__(self, *exc: object) -> None:
        self.release()


def fill_up(store) -> None:
    """Make the store's database full for its own connection: no row of any size fits."""
    from aigc_chat.history import HistoryError

    conn = store.connection
    pages = conn.execute("PRAGMA page_count").fetchone()[0]
    conn.execute(f"PRAGMA max_page_count = {pages + 4}")
    cid = store.create_conversation("filler")
    for size in (3000, 600, 100, 10, 1):
        for _ in range(10_000):
            try:
                store.add_message(cid, "assistant", " ".join(f"w{size}x{i}" for i in range(max(1, size // 8))))
            except HistoryError:
                break
    for size in (100, 10, 1):
        for _ in range(10_000):
            try:
                store.create_conversation("t" * size)
            except HistoryError:
                break


def _run(*cmd: str) -> bool:
    return subprocess.run(list(cmd), capture_output=True).returncode == 0


@contextmanager
def read_only(path: Path) -> Iterator[str]:
    """Yield how it was done ("chmod", "bind mount", "immutable")."""
    path = Path(path)
    if os.geteuid() != 0:
        mode = path.stat().st_mode
        os.chmod(path, 0o555 if path.is_dir() else 0o444)
        try:
            yield "chmod"
        finally:
            os.chmod(path, mode)
        return
    if path.is_dir() and _run("mount", "--bind", str(path), str(path)):
        if _run("mount", "-o", "remount,ro,bind", str(path)):
            try:
                yield "bind mount"
            finally:
                if not _run("umount", str(path)):
                    _run("umount", "-l", str(path))
            return
        _run("umount", str(path))
    if shutil.which("chattr") and _run("chattr", "+i", str(path)):
        try:
            yield "immutable"
        finally:
            _run("chattr", "-i", str(path))
        return
    pytest.skip("cannot make a path read-only here (root without mount or chattr)")
