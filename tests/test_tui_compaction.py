"""Compaction in the TUI, under the pilot: `/compact` with instructions, F7, refused while a
reply streams, Esc mid-summary (nothing stored), and `on_overflow = "compact"` as a visible
step before the message is sent. The engine is scripted (a gate holds the summary open so Esc
can land mid-way); the store is real SQLite."""

from __future__ import annotations

import threading
from collections.abc import Iterator
from pathlib import Path

import pytest

from aigc_chat.backends.base import EngineEnd, EngineStart
from aigc_chat.history_store import HistoryStore
from aigc_chat.tui.app import ChatApp
from aigc_chat.tui.chat_view import ChatMessage, SummaryMessage, UserMessage
from aigc_chat.tui.compact_step import CompactStepLine
from tests.scripted_backend import ScriptedBackend
from tests.tui_driver import SIZE, make_config, send, type_text, wait_for, wait_idle

pytestmark = [pytest.mark.asyncio]


class GatedBackend(ScriptedBackend):
    """Scripted pieces; while `gate` is clear, it holds after the first piece (checking the
    cancel event, as an engine does between steps)."""

    def __init__(self, pieces: list[str], **kw: object) -> None:
        super().__init__(pieces, **kw)  # type: ignore[arg-type]
        self.gate = threading.Event()
        self.gate.set()
        self.holding = threading.Event()

    def _generate(self, messages, params, cancel) -> Iterator[object]:  # type: ignore[no-untyped-def]
        self.seen.append(list(messages))
        yield EngineStart(self.count_tokens(messages))
        for i, piece in enumerate(self.pieces):
            yield piece
            if i == 0:
                while not self.gate.is_set():
                    self.holding.set()
                    if cancel.wait(0.01):
                        return
        yield EngineEnd("stop")


def header(widget: ChatMessage) -> str:
    return str(widget.query_one(".role").render())


def notes(app: ChatApp) -> list[str]:
    return [n.message for n in app._notifications]


