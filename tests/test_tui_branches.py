"""Branches in the TUI, under the pilot on the real model (llama.cpp): regenerate and move
between the replies, edit an earlier question and move between the two branches, fork, and
open a search hit that lives in a side branch. Keys only, as over SSH."""

from __future__ import annotations

from pathlib import Path
from typing import Any

import pytest

from aigc_chat.history_store import HistoryStore
from aigc_chat.tui.app import ChatApp
from aigc_chat.tui.chat_view import AssistantMessage, ChatMessage, UserMessage
from tests.tui_driver import SIZE, make_config, screen_text, send, type_text, wait_for, wait_idle

pytestmark = [pytest.mark.slow, pytest.mark.asyncio]


def header(widget: ChatMessage) -> str:
    return str(widget.query_one(".role").render())


def shown(app: ChatApp) -> list[tuple[str, str]]:
    return [(w.role, w.text) for w in app.chat_screen.chat.messages()]


async def test_regenerate_three_times_and_move_between_the_replies(tmp_path: Path, gemma_backend: Any) -> None:
    app = ChatApp(make_config(tmp_path, temperature=1.0, seed=None, max_tokens=6), store=HistoryStore(),
                  backend=gemma_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, app, "Name a colour.")
        for _ in range(3):
            await pilot.press("ctrl+r")
            await wait_idle(pilot, app)
        chat = app.chat_screen.chat
        replies = [w for w in chat.messages() if isinstance(w, AssistantMessage)]
        assert len(replies) == 1 and "‹ 4/4 ›" in header(replies[0])  # one shown, four kept
        assert "⑂ 4 branches" in str(app.chat_screen.status.render())
        texts = [n.content for n in app.conversation.tree.siblings(replies[0].node)]
        assert len(texts) == 4
        replies[0].focus()
        await pilot.press("left")
        await wait_for(pilot, lambda: "‹ 3/4 ›" in header(chat.last("assistant")), 10, "the third reply")
        assert chat.last("assistant").text == texts[2] and chat.last("assistant").has_focus
        await pilot.press("left", "left")
        await wait_for(pilot, lambda: "‹ 1/4 ›" in header(chat.last("assistant")), 10, "the first reply")
        assert chat.last("assistant").text == texts[0]
        await pilot.press("left")  # past the first: nothing moves, a note says so
        await wait_for(pilot, lambda: any("first of 4" in n.message for n in app._notifications), 10, "the note")
        # from the message box too (alt+→), the last message that has alternatives moves
        app.chat_screen.prompt.focus()
        await pilot.press("alt+right")
        await wait_for(pilot, lambda: "‹ 2/4 ›" in header(chat.last("assistant")), 10, "the second reply")
        assert len(chat.messages()) == 2
        # the next question follows the reply shown, and the store remembers that branch
        await send(pilot, app, "Another?")
        cid = app.conversation.wait_for_id()
    with HistoryStore(readonly=True) as s:
        conv = s.get_conversation(cid)
        assert [m.content for m in conv.messages][:2] == ["Name a colour.", texts[1]]
        assert conv.branch_count == 4 and len(conv.all_messages) == 7


