"""End to end: the installed `aigc-chat` in a real terminal (tmux), on the real default model.

Send a message, see the reply, quit, start again, find the conversation in the history pane,
continue it, quit, and reopen it with --continue.
"""

from __future__ import annotations

import os
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from aigc_chat.history import HistoryStore

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")]


class Tmux:
    def __init__(self, socket: str, env: dict[str, str]) -> None:
        self.socket = socket
        self.env = env

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True,
                              check=check, timeout=30, env=self.env)

    def start(self, command: list[str]) -> None:
        env_args = [f"{k}={v}" for k, v in self.env.items() if k.startswith(("AIGC_CHAT_", "XDG_"))]
        self.run("new-session", "-d", "-x", "100", "-y", "30", "-s", "t",
                 "env", *env_args, "TERM=xterm-256color", *command)

    def keys(self, *keys: str) -> None:
        self.run("send-keys", "-t", "t", *keys)

    def text(self, *keys: str) -> None:
        self.run("send-keys", "-t", "t", "-l", *keys)

    def screen(self) -> str:
        out = self.run("capture-pane", "-p", "-t", "t", check=False)
        return out.stdout

    def alive(self) -> bool:
        return self.run("has-session", "-t", "t", check=False).returncode == 0

    def wait(self, predicate, timeout: float = 120, what: str = "") -> str:
        deadline = time.monotonic() + timeout
        screen = ""
        while time.monotonic() < deadline:
            screen = self.screen()
            if predicate(screen):
                return screen
            time.sleep(0.2)
        raise AssertionError(f"timed out waiting for {what}; screen:\n{screen}")

    def wait_exit(self, timeout: float = 20) -> None:
        deadline = time.monotonic() + timeout
        while self.alive():
            if time.monotonic() > deadline:
                raise AssertionError(f"aigc-chat did not exit; screen:\n{self.screen()}")
            time.sleep(0.1)


def status_line(screen: str) -> str:
    lines = [ln for ln in screen.splitlines() if "│ ctx" in ln]
    return lines[-1] if lines else ""


def idle(screen: str) -> bool:
    return status_line(screen).rstrip().endswith("idle")


@pytest.fixture
def tmux(gemma_path: Path, isolated_dirs: dict[str, Path]):
    cfg = isolated_dirs["config"]
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text("[generation]\ntemperature = 0.0\nmax_tokens = 12\nseed = 3\n")
    socket = f"aigc-e2e-{os.getpid()}"
    t = Tmux(socket, dict(os.environ))
    yield t
    t.run("kill-server", check=False)


def test_chat_quit_restart_find_and_continue(tmux: Tmux, cli: str) -> None:
    tmux.start([cli])
    tmux.wait(idle, 120, "the model to load")
    tmux.text("Hello there, who are you?")
    tmux.keys("Enter")
    screen = tmux.wait(lambda s: "tokens ·" in s and idle(s), 120, "the reply")
    assert "Hello there, who are you?" in screen
    assert "Assistant" in screen and "\x1b" not in screen
    tmux.keys("C-q")
    tmux.wait_exit()

    store = HistoryStore()
    convs = store.list_conversations()
    assert len(convs) == 1 and convs[0].title == "Hello there, who are you?"
    conv = store.get_conversation(convs[0].id)
    reply = conv.messages[1].content
    assert conv.messages[1].finish_reason in ("stop", "length") and reply
    store.close()

    # start again: the conversation is in the history pane; find it and continue it
    tmux.start([cli])
    screen = tmux.wait(idle, 120, "the second start")
    assert "Hello there, who are you?" in screen
    tmux.keys("C-f")
    tmux.text("Hello")
    time.sleep(0.5)
    tmux.keys("Enter")  # run the search, focus the results
    time.sleep(0.3)
    tmux.keys("Enter")  # open the conversation
    tmux.wait(lambda s: "Assistant" in s, 20, "the conversation to open")
    tmux.text("Say it again.")
    tmux.keys("Enter")
    screen = tmux.wait(lambda s: "Say it again." in s and s.count("tokens ·") >= 2 and idle(s), 120, "the second reply")
    tmux.keys("C-q")
    tmux.wait_exit()

    store = HistoryStore()
    conv = store.get_conversation(convs[0].id)
    assert [m.role for m in conv.messages] == ["user", "assistant", "user", "assistant"]
    assert len(store.list_conversations()) == 1
    store.close()

    # --continue opens it directly
    tmux.start([cli, "--continue"])
    screen = tmux.wait(lambda s: "Say it again." in s and idle(s), 120, "--continue")
    assert "Hello there, who are you?" in screen or "Say it again." in screen
    tmux.keys("C-q")
    tmux.wait_exit()
