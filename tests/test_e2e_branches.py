"""End to end: branches in the installed `aigc-chat`, in a real terminal (tmux), on the real
default model. Regenerate, see ‹ 2/2 ›, move back with alt+← from the message box and with
[ on a focused message, quit; the history remembers the branch left on, and draws the tree."""

from __future__ import annotations

import shutil

import pytest

from aigc_chat.history_store import HistoryStore
from tests.conftest import run_cli
from tests.tmux_driver import Tmux, idle, status_line

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")]


def test_regenerate_and_move_between_replies_in_a_real_terminal(tmux: Tmux, cli: str) -> None:
    tmux.start([cli, "--max-tokens", "16", "--temperature", "1.0"])
    tmux.wait(idle, 120, "the model to load")
    tmux.text("Name a colour.")
    tmux.keys("Enter")
    tmux.wait(lambda s: "tokens ·" in s and idle(s), 120, "the reply")
    tmux.keys("C-r")
    screen = tmux.wait(lambda s: "‹ 2/2 ›" in s and idle(s), 120, "the regenerated reply")
    assert "⑂ 2 branches" in status_line(screen) and "\x1b" not in screen
    tmux.keys("M-Left")  # from the message box: the last message with alternatives
    tmux.wait(lambda s: "‹ 1/2 ›" in s, 20, "the first reply again (alt+left)")
    tmux.keys("M-Right")
    tmux.wait(lambda s: "‹ 2/2 ›" in s, 20, "the second reply again (alt+right)")
    tmux.keys("BTab")  # focus goes back from the message box to the last message: the reply
    tmux.wait(lambda s: "Prev" in s, 20, "the focused reply's keys in the footer")
    tmux.text("[")
    tmux.wait(lambda s: "‹ 1/2 ›" in s, 20, "the first reply again ([ on the focused reply)")
    tmux.keys("C-q")
    tmux.wait_exit()

    with HistoryStore(readonly=True) as s:
        cid = s.latest_conversation_id()
        assert cid is not None
        conv = s.get_conversation(cid)
        first, second = [m for m in conv.all_messages if m.role == "assistant"]
        assert conv.messages[-1].id == first.id  # the branch left on is the one shown next time
        assert first.parent_id == second.parent_id == conv.messages[0].id
    tree = run_cli(cli, "history", "show", str(cid), "--tree")
    assert tree.returncode == 0 and f"├─● [assistant #{first.id}]" in tree.stdout
    assert f"└─○ [assistant #{second.id}]" in tree.stdout

    tmux.start([cli, "--continue"])  # reopened on that branch, the marker still there
    tmux.wait(lambda s: "‹ 1/2 ›" in s and idle(s), 120, "--continue on the branch left on")
    tmux.keys("C-q")
    tmux.wait_exit()
