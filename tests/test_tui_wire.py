"""What the TUI sends to the terminal when nobody types: over SSH every repaint is traffic.

Runs the installed `aigc-chat` in a real pseudo-terminal. The streaming side (bytes per
token while a reply streams) is a figure, not a test: `bench/bench_tui.py traffic`.
"""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from tests.pty_app import PtyApp


def _idle_bytes(cli: str, config: Path, seconds: float) -> int:
    """Bytes the TUI writes to a real pseudo-terminal while nobody types (after it settled)."""
    env = dict(os.environ, TERM="xterm-256color", AIGC_CHAT_CONFIG=str(config))
    # no model to load, so nothing but the screen itself can write
    app = PtyApp([cli, "--model", str(config.parent / "missing.gguf")], env, rows=24, cols=80)
    try:
        # start-up, first paint, the load failure (a toast for 8 s and a status "load
        # failed"); then let the paints settle (under load they trail for a while)
        assert app.read(60, marker=b"load failed", quiet=1.0)
        settled = len(app.buf)
        app.read(seconds)
        return len(app.buf) - settled
    finally:
        app.close()


@pytest.mark.slow  # the installed app in a real pty, watched for seconds
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
