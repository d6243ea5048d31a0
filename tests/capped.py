"""Running code that the old behaviour would hang or blow up in, without taking the machine
with it: the CLI under a memory cap and a timeout, a call on a thread with a deadline, and a
FIFO a stuck reader can be let go of."""

from __future__ import annotations

import os
import resource
import subprocess
import threading
from collections.abc import Callable
from pathlib import Path
from typing import Any

MEMORY_CAP = 3 << 30  # address space for the CLI under test: reading /dev/zero whole breaks it


def _capped() -> None:
    resource.setrlimit(resource.RLIMIT_AS, (MEMORY_CAP, MEMORY_CAP))


def run_capped(cli: str, *args: str, env: dict[str, str] | None = None,
               timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """`aigc-chat ARGS` under a memory cap; a hang fails at the timeout."""
    full = dict(os.environ)
    full.update(env or {})
    return subprocess.run([cli, *args], capture_output=True, text=True, timeout=timeout, env=full,
                          stdin=subprocess.DEVNULL, preexec_fn=_capped)


def release(fifo: Path) -> None:
    """Open a FIFO for writing and close it: a reader stuck in open() (the old code) returns."""
    try:
        os.close(os.open(fifo, os.O_WRONLY | os.O_NONBLOCK))
    except OSError:
        pass  # nobody is waiting on it


def within(seconds: float, fn: Callable[[], Any]) -> Any:
    """fn() on a thread, failing the test if it has not returned in `seconds`."""
    out: dict[str, Any] = {}

    def run() -> None:
        try:
            out["value"] = fn()
        except BaseException as exc:  # noqa: BLE001 - handed back to the test
            out["error"] = exc

    t = threading.Thread(target=run, daemon=True)
    t.start()
    t.join(seconds)
    assert not t.is_alive(), f"still blocked after {seconds} s"
    if "error" in out:
        raise out["error"]
    return out["value"]
