"""Which process is writing a reply, and asking it to stop: the history's part of reattaching.

A reply row being streamed carries its writer in its `meta` (`{"writer": {"pid", "host"}}`,
written when the row is made; the finished row's meta drops it). Another process that opens
the conversation (`aigc-chat --continue`, the history pane) sees an unfinished reply whose
writer is alive on this machine: it follows the row as it grows instead of answering in the
same place (two writers would fork the conversation). To stop that reply it sets `stop` in
the row's meta; the writer reads it back each time it saves (about once a second) and ends
the reply as cancelled. No schema change: `meta` is JSON already (schema 2)."""

from __future__ import annotations

import os
import socket
from typing import Any

WRITER = "writer"
STOP = "stop"


def start_time(pid: int) -> int | None:
    """When the process started (clock ticks since boot, Linux's /proc), so a process id
    reused by another program is not taken for the writer; None where it cannot be told."""
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return int(f.read().rsplit(")", 1)[-1].split()[19])
    except (OSError, ValueError, IndexError):
        return None


def writer_meta() -> dict[str, Any]:
    """The meta a new reply row starts with: this process as its writer."""
    pid = os.getpid()
    return {WRITER: {"pid": pid, "host": socket.gethostname(), "start": start_time(pid)}}


def process_alive(pid: int) -> bool:
    """Whether `pid` runs (a zombie does not). A process of another user counts as alive."""
    if pid <= 0:
        return False
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    except OSError:
        return False
    try:
        with open(f"/proc/{pid}/stat", encoding="ascii", errors="replace") as f:
            return f.read().rsplit(")", 1)[-1].split()[:1] != ["Z"]
    except OSError:  # no /proc (not Linux): kill(0) said it is there
        return True


def live_writer(meta: dict[str, Any], finish_reason: str | None) -> int | None:
    """The id of another live process on this machine still writing the reply with this meta
    and finish reason; None when it is finished, ours, or its writer is gone (a reply cut off
    by a kill: it is shown as it was saved)."""
    if finish_reason is not None:
        return None
    writer = meta.get(WRITER) if isinstance(meta, dict) else None
    if not isinstance(writer, dict):
        return None
    pid, host = writer.get("pid"), writer.get("host")
    if type(pid) is not int or host != socket.gethostname() or pid == os.getpid():
        return None
    if not process_alive(pid):
        return None
    started = writer.get("start")
    if type(started) is int and start_time(pid) not in (None, started):
        return None  # the writer is gone and its id now belongs to another process
    return pid
