"""Files the user sees are replaced whole or not at all (aigc_chat.atomic_write): on a full disk
`history export -o` keeps an earlier export intact, leaves no 0-byte or half file and no temp
file, and exits 1 with one line. The full disk is a real one: a 64 KiB tmpfs mounted for the
test (we run as root here); without mount rights, the closest honest fault is a file-size
limit (RLIMIT_FSIZE, EFBIG) on the CLI process, and the test says which it used."""

from __future__ import annotations

import os
import resource
import signal
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from aigc_chat.atomic_write import write_atomic
from aigc_chat.history_store import HistoryStore

SMALL_DISK = 64 * 1024


@pytest.fixture
def full_disk(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A folder whose file system holds SMALL_DISK bytes: ("tmpfs") or, where mounting is not
    allowed, a plain folder and ("fsize"): the CLI then runs under RLIMIT_FSIZE."""
    mnt = tmp_path / "disk"
    mnt.mkdir()
    mounted = os.geteuid() == 0 and subprocess.run(
        ["mount", "-t", "tmpfs", "-o", f"size={SMALL_DISK},mode=0755", "tmpfs", str(mnt)],
        capture_output=True).returncode == 0
    try:
        yield mnt, "tmpfs" if mounted else "fsize"
    finally:
        if mounted and subprocess.run(["umount", str(mnt)], capture_output=True).returncode != 0:
            subprocess.run(["umount", "-l", str(mnt)], capture_output=True)


def _limit_file_size() -> None:
    signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # a write past the limit fails with EFBIG
    resource.setrlimit(resource.RLIMIT_FSIZE, (SMALL_DISK, SMALL_DISK))


def _export(cli: str, how: str, *args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run([cli, "history", "export", *args], capture_output=True, text=True, timeout=120,
                          stdin=subprocess.DEVNULL, preexec_fn=_limit_file_size if how == "fsize" else None)


def test_a_full_disk_keeps_the_earlier_export(cli: str, full_disk: tuple[Path, str]) -> None:
    mnt, how = full_disk
    with HistoryStore() as store:
        small = store.create_conversation("small")
        store.add_message(small, "user", "How do pelicans fish?")
        big = store.create_conversation("big")
        store.add_message(big, "user", "Tell me everything.")
        store.add_message(big, "assistant", "pelican " * (SMALL_DISK // 4), finish_reason="stop")
    out = mnt / "conv.md"
    r = _export(cli, how, str(small), "-o", str(out))
    assert r.returncode == 0, r.stderr
    earlier = out.read_bytes()
    assert b"pelicans fish" in earlier and stat.S_IMODE(out.stat().st_mode) == 0o600

    r = _export(cli, how, str(big), "-o", str(out))
    assert r.returncode == 1, (how, r.returncode, r.stderr)
    assert r.stdout == "" and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, r.stderr
    assert f"cannot write {out}" in r.stderr
    assert out.read_bytes() == earlier  # the earlier export, whole
    assert sorted(p.name for p in mnt.iterdir()) == ["conv.md"]  # no temp file left

    fresh = mnt / "new.md"
    r = _export(cli, how, str(big), "-o", str(fresh))
    assert r.returncode == 1, r.stderr
    assert not fresh.exists()  # no 0-byte or half file
    assert sorted(p.name for p in mnt.iterdir()) == ["conv.md"]


def test_write_atomic_keeps_mode_and_writes_through_a_link(tmp_path: Path) -> None:
    target = tmp_path / "real.txt"
    target.write_text("old")
    target.chmod(0o640)
    link = tmp_path / "link.txt"
    link.symlink_to(target)
    assert write_atomic(link, b"new") == target
    assert link.is_symlink() and target.read_text() == "new" and stat.S_IMODE(target.stat().st_mode) == 0o640
    fresh = tmp_path / "fresh.txt"
    write_atomic(fresh, b"x")
    assert stat.S_IMODE(fresh.stat().st_mode) == 0o600
    assert sorted(p.name for p in tmp_path.iterdir()) == ["fresh.txt", "link.txt", "real.txt"]
