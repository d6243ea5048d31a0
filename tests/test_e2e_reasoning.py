"""A reasoning model in a real terminal: the installed `aigc-chat` in tmux, on real llama.cpp
with a tiny GGUF whose greedy reply is a think block (markers split across tokens) and then
an answer. The thinking folds to one line, `t` opens it, and the history keeps it apart."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from aigc_chat.history_store import HistoryStore
from tests.tiny_gguf import write_chain_gguf
from tests.tmux_driver import Tmux, idle, tmux_server

CHAIN = ["<th", "ink>", "Weigh", "ing", " pelicans", "</", "think>\n\n", "They", " fish", " with", " pouches."]


@pytest.fixture
def tmux(isolated_dirs: dict[str, Path]) -> Iterator[Tmux]:
    if shutil.which("tmux") is None:
        pytest.skip("needs tmux")
    with tmux_server("aigc-reason", isolated_dirs["config"], "[generation]\ntemperature = 0.0\nmax_tokens = 40\n") as t:
        yield t


def test_thinking_folds_opens_and_stays_out_of_the_answer(tmux: Tmux, cli: str, tmp_path: Path) -> None:
    model = write_chain_gguf(tmp_path / "thinker.gguf", CHAIN, extra=CHAIN)
    tmux.start([cli, "--model", str(model)])
    tmux.wait(idle, 120, "the model to load")
    tmux.text("How do pelicans fish?")
    tmux.keys("Enter")
    screen = tmux.wait(lambda s: "They fish with pouches." in s and idle(s), 60, "the answer")
    assert "Thought for" in screen and "Weighing pelicans" not in screen  # folded to one line
    tmux.keys("BTab")  # from the message box back to the last message: the reply
    tmux.wait(lambda s: "t Show / hide reasoning" in s, 10, "the reply to take the focus (its t key in the footer)")
    tmux.keys("t")
    tmux.wait(lambda s: "Weighing pelicans" in s, 10, "t to open the reasoning")
    tmux.keys("C-q")
    tmux.wait_exit()
    with HistoryStore(readonly=True) as s:
        reply = s.get_conversation(s.latest_conversation_id()).messages[-1]
    assert reply.content == "They fish with pouches." and reply.meta["reasoning"] == "Weighing pelicans"
