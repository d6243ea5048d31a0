"""A reasoning model's thinking in the TUI (issue 13): streamed live in its own dimmed block
above the answer, folded to one line once the answer begins, `t` on a focused reply to show
or hide it (remembered in config.toml), reopened conversations showing the folded block, and
the answer alone copied. Real app under Textual's pilot; the replies come from the scripted
backend, gated so the test can look at the screen while the model "thinks"."""

from __future__ import annotations

import re
import tomllib
from pathlib import Path
from typing import Any

import pytest

from aigc_chat.config import Config
from aigc_chat.history_store import HistoryStore
from aigc_chat.tui import history_pane
from aigc_chat.tui.app import ChatApp
from aigc_chat.tui.chat_view import AssistantMessage, PlainView, ThinkingBlock
from tests.scripted_backend import GatedBackend, ScriptedBackend
from tests.tui_driver import SIZE, make_config, screen_text, send, settle_screen, wait_for, wait_idle

REASONING = "Let me plan the steps.\nFirst [bold]this[/bold], then \x1b]0;pwned\x07that."
PIECES = ["<think>", "Let me plan ", "the steps.\nFirst [bold]this[/bold], ", "then \x1b]0;pwned\x07that.",
          "</think>", "\n\nThe answer ", "is 42."]
ANSWER = "The answer is 42."
SHOWN_REASONING = "Let me plan the steps.\nFirst [bold]this[/bold], then that."  # the OSC dropped


def config(tmp: Path, max_tokens: int = 12) -> Config:
    cfg = make_config(tmp, max_tokens=max_tokens)
    cfg.tui["stream_interval_ms"] = 0  # every piece drawn: a gated piece is on screen at once
    return cfg


def reply_of(app: ChatApp) -> AssistantMessage:
    reply = app.chat_screen.chat.last("assistant")
    assert isinstance(reply, AssistantMessage)
    return reply


def block_of(app: ChatApp) -> ThinkingBlock:
    block = reply_of(app).thinking
    assert block is not None
    return block


def body_shown(block: ThinkingBlock) -> bool:
    return bool(block.query_one(".thinking-body").display) and not block.has_class("-collapsed")


def saved_tui(path: Path) -> dict[str, Any]:
    if not path.exists():
        return {}
    return dict(tomllib.loads(path.read_text("utf-8")).get("tui", {}))


FINAL = re.compile(r"^▸ Thought for \d+\.\d s · (\d+) tokens?$")