async def test_edit_the_second_of_five_questions_and_move_between_branches(tmp_path: Path,
                                                                          gemma_backend: Any) -> None:
    app = ChatApp(make_config(tmp_path, max_tokens=4), store=HistoryStore(), backend=gemma_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        for i in range(1, 6):
            await send(pilot, app, f"Question {i}")
        chat = app.chat_screen.chat
        second = [w for w in chat.messages() if isinstance(w, UserMessage)][1]
        second.focus()
        await pilot.press("e")
        prompt = app.chat_screen.prompt
        assert prompt.text == "Question 2" and "earlier message" in str(prompt.border_title)
        prompt.load_text("")
        await type_text(pilot, "Second, edited")
        await pilot.press("enter")
        await wait_idle(pilot, app)
        users = [w for w in chat.messages() if isinstance(w, UserMessage)]
        assert [u.text for u in users] == ["Question 1", "Second, edited"]  # the path below was redrawn
        assert "‹ 2/2 ›" in header(users[1]) and len(chat.messages()) == 4
        users[1].focus()
        await pilot.press("left_square_bracket")  # [ works where arrows are taken
        await wait_for(pilot, lambda: len(chat.messages()) == 10, 10, "the old branch, whole")
        users = [w for w in chat.messages() if isinstance(w, UserMessage)]
        assert [u.text for u in users] == [f"Question {i}" for i in range(1, 6)]
        assert "‹ 1/2 ›" in header(users[1]) and "‹" not in header(users[2])
        await pilot.press("right")
        await wait_for(pilot, lambda: len(chat.messages()) == 4, 10, "the edited branch")
        cid = app.conversation.wait_for_id()
    with HistoryStore(readonly=True) as s:
        conv = s.get_conversation(cid)
        assert [m.content for m in conv.messages if m.role == "user"] == ["Question 1", "Second, edited"]
        assert len(conv.all_messages) == 12


async def test_fork_opens_a_copy_of_the_path_up_to_a_message(tmp_path: Path, gemma_backend: Any) -> None:
    store = HistoryStore()
    app = ChatApp(make_config(tmp_path, max_tokens=4), store=store, backend=gemma_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        for i in range(1, 4):
            await send(pilot, app, f"Step {i}")
        original = app.conversation.wait_for_id()
        chat = app.chat_screen.chat
        first_reply = next(w for w in chat.messages() if isinstance(w, AssistantMessage))
        first_reply.focus()
        await pilot.press("f")
        await wait_for(pilot, lambda: app.conversation.known_id not in (None, original)
                       and len(chat.messages()) == 2, 20, "the fork to open")
        assert chat.messages()[0].text == "Step 1"
        await send(pilot, app, "A new direction")
        fork = app.conversation.wait_for_id()
        assert "forked into conversation" in " ".join(n.message for n in app._notifications)
    with HistoryStore(readonly=True) as s:
        assert [m.content for m in s.get_conversation(fork).messages if m.role == "user"] == [
            "Step 1", "A new direction"]
        assert len(s.get_conversation(original).all_messages) == 6  # the original is untouched


async def test_a_search_hit_in_a_side_branch_opens_that_branch(tmp_path: Path, gemma_backend: Any) -> None:
    store = HistoryStore()
    cid = store.create_conversation("birds")
    q = store.add_message(cid, "user", "Tell me about herons")
    store.add_message(cid, "assistant", "Herons wade in shallow water.", finish_reason="stop")
    side = store.add_message(cid, "assistant", "Herons sometimes stand like flamingos.", finish_reason="stop",
                             parent=q)
    store.add_message(cid, "assistant", "Herons are patient hunters.", finish_reason="stop", parent=q)
    app = ChatApp(make_config(tmp_path), store=store, backend=gemma_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        await pilot.press("ctrl+f")
        await type_text(pilot, "flamingos")
        await pilot.press("enter")
        pane = app.chat_screen.history
        await wait_for(pilot, lambda: pane.row_count() == 1, 10, "one hit")
        await pilot.press("enter")
        chat = app.chat_screen.chat
        await wait_for(pilot, lambda: len(chat.messages()) == 2, 20, f"the conversation\n{screen_text(app)}")
        reply = chat.last("assistant")
        assert reply.text == "Herons sometimes stand like flamingos." and "‹ 2/3 ›" in header(reply)
        await wait_idle(pilot, app)
    with HistoryStore(readonly=True) as s:
        assert s.get_conversation(cid).messages[-1].id == side  # the branch opened is the current one now


async def test_a_regenerate_that_fails_before_a_word_shows_the_reply_it_was_to_replace(tmp_path: Path) -> None:
    """An engine that fails at once (a fault a real model cannot be made to produce): the old
    reply is back on screen, and the conversation has no branch."""
    from tests.scripted_backend import ScriptedBackend

    backend = ScriptedBackend(["the good answer"])
    app = ChatApp(make_config(tmp_path), store=HistoryStore(), backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, app, "question")
        backend.fail_after = 0
        await pilot.press("ctrl+r")
        await wait_for(pilot, lambda: any("engine exploded" in n.message for n in app._notifications), 10,
                       "the failure")
        await wait_idle(pilot, app)
        chat = app.chat_screen.chat
        await wait_for(pilot, lambda: shown(app) == [("user", "question"), ("assistant", "the good answer")], 10,
                       "the old reply back")
        assert "‹" not in header(chat.last("assistant")) and app.conversation.tree.branch_count() == 1


async def test_editing_a_question_that_moves_off_the_path_keeps_the_text(tmp_path: Path, gemma_backend: Any) -> None:
    app = ChatApp(make_config(tmp_path, max_tokens=4, temperature=1.0, seed=None), store=HistoryStore(),
                  backend=gemma_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, app, "First")
        await pilot.press("ctrl+r")
        await wait_idle(pilot, app)
        await send(pilot, app, "Second")
        chat, prompt = app.chat_screen.chat, app.chat_screen.prompt
        second = [w for w in chat.messages() if isinstance(w, UserMessage)][1]
        second.focus()
        await pilot.press("e")
        prompt.load_text("Second, better")
        await pilot.press("alt+left")  # the first reply again: "Second" is on the other branch now
        await wait_for(pilot, lambda: app.chat_screen.editing is None, 10, "editing to stop")
        assert prompt.text == "Second, better" and not prompt.border_title  # nothing typed is lost
        await pilot.press("enter")
        await wait_idle(pilot, app)
        assert [w.text for w in chat.messages() if isinstance(w, UserMessage)] == ["First", "Second, better"]
