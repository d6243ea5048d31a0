"""A finished reply is drawn from its node, the core's record (issue 23): `ReplyFinished`
names the node, and the widget reads its text, stats, finish reason and reasoning there,
holding no copies. The replies come from the scripted backend: these are UI rules, and a
fault at a chosen moment is what a real model cannot be made to produce."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aigc_chat.history_store import HistoryStore
from aigc_chat.tui import chat_screen
from aigc_chat.tui.app import ChatApp
from aigc_chat.tui.events import ReplyFinished
from tests.scripted_backend import ScriptedBackend
from tests.tui_driver import SIZE, make_config, send, wait_for, wait_idle

pytestmark = pytest.mark.asyncio


def stats_line(widget: Any) -> str:
    return str(widget.query_one(".stats").render())


async def test_a_finished_reply_is_drawn_from_its_node_not_from_the_streamed_copy(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """The core's record of the reply differs from what streamed (here the node is rewritten
    just before the screen hears the reply ended): the screen shows the record. Before, the
    event carried the result's copies and the screen showed those."""
    real = chat_screen.stream_reply

    def rewriting(post: Any, job: int, turn: Any, *args: Any, **kwargs: Any) -> None:
        def post_after_rewrite(message: Any) -> Any:
            if type(message).__name__ == "ReplyFinished":
                node = turn.reply_node
                node.content = "the record, as the core keeps it"
                node.stats["completion_tokens"] = 4242
            return post(message)

        real(post_after_rewrite, job, turn, *args, **kwargs)

    monkeypatch.setattr(chat_screen, "stream_reply", rewriting)
    app = ChatApp(make_config(tmp_path), store=HistoryStore(), backend=ScriptedBackend(["what ", "streamed"]))
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        reply = await send(pilot, app, "question")
        node = app.conversation.path()[-1]
        assert reply.node is node and node.content == "the record, as the core keeps it"
        assert reply.text == node.content and "the record, as the core keeps it" in reply.shown_markdown
        assert "streamed" not in reply.shown_markdown
        assert "4242 tokens" in stats_line(reply) and reply.finish_reason == node.finish_reason == "stop"
        assert reply.stats is node.stats  # read, not copied


async def test_the_event_names_the_node_and_carries_no_copy_of_it() -> None:
    fields = set(ReplyFinished.__dataclass_fields__)  # type: ignore[attr-defined]
    assert fields == {"job", "node", "warnings"}


async def test_a_first_answer_that_fails_before_a_word_stays_on_screen_marked(tmp_path: Path) -> None:
    """The core takes a reply that failed before saying anything out of the tree; the screen
    keeps the widget of a first answer, marked failed, with the reason its node holds."""
    backend = ScriptedBackend(["never said"], fail_after=0)
    app = ChatApp(make_config(tmp_path), store=HistoryStore(), backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        reply = await send(pilot, app, "question")
        await wait_for(pilot, lambda: any("engine exploded" in n.message for n in app._notifications), 10,
                       "the failure notice")
        assert reply.node is not None and not app.conversation.tree.contains(reply.node)
        assert reply.is_attached and reply.has_class("-error") and reply.finish_reason == "error"
        assert "failed" in stats_line(reply) and "engine exploded" in stats_line(reply)
        assert [n.role for n in app.conversation.path()] == ["user"]


class FailsToStart(ScriptedBackend):
    """An engine that cannot start a reply (the prompt cannot be counted)."""

    def count_tokens(self, messages: Any) -> int:
        if self.fail_after == -1:
            raise RuntimeError("tokenizer gone")
        return super().count_tokens(messages)


async def test_a_reply_that_cannot_start_is_drawn_from_its_ended_node(tmp_path: Path) -> None:
    """ReplyFailed (the turn could not start): the widget reads the node the core ended as
    "error", and the question stays answered by nothing."""
    backend = FailsToStart(["fine"])
    app = ChatApp(make_config(tmp_path), store=HistoryStore(), backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        backend.fail_after = -1
        reply = await send(pilot, app, "question")
        await wait_for(pilot, lambda: any("tokenizer gone" in n.message for n in app._notifications), 10,
                       "the failure notice")
        assert reply.has_class("-error") and reply.finish_reason == "error"
        assert "tokenizer gone" in stats_line(reply)
        backend.fail_after = None
        again = await send(pilot, app, "again")
        assert again.text == "fine" and again.finish_reason == "stop"
