"""Two processes on one history, in a real terminal: the installed `aigc-chat` in tmux on the
paced plugin backend (tests/paced_backend.py), and another process writing beside it."""

from __future__ import annotations

import re
import shutil
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

from aigc_chat.history_store import HistoryStore
from aigc_chat.reply_owner import process_alive
from tests.conftest import run_cli
from tests.paced_backend import install, reply_text
from tests.tmux_driver import Tmux, idle, tmux_server
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


@pytest.fixture
def setup(isolated_dirs: dict[str, Path], tmp_path: Path, cli: str) -> Iterator[tuple[Tmux, list[str], str]]:
    pythonpath = install(tmp_path)
    with tmux_server("aigc-reattach", isolated_dirs["config"],
                     'backend = "paced"\n[paced]\nwords = 5\ndelay_ms = 10\n') as t:
        yield t, ["env", f"PYTHONPATH={pythonpath}", cli], pythonpath


def test_the_history_pane_shows_a_one_shot_conversation_without_a_restart(
        setup: tuple[Tmux, list[str], str], cli: str) -> None:
    tmux, command, pythonpath = setup
    tmux.start(command)
    tmux.wait(lambda s: idle(s) and "0 conversations" in s, 60, "the app, its empty history listed")
    r = run_cli(cli, "--prompt", "Asked from elsewhere", env={"PYTHONPATH": pythonpath})
    assert r.returncode == 0 and r.stdout == "w0 w1 w2 w3 w4\n", r.stderr
    tmux.wait(lambda s: "Asked from elsewhere" in s and "1 conversation" in s, 15, "the pane to list it")


def newest_word(screen: str) -> int:
    """The highest `wN` of the paced reply on screen (-1: none)."""
    return max((int(n) for n in re.findall(r"\bw(\d+)\b", screen)), default=-1)


def capture(tmux: Tmux, session: str) -> str:
    return tmux.run("capture-pane", "-p", "-t", session, check=False).stdout


def wait_screen(tmux: Tmux, session: str, predicate: Callable[[str], bool], timeout: float, what: str) -> str:
    last = [""]

    def holds() -> bool:
        last[0] = capture(tmux, session)
        return predicate(last[0])

    wait_for(holds, timeout, what, interval=0.2, detail=lambda: f"screen:\n{last[0]}")
    return last[0]


def start_writer(tmux: Tmux, command: list[str], pidfile: Path) -> int:
    """The first TUI, in session "t", streaming a long paced reply; returns its process id."""
    tmux.start(command)
    tmux.wait(idle, 60, "the paced backend to load")
    pid = int(pidfile.read_text())
    tmux.text("Count for me")
    tmux.keys("Enter")
    tmux.wait(lambda s: " w3 " in s, 30, "the reply to be streaming")
    return pid


def long_reply(isolated_dirs: dict[str, Path], pidfile: Path, words: int) -> None:
    isolated_dirs["config"].write_text(
        f'backend = "paced"\n[paced]\nwords = {words}\ndelay_ms = 50\npidfile = "{pidfile}"\n')


def test_reattach_after_a_hang_up_follows_the_reply_and_esc_stops_it(
        setup: tuple[Tmux, list[str], str], isolated_dirs: dict[str, Path], tmp_path: Path) -> None:
    tmux, command, _ = setup
    pidfile = tmp_path / "writer.pid"
    long_reply(isolated_dirs, pidfile, 1000)
    pid = start_writer(tmux, command, pidfile)
    # another session keeps the server up (a server losing its last session exits, and a
    # new session started meanwhile can meet the dying one)
    tmux.run("new-session", "-d", "-s", "keep", "sleep", "600")
    tmux.run("kill-session", "-t", "t")  # the terminal goes: the reply goes on without it

    tmux.start([*command, "--continue"])
    screen = tmux.wait(lambda s: f"writing in process {pid}" in s and newest_word(s) > 3, 30,
                       "the second window to follow the reply")
    seen = newest_word(screen)
    tmux.wait(lambda s: newest_word(s) > seen, 5, "the followed reply to grow")
    tmux.keys("Escape")
    tmux.wait(lambda s: "writing in process" not in s and "asking process" not in s and idle(s), 20,
              "the writer to stop and the conversation to show as stored")
    wait_for(lambda: not process_alive(pid), 30, "the writer to exit")
    store = HistoryStore()
    try:
        conv = store.get_conversation(store.list_conversations()[0].id)
        reply = conv.messages[-1]
        assert reply.finish_reason == "cancelled" and reply.content.startswith("w0 w1 w2")
        assert reply.content != reply_text(1000) and "writer" not in reply.meta
    finally:
        store.close()


def test_two_windows_on_one_conversation_only_the_owner_writes(
        setup: tuple[Tmux, list[str], str], isolated_dirs: dict[str, Path], tmp_path: Path) -> None:
    tmux, command, _ = setup
    pidfile = tmp_path / "writer.pid"
    long_reply(isolated_dirs, pidfile, 120)
    pid = start_writer(tmux, command, pidfile)
    env_args = [f"{k}={v}" for k, v in tmux.env.items() if k.startswith(("AIGC_CHAT_", "XDG_"))]
    tmux.run("new-session", "-d", "-x", "100", "-y", "30", "-s", "u", "env", *env_args, "TERM=xterm-256color",
             *command, "--continue")
    wait_screen(tmux, "u", lambda s: f"writing in process {pid}" in s, 30, "the second window to follow")
    tmux.run("send-keys", "-t", "u", "-l", "Me too")
    tmux.run("send-keys", "-t", "u", "Enter")
    wait_screen(tmux, "u", lambda s: "is writing this conversation" in s, 10, "the second window to refuse")
    # the owner's reply ends: both windows show it whole, the second as a normal conversation
    tmux.wait(lambda s: idle(s) and "w119" in s, 30, "the owner's reply to end")
    screen = wait_screen(tmux, "u", lambda s: idle(s) and "writing in process" not in s and "w119" in s, 20,
                         "the second window to show the finished reply")
    assert "Me too" in screen  # what was typed there is kept in its message box, not sent
    store = HistoryStore()
    try:
        conv = store.get_conversation(store.list_conversations()[0].id)
        assert [m.role for m in conv.messages] == ["user", "assistant"]
        assert conv.messages[1].finish_reason == "stop" and conv.messages[1].content == reply_text(120)
    finally:
        store.close()
