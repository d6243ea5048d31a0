"""The terminal goes away mid-reply, in a real terminal: the installed `aigc-chat` in tmux,
on the paced plugin backend (tests/paced_backend.py: a slow, always-identical reply), and the
tmux server killed under it (as when an SSH link drops: SIGHUP, then a dead pty).

With `[tui] on_hangup = "finish"` (the default) the reply goes on without the terminal to its
own end, a question queued behind it is answered too, both are saved, and the process exits;
`--continue` then shows the whole reply. With "stop" the reply ends at once, saved as it was."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from aigc_chat.history import StoredMessage
from aigc_chat.history_store import HistoryStore
from tests.paced_backend import install, reply_text
from tests.tmux_driver import Tmux, idle, tmux_server
from tests.waiting import wait_for

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")

WORDS = 80


def _config(pidfile: Path, on_hangup: str) -> str:
    return (f'backend = "paced"\n[paced]\nwords = {WORDS}\ndelay_ms = 50\npidfile = "{pidfile}"\n'
            f'[tui]\non_hangup = "{on_hangup}"\n')


@pytest.fixture
def setup(isolated_dirs: dict[str, Path], tmp_path: Path, cli: str) -> Iterator[tuple[Tmux, list[str], Path]]:
    pythonpath = install(tmp_path)
    pidfile = tmp_path / "app.pid"
    with tmux_server("aigc-hangup", isolated_dirs["config"], "") as t:
        yield t, ["env", f"PYTHONPATH={pythonpath}", cli], pidfile


def messages() -> list[StoredMessage]:
    store = HistoryStore()
    try:
        convs = store.list_conversations()
        return list(store.get_conversation(convs[0].id).messages) if convs else []
    finally:
        store.close()


def gone(pid: int) -> bool:
    """The process has exited (a zombie nobody reaps counts: it runs nothing)."""
    try:
        return "\nState:\tZ" in Path(f"/proc/{pid}/status").read_text()
    except OSError:
        return True


def start_reply_then_hang_up(tmux: Tmux, command: list[str], queue: str = "") -> None:
    """Start the app, send a question, optionally queue another, and kill the tmux server
    (the app gets SIGHUP and its pty goes) while the reply streams."""
    tmux.start(command)
    tmux.wait(idle, 60, "the paced backend to load")
    tmux.text("Count for me")
    tmux.keys("Enter")
    tmux.wait(lambda s: " w3 " in s, 30, "the reply to be streaming")
    if queue:
        tmux.text(queue)
        tmux.keys("Enter")
        tmux.wait(lambda s: "queued" in s, 10, "the question to be queued")
    tmux.run("kill-server")  # the terminal goes away mid-reply


def test_a_reply_is_finished_and_saved_after_the_terminal_goes(setup: tuple[Tmux, list[str], Path],
                                                                isolated_dirs: dict[str, Path]) -> None:
    tmux, command, pidfile = setup
    isolated_dirs["config"].write_text(_config(pidfile, "finish"))
    start_reply_then_hang_up(tmux, command, queue="And again")
    pid = int(pidfile.read_text())
    wait_for(lambda: gone(pid), 60, "the process to finish the replies and exit")
    msgs = messages()
    assert [m.role for m in msgs] == ["user", "assistant", "user", "assistant"]
    assert msgs[2].content == "And again"
    for reply in (msgs[1], msgs[3]):
        assert reply.finish_reason == "stop" and reply.content == reply_text(WORDS)

    # the whole reply is there when the conversation is continued
    tmux.start([*command, "--continue"])
    screen = tmux.wait(lambda s: idle(s) and f"w{WORDS - 1}" in s, 60, "the conversation to open")
    assert "And again" in screen


def test_on_hangup_stop_ends_the_reply_at_once(setup: tuple[Tmux, list[str], Path],
                                               isolated_dirs: dict[str, Path]) -> None:
    tmux, command, pidfile = setup
    isolated_dirs["config"].write_text(_config(pidfile, "stop"))
    start_reply_then_hang_up(tmux, command)
    pid = int(pidfile.read_text())
    wait_for(lambda: gone(pid), 30, "the process to exit")
    msgs = messages()
    assert [m.role for m in msgs] == ["user", "assistant"]
    assert msgs[1].finish_reason == "cancelled"
    assert msgs[1].content.startswith("w0 w1 w2 w3") and msgs[1].content != reply_text(WORDS)
