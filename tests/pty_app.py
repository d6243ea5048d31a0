"""A command run in a real pseudo-terminal, its output read as it comes.

Shared by the terminal-traffic test (tests/test_tui_wire.py) and bench/bench_tui.py
(start-up to first paint, bytes per streamed token): what a terminal, or an SSH link,
would receive from `aigc-chat`.
"""

from __future__ import annotations

import fcntl
import os
import pty
import select
import struct
import termios
import time
from collections.abc import Mapping, Sequence


class PtyApp:
    def __init__(self, cmd: Sequence[str], env: Mapping[str, str], rows: int = 30, cols: int = 100) -> None:
        self.pid, self.fd = pty.fork()
        if self.pid == 0:  # child
            os.execvpe(cmd[0], list(cmd), dict(env))
        fcntl.ioctl(self.fd, termios.TIOCSWINSZ, struct.pack("HHHH", rows, cols, 0, 0))
        self.buf = bytearray()

    def read(self, seconds: float, marker: bytes = b"", since: int = 0, quiet: float | None = None,
             settle_max: float = 6.0) -> bool:
        """Read for `seconds`, or until `marker` shows up in buf[since:]; with `quiet`, go on
        after the marker until the output has paused that long (at most `settle_max` more
        seconds: a blinking cursor never pauses). True if the marker was seen."""
        deadline = time.monotonic() + seconds
        last = time.monotonic()
        found_at: float | None = None
        while time.monotonic() < deadline:
            r, _, _ = select.select([self.fd], [], [], 0.05)
            if self.fd in r:
                try:
                    data = os.read(self.fd, 65536)
                except OSError:  # the child closed the terminal
                    break
                self.buf += data
                last = time.monotonic()
            now = time.monotonic()
            if found_at is None and marker and marker in self.buf[since:]:
                found_at = now
            if found_at is not None and (quiet is None or now - last >= quiet or now - found_at >= settle_max):
                return True
        return found_at is not None

    def write(self, data: bytes) -> None:
        os.write(self.fd, data)

    def close(self) -> None:
        """ctrl+q, a moment to quit, then make sure the child is gone."""
        reaped = False
        try:
            self.write(b"\x11")
            end = time.monotonic() + 3
            while time.monotonic() < end and not reaped:
                reaped = os.waitpid(self.pid, os.WNOHANG)[0] != 0
                self.read(0.05)
        except OSError:  # the child is gone already
            pass
        finally:
            os.close(self.fd)
        if not reaped:
            try:
                os.kill(self.pid, 9)
                os.waitpid(self.pid, 0)
            except OSError:
                pass
