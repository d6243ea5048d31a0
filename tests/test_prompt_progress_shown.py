"""Prompt-reading progress where the user looks: in the TUI's reply block, and on one-shot's
stderr when that is a terminal (never on a pipe, never on stdout). Real llama.cpp, a tiny
GGUF and a prompt of ~1,900 tokens, so reading takes several batches."""

from __future__ import annotations

import os
import pty
import select
import subprocess
import sys
from pathlib import Path

import pytest

from aigc_chat.history_store import HistoryStore
from aigc_chat.tui.app import ChatApp
from aigc_chat.tui.chat_view import AssistantMessage
from tests.test_prompt_reading import LONG
from tests.tiny_gguf import CHATML, write_tiny_gguf
from tests.tui_driver import SIZE, make_config, wait_idle

CLI = str(Path(sys.executable).parent / "aigc-chat")


@pytest.fixture(scope="module")
def tiny(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_tiny_gguf(tmp_path_factory.mktemp("m") / "tiny.gguf", "llama", seed=3,
                           context_length=4096, extra={"tokenizer.chat_template": CHATML})


@pytest.mark.asyncio
async def test_the_reply_block_shows_reading_progress_then_the_reply(tiny: Path, tmp_path: Path,
                                                                    monkeypatch: pytest.MonkeyPatch) -> None:
    from aigc_chat.loader import load_backend

    shown: list[str] = []
    real = AssistantMessage.show_reading

    def record(self: AssistantMessage, text: str) -> None:
        shown.append(text)
        real(self, text)

    monkeypatch.setattr(AssistantMessage, "show_reading", record)
    cfg = make_config(tmp_path, max_tokens=3)
    cfg.model = str(tiny)
    backend = load_backend(cfg)
    try:
        app = ChatApp(cfg, store=HistoryStore(), backend=backend)
        async with app.run_test(size=SIZE) as pilot:
            await wait_idle(pilot, app)
            prompt = app.query_one("#prompt")
            prompt.focus()
            prompt.load_text(LONG)
            await pilot.press("enter")
            await wait_idle(pilot, app)
            reply = app.chat_screen.chat.last("assistant")
            assert isinstance(reply, AssistantMessage)
            stats = str(reply.query_one(".stats").render())
    finally:
        backend.close()
    assert shown and shown[0].startswith("reading 0 / ")
    assert any("tok/s" in s for s in shown)
    assert "reading" not in stats and "prompt tok" in stats and "cached" in stats  # the stats replace it


def test_one_shot_shows_progress_on_a_terminal_stderr_only(tiny: Path, tmp_path: Path) -> None:
    (tmp_path / "long.txt").write_text(LONG)
    env = {**os.environ, "AIGC_CHAT_CONFIG": str(tmp_path / "none.toml")}
    cmd = [CLI, "--model", str(tiny), "-f", str(tmp_path / "long.txt"), "-p", "sum up", "-n", "2", "--no-history"]
    master, slave = pty.openpty()
    proc = subprocess.Popen(cmd, stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=slave, env=env)
    os.close(slave)
    err = bytearray()
    while True:
        ready, _, _ = select.select([master], [], [], 30)
        if not ready:
            break
        try:
            chunk = os.read(master, 65536)
        except OSError:  # the child closed the terminal
            break
        if not chunk:
            break
        err += chunk
    out = proc.stdout.read() if proc.stdout else b""
    assert proc.wait(timeout=60) == 0
    os.close(master)
    text = err.decode("utf-8", "replace")
    assert "reading 0 / " in text and "tok/s" in text
    assert text.rstrip("\r\n").endswith("\x1b[2K")  # erased before the answer: nothing left on the line
    assert b"reading" not in out
    piped = subprocess.run(cmd, stdin=subprocess.DEVNULL, capture_output=True, env=env, timeout=60)
    assert piped.returncode == 0 and b"reading" not in piped.stderr and b"reading" not in piped.stdout
