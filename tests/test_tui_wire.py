"""What the TUI sends to the terminal when nobody types: over SSH every repaint is traffic.

Runs the installed `aigc-chat` in a real pseudo-terminal. The streaming side (bytes per
token while a reply streams) is a figure, not a test: `bench/bench_tui.py traffic`.
"""

from __future__ import annotations

from pathlib import Path

import pytest


def _idle_bytes(cli: str, config: Path, seconds: float) -> int:
    """Bytes the TUI writes to a real pseudo-terminal while nobody types (after it settled)."""
    import fcntl
    import os
    import pty
    import select
    import struct
    import termios
    import time

    env = dict(os.environ, TERM="xterm-256color", AIGC_CHAT_CONFIG=str(config))
    pid, fd = pty.fork()
    if pid == 0:  # child: no model to load, so nothing but the screen itself can write
        os.execvpe(cli, [cli, "--model", str(config.parent / "missing.gguf")], env)
    fcntl.ioctl(fd, termios.TIOCSWINSZ, struct.pack("HHHH", 24, 80, 0, 0))

    def drain(until: float, marker: bytes = b"", quiet: float = 0.0, settle_max: float = 6.0) -> tuple[int, bytes]:
        """Read until the deadline, or until `marker` was seen (then until `quiet` seconds
        pass with no output, or settle_max seconds: a blinking cursor is never quiet)."""
        n, seen, last, found, found_at = 0, b"", time.monotonic(), False, 0.0
        while time.monotonic() < until:
            r, _, _ = select.select([fd], [], [], 0.05)
            if fd in r:
                try:
                    data = os.read(fd, 65536)
                except OSError:
                    break
                n += len(data)
                seen = (seen + data)[-4096:]
                last = time.monotonic()
            if not found and marker and marker in seen:
                found, found_at = True, time.monotonic()
            now = time.monotonic()
            if found and (now - last >= quiet or now - found_at >= settle_max):
                break
        return n, seen

    try:
        # start-up, first paint, the load failure (a toast for 8 s and a status "load
        # failed"); then let the paints settle (under load they trail for a while)
        n, _ = drain(time.monotonic() + 60, marker=b"load failed", quiet=1.0)
        assert n > 0
        return drain(time.monotonic() + seconds)[0]
    finally:
        os.write(fd, b"\x11")  # ctrl+q
        drain(time.monotonic() + 1.0)
        os.close(fd)
        try:
            os.kill(pid, 9)
        except ProcessLookupError:
            pass
        os.waitpid(pid, 0)


@pytest.mark.parametrize("blink", [False, True])
def test_an_idle_screen_sends_nothing_over_the_wire(cli: str, isolated_dirs: dict[str, Path], blink: bool) -> None:
    """Over SSH every repaint is traffic: with the cursor not blinking (the default) an
    idle TUI writes nothing at all; `[tui] cursor_blink = true` shows the check can fail."""
    config = isolated_dirs["config"]
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f"[tui]\ncursor_blink = {str(blink).lower()}\n")
    idle = _idle_bytes(cli, config, 2.0)
    if blink:
        assert idle > 100, idle
    else:
        assert idle == 0, idle
