"""End to end: `/compact` in the installed `aigc-chat`, in a real terminal (tmux), on real
llama.cpp with a chain GGUF (every reply, the summary included, is "Ada likes green."). The
summary shows as a summary with what it covers, alt+← goes back to the original branch, and
after quitting the history draws both."""

from __future__ import annotations

import shutil
from pathlib import Path

import pytest

from aigc_chat.history_store import HistoryStore
from tests.conftest import run_cli
from tests.tiny_gguf import write_chain_gguf
from tests.tmux_driver import idle, tmux_server

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")

WORDS = ["▁Ada", "▁likes", "▁green."]


def test_compact_in_a_real_terminal(cli: str, isolated_dirs: dict[str, Path], tmp_path: Path) -> None:
    chain = write_chain_gguf(tmp_path / "chain.gguf", WORDS, extra=WORDS, context_length=2048)
    config = "[generation]\ntemperature = 0.0\nmax_tokens = 8\n[llama]\nn_ctx = 2048\n"
    with tmux_server("aigc-e2e-compact", isolated_dirs["config"], config) as tmux:
        tmux.start([cli, "--model", str(chain)])
        tmux.wait(idle, 60, "the model to load")
        for i in range(1, 4):
            tmux.text(f"question {i}")
            tmux.keys("Enter")
            tmux.wait(lambda s, i=i: f"question {i}" in s and s.count("Ada likes green.") >= 1 and idle(s),
                      60, f"reply {i}")
        tmux.text("/compact keep names")
        tmux.keys("Enter")
        screen = tmux.wait(lambda s: "Summary of messages 1-2" in s and idle(s), 60, "the summary")
        assert "‹ 2/2 ›" in screen and "question 1" not in screen.split("Summary of messages")[1]
        assert "\x1b" not in screen
        tmux.keys("M-Left")
        tmux.wait(lambda s: "Summary of messages" not in s and "‹ 1/2 ›" in s, 20, "the original branch")
        tmux.keys("M-Right")
        tmux.wait(lambda s: "Summary of messages 1-2" in s, 20, "the summary's branch again")
        tmux.keys("C-q")
        tmux.wait_exit()
    with HistoryStore(readonly=True) as s:
        cid = s.latest_conversation_id()
        assert cid is not None
        conv = s.get_conversation(cid)
    summary = conv.messages[0]
    assert summary.kind == "summary" and summary.content == "Ada likes green."
    assert summary.meta["instructions"] == "keep names" and summary.meta["range"] == [1, 2]
    tree = run_cli(cli, "history", "show", str(cid), "--tree").stdout
    assert f"└─● [summary #{summary.id}] of messages 1-2 (" in tree and "├─○ [user #" in tree