@pytest.mark.asyncio
async def test_thinking_streams_live_then_folds_when_the_answer_begins(tmp_path: Path) -> None:
    backend = GatedBackend(PIECES, gates=[4, 6])  # before "</think>", and inside the answer
    app = ChatApp(config(tmp_path), store=None, backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        prompt = app.query_one("#prompt")
        prompt.load_text("what is the answer?")
        await pilot.press("enter")

        # while the model thinks: the live block, expanded, the answer still empty
        await wait_for(pilot, lambda: reply_of(app).thinking is not None
                       and block_of(app).shown_text == SHOWN_REASONING, 10, "the reasoning on screen")
        block, reply = block_of(app), reply_of(app)
        assert block.live and body_shown(block) and block.has_class("-live")
        assert reply.shown_markdown == "" and reply.text == ""
        text = screen_text(app)
        assert "▾ Thinking…" in text and "Let me plan the steps." in text
        assert "First [bold]this[/bold], then that." in text  # literal: never read as markup
        assert "pwned" not in text and "\x1b" not in block.shown_text
        # the elapsed time, ticking once a second while it thinks
        await wait_for(pilot, lambda: re.search(r"Thinking… \d+ s", screen_text(app)) is not None,
                       10, "the elapsed time")

        # the answer begins: the block folds to one line with how long it thought
        backend.release(4)
        await wait_for(pilot, lambda: "The answer" in reply_of(app).shown_markdown, 10, "the answer")
        assert not block.live and block.has_class("-collapsed") and not body_shown(block)
        assert re.fullmatch(r"▸ Thought for \d+\.\d s", block.title_text), block.title_text
        await pilot.pause()
        text = screen_text(app)
        assert "Thought for" in text and "Let me plan" not in text and "Thinking…" not in text

        # the end: the stats' own thinking time and reasoning tokens
        backend.release(6)
        await wait_idle(pilot, app)
        stats = reply.stats
        assert stats["reasoning_tokens"] > 0 and isinstance(stats["thinking_time"], float)
        found = FINAL.fullmatch(block.title_text)
        assert found and int(found.group(1)) == stats["reasoning_tokens"], block.title_text
        assert f"Thought for {stats['thinking_time']:.1f} s" in block.title_text
        assert reply.text == ANSWER and reply.shown_markdown == ANSWER
        assert reply.reasoning == REASONING  # as the model wrote it; sanitised only when shown
        assert block.shown_text == SHOWN_REASONING
        await pilot.pause()
        assert block.title_text in screen_text(app)


@pytest.mark.asyncio
async def test_long_thinking_is_frozen_in_segments(tmp_path: Path) -> None:
    """A batch costs O(batch + SEGMENT), not O(reasoning): finished segments are never redrawn."""
    lines = [f"step {i}: consider the {i}th possibility and weigh it carefully.\n" for i in range(150)]
    backend = GatedBackend(["<think>", *lines, "</think>", "Done."], gates=[len(lines) + 1])
    app = ChatApp(config(tmp_path, max_tokens=1000), store=None, backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        app.query_one("#prompt").load_text("think hard")
        await pilot.press("enter")
        whole = "".join(lines)
        await wait_for(pilot, lambda: reply_of(app).thinking is not None
                       and block_of(app).shown_text == whole, 20, "all the reasoning")
        segments = list(block_of(app).query(PlainView))
        assert len(segments) >= len(whole) // ThinkingBlock.SEGMENT
        assert all(len(v.source) <= ThinkingBlock.SEGMENT + 80 for v in segments)
        assert all(v.source.endswith("\n") for v in segments[:-1])  # cut at line ends
        backend.release(len(lines) + 1)
        await wait_idle(pilot, app)
        assert reply_of(app).text == "Done." and block_of(app).shown_text == whole


@pytest.mark.asyncio
async def test_stopped_while_thinking_folds_the_block(tmp_path: Path) -> None:
    backend = GatedBackend(PIECES, gates=[4])
    app = ChatApp(config(tmp_path), store=None, backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        app.query_one("#prompt").load_text("what is the answer?")
        await pilot.press("enter")
        await wait_for(pilot, lambda: reply_of(app).thinking is not None
                       and block_of(app).shown_text == SHOWN_REASONING, 10, "the reasoning on screen")
        await pilot.press("escape")
        await wait_idle(pilot, app)
        reply, block = reply_of(app), block_of(app)
        assert reply.finish_reason == "cancelled" and reply.text == ""
        assert not block.live and not body_shown(block) and block.title_text.startswith("▸ Thought for ")
        assert block.shown_text == SHOWN_REASONING


@pytest.mark.asyncio
async def test_t_shows_and_hides_the_reasoning_and_remembers_it(tmp_path: Path) -> None:
    cfg = config(tmp_path)
    app = ChatApp(cfg, store=None, backend=ScriptedBackend(PIECES))
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        reply = await send(pilot, app, "what is the answer?")
        block = block_of(app)
        assert not body_shown(block)  # the default: one line
        reply.focus()
        await pilot.pause()
        assert "t Show / hide reasoning" in screen_text(app)  # in the footer
        await pilot.press("t")
        assert body_shown(block) and block.title_text.startswith("▾ Thought for")
        await pilot.pause()
        assert "Let me plan the steps." in screen_text(app)
        await wait_for(pilot, lambda: saved_tui(cfg.path).get("show_reasoning") is True, 10,
                       "show_reasoning = true in config.toml")
        assert app.config.tui["show_reasoning"] is True

        # the new default: the next reply stays expanded when its answer begins
        await send(pilot, app, "again")
        second = block_of(app)
        assert second is not block and body_shown(second) and not second.live

        second.parent.focus()  # type: ignore[union-attr] - the reply the block is in
        await pilot.press("t")
        assert not body_shown(second)
        await wait_for(pilot, lambda: saved_tui(cfg.path).get("show_reasoning") is False, 10,
                       "show_reasoning = false in config.toml")
        assert body_shown(block)  # the key folds the focused reply only


@pytest.mark.asyncio
async def test_copy_leaves_the_reasoning_out(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("TMUX", raising=False)
    app = ChatApp(config(tmp_path), store=None, backend=ScriptedBackend(PIECES))
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        reply = await send(pilot, app, "what is the answer?")
        assert reply.text == ANSWER
        await pilot.press("f5")
        assert app.clipboard == ANSWER
        app.copy_to_clipboard("")
        reply.focus()
        await pilot.press("t", "c")  # expanded or not, `c` copies the answer alone
        assert app.clipboard == ANSWER


@pytest.mark.asyncio
async def test_a_reply_without_reasoning_has_no_block(tmp_path: Path) -> None:
    app = ChatApp(config(tmp_path), store=None, backend=ScriptedBackend(["Plain ", "answer."]))
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        reply = await send(pilot, app, "hi")
        assert reply.text == "Plain answer." and reply.thinking is None
        assert not list(app.query(ThinkingBlock))
        assert "Thought" not in screen_text(app) and "Thinking" not in screen_text(app)
        reply.focus()
        await pilot.pause()
        assert "Show / hide reasoning" not in screen_text(app)  # the footer offers `t` only on one with
        await pilot.press("t")
        assert app.config.tui["show_reasoning"] is False and "show_reasoning" not in saved_tui(app.config.path)


def stored_app(tmp_path: Path) -> ChatApp:
    store = HistoryStore(tmp_path / "history.db")
    cid = store.create_conversation("Why 42?", model="qwen3-0.6b-q8_0.gguf", backend="llama")
    store.add_message(cid, "user", "Why is the answer 42?")
    store.add_message(cid, "assistant", "Because **Deep Thought** said so.", finish_reason="stop",
                      stats={"completion_tokens": 390, "time_to_first_token": 4.31, "decode_tokens_per_s": 88.0,
                             "reasoning_tokens": 380, "thinking_time": 4.2},
                      meta={"reasoning": "The user asks about 42.\nThat is from \x1b[2JHitchhiker's Guide."})
    store.add_message(cid, "user", "And without thinking?")
    store.add_message(cid, "assistant", "Just 42.", finish_reason="stop", stats={"completion_tokens": 3})
    return ChatApp(config(tmp_path), store=store, conversation_id=cid,
                   backend=ScriptedBackend(["ok"], model="scripted.gguf"))


@pytest.mark.asyncio
async def test_a_reopened_conversation_shows_the_folded_block(tmp_path: Path) -> None:
    app = stored_app(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(app.chat_screen.chat.messages()) == 4, 20, "the conversation")
        await wait_idle(pilot, app)
        first, last = [m for m in app.chat_screen.chat.messages() if isinstance(m, AssistantMessage)]
        assert last.thinking is None
        block = first.thinking
        assert block is not None and not block.live and not body_shown(block)
        assert block.title_text == "▸ Thought for 4.2 s · 380 tokens"
        assert first.text == "Because **Deep Thought** said so."
        text = screen_text(app)
        assert "Thought for 4.2 s · 380 tokens" in text and "The user asks" not in text
        first.focus()
        await pilot.press("t")
        await pilot.pause()
        text = screen_text(app)
        assert "The user asks about 42." in text and "That is from Hitchhiker's Guide." in text
        await pilot.press("c")
        assert app.clipboard == "Because **Deep Thought** said so."


def test_collapsed_reasoning_snapshot(snap_compare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(history_pane, "format_date", lambda ts: "2026-01-02")

    async def settle(pilot) -> None:
        await wait_for(pilot, lambda: len(pilot.app.chat_screen.query(AssistantMessage)) == 2, 20,
                       "the conversation")
        await settle_screen(pilot, pilot.app, rows=1)

    assert snap_compare(stored_app(tmp_path), terminal_size=(100, 30), run_before=settle)
