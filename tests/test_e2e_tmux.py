"""End to end: the installed `aigc-chat` in a real terminal (tmux), on the real default model.

Send a message, see the reply, quit, start again, find the conversation in the history pane,
continue it, quit, and reopen it with --continue.
"""

from __future__ import annotations

import re
import shutil

import pytest

from aigc_chat.history_store import HistoryStore
from tests.tmux_driver import Tmux, idle

pytestmark = [pytest.mark.slow, pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")]


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
    # the pane is filled after the first paint: wait for the conversation in it, not just idle
    tmux.wait(lambda s: idle(s) and "Hello there, who are" in s, 120, "the second start, the conversation listed")
    tmux.keys("C-f")
    tmux.text("Hello")
    tmux.wait(lambda s: re.search(r"\b[1-9]\d* match(es)?\b", s) is not None, 20, "the search results")
    tmux.keys("Enter")  # run the search, focus the results
    tmux.wait(lambda s: "r Rename" in s, 20, "the results to take the keys (their keys in the footer)")
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