async def test_compact_with_instructions_then_back_to_the_original(tmp_path: Path) -> None:
    backend = GatedBackend(["answer"])
    app = ChatApp(make_config(tmp_path), store=HistoryStore(), backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        for i in range(1, 4):
            await send(pilot, app, f"question {i}")
        backend.pieces = ["Ada ", "likes green."]
        app.chat_screen.prompt.load_text("")
        await type_text(pilot, "/compact keep names")
        await pilot.press("enter")
        chat = app.chat_screen.chat
        await wait_for(pilot, lambda: any(isinstance(w, SummaryMessage) for w in chat.messages()), 20, "the summary")
        await wait_idle(pilot, app)
        assert "keep names" in backend.seen[-1][0].content
        widgets = chat.messages()
        assert isinstance(widgets[0], SummaryMessage) and widgets[0].text == "Ada likes green."
        assert header(widgets[0]).startswith("Summary of messages 1-2 (") and "‹ 2/2 ›" in header(widgets[0])
        assert [w.text for w in widgets[1:]] == ["question 2", "answer", "question 3", "answer"]
        assert not chat.query(CompactStepLine)  # the step is gone once done
        assert any(n.startswith("compacted: messages 1-2 summarised") for n in notes(app))
        # alt+←: the original branch, as it was; alt+→: the summary's again
        app.chat_screen.prompt.focus()
        await pilot.press("alt+left")
        await wait_for(pilot, lambda: isinstance(chat.messages()[0], UserMessage), 10, "the original branch")
        assert [w.text for w in chat.messages()][:2] == ["question 1", "answer"] and len(chat.messages()) == 6
        await pilot.press("alt+right")
        await wait_for(pilot, lambda: isinstance(chat.messages()[0], SummaryMessage), 10, "the summary's branch")
        # F7 does the same, without instructions: a compaction of the compaction
        await send(pilot, app, "question 4")
        backend.pieces = ["second summary"]
        await pilot.press("f7")
        await wait_for(pilot, lambda: chat.messages()[0].text == "second summary", 20, "the second summary")
        cid = app.conversation.wait_for_id()
    with HistoryStore(readonly=True) as s:
        stored = s.get_conversation(cid)
    roots = [m for m in stored.all_messages if m.parent_id is None]
    assert [(m.role, m.kind) for m in roots] == [("user", "text"), ("system", "summary"), ("system", "summary")]
    assert stored.messages[0].id == roots[2].id and roots[2].meta["compacts"] == roots[1].id


async def test_refused_while_streaming_and_esc_mid_summary_leaves_nothing(tmp_path: Path) -> None:
    backend = GatedBackend(["answer", " more"])
    app = ChatApp(make_config(tmp_path), store=HistoryStore(), backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        for i in range(1, 4):
            await send(pilot, app, f"question {i}")
        screen = app.chat_screen
        # a reply streams (held open): /compact is refused with one line
        backend.gate.clear()
        backend.holding.clear()
        screen.prompt.load_text("question 4")
        await pilot.press("enter")
        await wait_for(pilot, backend.holding.is_set, 10, "the reply to stream")
        screen.prompt.load_text("/compact")
        await pilot.press("enter")
        await wait_for(pilot, lambda: any("a reply is streaming" in n for n in notes(app)), 10, "the refusal")
        backend.gate.set()
        await wait_idle(pilot, app)
        # Esc while the summary streams: nothing stored, the chat as it was
        before = [w.text for w in screen.chat.messages()]
        backend.gate.clear()
        backend.holding.clear()
        await pilot.press("f7")
        await wait_for(pilot, lambda: bool(screen.chat.query(CompactStepLine)), 10, "the visible step")
        await wait_for(pilot, backend.holding.is_set, 10, "the summary to stream")
        assert screen.chat_state.phase == "compacting"
        await pilot.press("ctrl+n")  # the path must not change under the summary
        await wait_for(pilot, lambda: sum("wait for the reply to end" in n for n in notes(app)) >= 1, 10, "refusal")
        assert [w.text for w in screen.chat.messages()] == before and app.conversation.path()
        await pilot.press("escape")
        await wait_idle(pilot, app)
        backend.gate.set()
        assert any("compaction stopped: nothing was changed" in n for n in notes(app))
        assert [w.text for w in screen.chat.messages()] == before and not screen.chat.query(CompactStepLine)
        assert len(app.conversation.tree.roots) == 1
        cid = app.conversation.wait_for_id()
    with HistoryStore(readonly=True) as s:
        assert not [m for m in s.get_conversation(cid).all_messages if m.kind == "summary"]


async def test_on_overflow_compact_is_a_step_before_the_message_is_sent(tmp_path: Path) -> None:
    cfg = make_config(tmp_path, max_tokens=50)
    backend = GatedBackend(["answer " + "word " * 10], context_length=400)
    app = ChatApp(cfg, store=HistoryStore(), backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        conv = app.conversation
        i = 0
        while conv.overflow("the next one") is None and i < 40:
            i += 1
            await send(pilot, app, f"question {i} " + "word " * 10)
        assert conv.overflow("the next one") is not None
        conv.config.on_overflow = "compact"  # from now on (the turns above would have compacted too)
        backend.pieces = ["the summary", " of it all"]
        backend.gate.clear()
        backend.holding.clear()
        screen = app.chat_screen
        screen.prompt.load_text("the next one")
        await pilot.press("enter")
        await wait_for(pilot, backend.holding.is_set, 10, "the summary to stream")
        step = screen.chat.query(CompactStepLine)
        assert step and "Compacting" in str(step.first().render())
        backend.gate.set()
        await wait_for(pilot, lambda: screen.chat.messages()[-2].text == "the next one", 20, "the message sent")
        await wait_idle(pilot, app)
        assert isinstance(screen.chat.messages()[0], SummaryMessage)
        assert backend.seen[-1][-1].content == "the next one" and "the summary of it all" in backend.seen[-1][0].content
        assert conv.last_plan is not None and conv.last_plan.dropped == 0
