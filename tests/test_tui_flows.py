"""Pilot tests of the TUI's flows.

Every test drives the real app through `App.run_test` with key presses. The tests about the
model's replies (streaming, cancel, regenerate, settings and stops that change what it
writes, loading, context) run on the real model (llama.cpp, Gemma 3 270M) at temperature 0
with a small max_tokens, loaded once and handed to each app (the app does not close a
backend it was given); they are marked slow. The tests about the UI alone (keys, queueing,
slash commands, scrolling, the settings pane) run on the scripted backend, gated where the
test must act mid-reply, so they are quick and their screens do not depend on the model.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any

import pytest

from aigc_chat.tui.app import ChatApp
from aigc_chat.tui.chat_view import AssistantMessage, NoticeMessage, UserMessage
from tests.scripted_backend import GatedBackend, ScriptedBackend
from tests.tui_driver import SIZE, make_config, screen_text, send, type_text, wait_for, wait_idle

pytestmark = [pytest.mark.asyncio]

def open_store():
    from aigc_chat.history_store import HistoryStore

    return HistoryStore()


# -- send and stream ---------------------------------------------------------------------------

@pytest.mark.slow
async def test_send_streams_reply_and_stores_it(tmp_path: Path, gemma_backend: Any) -> None:
    store = open_store()
    app = ChatApp(make_config(tmp_path, max_tokens=64), store=store, backend=gemma_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        await type_text(pilot, "Write a short poem about the sea.")
        await pilot.press("enter")
        await wait_idle(pilot, app)
        reply = app.chat_screen.chat.last("assistant")
        assert isinstance(reply, AssistantMessage)
        result_text = app.conversation.messages[-1].content
        assert reply.text == result_text and result_text.strip()
        assert reply.batches >= 2, "the reply should arrive in several batches"
        # the final render is complete: nothing a batch cut is lost
        assert reply.shown_markdown == result_text
        assert reply.stats["completion_tokens"] == 64 and reply.finish_reason == "length"
        stats_line = str(reply.query_one(".stats").render())
        assert "tok/s" in stats_line and "64 tokens" in stats_line and "first token" in stats_line
        conv = store.get_conversation(app.conversation.wait_for_id())
        assert [m.role for m in conv.messages] == ["user", "assistant"]
        assert conv.messages[0].content == "Write a short poem about the sea."
        assert conv.messages[1].content == result_text
        assert conv.messages[1].finish_reason == "length"
        assert conv.messages[1].stats.get("completion_tokens") == 64
        assert "ctx" in screen_text(app) and "idle" in screen_text(app)


@pytest.mark.slow
async def test_escape_cancels_and_keeps_partial_reply(tmp_path: Path, gemma_backend: Any) -> None:
    store = open_store()
    app = ChatApp(make_config(tmp_path, max_tokens=400), store=store, backend=gemma_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        await type_text(pilot, "Count from one to two hundred in words.")
        await pilot.press("enter")
        chat = app.chat_screen.chat
        await wait_for(pilot, lambda: (r := chat.last("assistant")) is not None and len(r.text) > 10, 60)
        await pilot.press("escape")
        t0 = time.monotonic()
        await wait_idle(pilot, app)
        stop_delay = time.monotonic() - t0
        reply = app.chat_screen.chat.last("assistant")
        assert isinstance(reply, AssistantMessage)
        assert reply.finish_reason == "cancelled" and reply.has_class("-cancelled")
        assert 0 < reply.stats["completion_tokens"] < 400
        assert reply.text and "cancelled" in str(reply.query_one(".stats").render())
        assert stop_delay < 10
        conv = store.get_conversation(app.conversation.wait_for_id())
        assert conv.messages[-1].finish_reason == "cancelled"
        assert conv.messages[-1].content == reply.text


@pytest.mark.slow
async def test_regenerate_replaces_last_reply(tmp_path: Path, gemma_backend: Any) -> None:
    store = open_store()
    app = ChatApp(make_config(tmp_path, temperature=0.9, seed=None), store=store, backend=gemma_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        first = await send(pilot, app, "Name a colour.")
        await pilot.press("ctrl+r")
        await wait_idle(pilot, app)
        replies = [w for w in app.chat_screen.chat.messages() if isinstance(w, AssistantMessage)]
        assert len(replies) == 1 and replies[0] is not first
        assert [m.role for m in app.conversation.messages] == ["user", "assistant"]
        conv = store.get_conversation(app.conversation.wait_for_id())
        assert [m.role for m in conv.messages] == ["user", "assistant"]
        assert conv.messages[1].content == replies[0].text


@pytest.mark.slow
async def test_edit_last_message_and_resend(tmp_path: Path, gemma_backend: Any) -> None:
    store = open_store()
    app = ChatApp(make_config(tmp_path), store=store, backend=gemma_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, app, "What is 2+2?")
        await pilot.press("ctrl+o")
        prompt = app.query_one("#prompt")
        assert prompt.text == "What is 2+2?" and app.chat_screen.editing
        await pilot.press("backspace", "backspace", "3", "?")
        await pilot.press("enter")
        await wait_idle(pilot, app)
        users = [w for w in app.chat_screen.chat.messages() if isinstance(w, UserMessage)]
        assert [u.text for u in users] == ["What is 2+3?"]
        assert [m.content for m in app.conversation.messages if m.role == "user"] == ["What is 2+3?"]
        conv = store.get_conversation(app.conversation.wait_for_id())
        assert next((m.role, m.content) for m in conv.messages) == ("user", "What is 2+3?")
        assert len(conv.messages) == 2 and conv.messages[1].finish_reason in ("stop", "length")


@pytest.mark.slow
async def test_settings_change_applies_to_next_generation(tmp_path: Path, gemma_backend: Any) -> None:
    store = open_store()
    app = ChatApp(make_config(tmp_path, max_tokens=20), store=store, backend=gemma_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        await pilot.press("f3")
        field = app.query_one("#set-max_tokens")
        field.focus()
        field.value = ""
        await type_text(pilot, "abc")
        await pilot.pause()
        # refused in place, with the reason; the old value stays in force
        error = app.query_one("#err-max_tokens")
        assert error.display and "max_tokens" in str(error.render())
        await pilot.press("enter")
        assert app.conversation.settings.params.max_tokens == 20
        field.value = ""
        await type_text(pilot, "3")
        await pilot.press("enter")
        await pilot.pause()
        assert not error.display
        assert app.conversation.settings.params.max_tokens == 3
        reply = await send(pilot, app, "Tell me a story.")
        assert reply.stats["completion_tokens"] == 3 and reply.finish_reason == "length"
        conv = store.get_conversation(app.conversation.wait_for_id())
        assert conv.settings["generation"]["max_tokens"] == 3


@pytest.mark.slow
async def test_stop_sequence_from_pane_is_honoured(tmp_path: Path, gemma_backend: Any) -> None:
    store = open_store()
    app = ChatApp(make_config(tmp_path, max_tokens=16), store=store, backend=gemma_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        reply = await send(pilot, app, "List three fruits.")
        full = reply.text
        words = [w for w in full.split() if len(w) >= 3]
        assert len(words) >= 2, full
        stop = words[1]
        cut = full.index(stop)
        await pilot.press("f3")
        app.query_one("#set-stop-add").focus()
        await type_text(pilot, stop)
        await pilot.press("enter")
        await pilot.pause()
        assert app.conversation.settings.params.stop == (stop,)
        await pilot.press("ctrl+r")
        await wait_idle(pilot, app)
        again = app.chat_screen.chat.last("assistant")
        assert again.text == full[:cut]
        assert again.finish_reason == "stop" and again.stats.get("stop_sequence") == stop
        # and it can be removed again from the list
        stops = app.query_one("#set-stops")
        stops.focus()
        stops.highlighted = 0
        await pilot.press("delete")
        await pilot.pause()
        assert app.conversation.settings.params.stop == ()


@pytest.mark.slow
async def test_model_load_failure_is_shown_and_another_model_can_be_picked(tmp_path: Path, gemma_path: Path) -> None:
    cfg = make_config(tmp_path)
    missing = tmp_path / "no-such-model.gguf"
    cfg.model = str(missing)
    app = ChatApp(cfg, store=None)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.chat_screen.chat_state.phase == "load failed", 60, "the load to fail")
        notices = list(app.query(NoticeMessage))
        assert notices and "no-such-model.gguf" in str(notices[-1].render())
        assert "load failed" in screen_text(app)
        # sending now explains instead of crashing
        await type_text(pilot, "hello")
        await pilot.press("enter")
        await pilot.pause()
        assert not app.chat_screen.chat.query(UserMessage)
        app.query_one("#prompt").load_text("")
        await type_text(pilot, f"/model {gemma_path}")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.chat_screen.chat_state.phase == "idle", 120, "the model to load")
        assert app.conversation.backend is not None and app.chat_screen.status.facts.device
        reply = await send(pilot, app, "Hi")
        assert reply.text


@pytest.mark.slow
async def test_context_overflow_drops_oldest_turns_and_says_so(tmp_path: Path, gemma_path: Path) -> None:
    cfg = make_config(tmp_path, max_tokens=8)
    cfg.system_prompt = "You are terse."
    cfg.backends["llama"] = {"n_ctx": 128}
    app = ChatApp(cfg, store=None)
    long = "Please remember these words: " + " ".join(["apple banana cherry"] * 20)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        assert app.chat_screen.status.facts.context_size == 128
        await send(pilot, app, long)
        assert not app.query(".-context")
        await send(pilot, app, long)
        notes = list(app.query(".-context"))
        assert len(notes) == 1
        assert "left out" in str(notes[0].render())
        plan = app.conversation.last_plan
        assert plan is not None and plan.dropped == 2
        assert plan.messages[0].role == "system"  # never the system prompt
        used = app.chat_screen.status.facts.context_used
        assert used is not None and used <= 128


async def test_wait_idle_waits_for_a_reply_slow_to_start(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """Until the Enter's message reaches the screen and the turn begins, the chat still reads
    idle. The driver's wait is for a condition (the Enter seen, ChatState.settled), not a
    fixed pause: here the message comes later than the pause the driver used to make."""
    from aigc_chat.tui.prompt_input import PromptInput

    post = PromptInput.post_message

    def late_post(self: PromptInput, message: Any) -> bool:
        if isinstance(message, PromptInput.Submitted):  # a loaded machine: the message comes late
            self.set_timer(0.3, lambda: post(self, message))
            return True
        return post(self, message)

    monkeypatch.setattr(PromptInput, "post_message", late_post)
    app = ChatApp(make_config(tmp_path), store=None, backend=ScriptedBackend(["late", " but", " whole"]))
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        state = app.chat_screen.chat_state
        reply = await send(pilot, app, "Hello?")
        assert reply.text == "late but whole" and reply.finish_reason == "stop"
        assert state.settled and state.submitted == 1 and state.job == 1
        # two messages sent at once: the second is queued behind the first, and waited for too
        prompt = app.query_one("#prompt")
        prompt.load_text("One")
        await pilot.press("enter")
        prompt.load_text("Two")
        await pilot.press("enter")
        await wait_idle(pilot, app, after=2)  # both Enters seen: the count goes from 1 past 2
        assert [u.text for u in app.query(UserMessage)] == ["Hello?", "One", "Two"]
        assert state.job == 3 and not state.queue


async def test_typing_while_generating_queues_the_next_message(tmp_path: Path) -> None:
    from textual.events import Key

    backend = GatedBackend(["One", " two", " three"], gates=[1])  # the first reply holds after "One"
    cfg = make_config(tmp_path)
    cfg.tui["stream_interval_ms"] = 0  # every piece drawn at once
    app = ChatApp(cfg, store=None, backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        prompt = app.query_one("#prompt")
        # keys are posted, not pressed: pilot.press waits until the app is quiet, which is
        # only after the reply has ended
        prompt.load_text("Count from one to one hundred.")
        prompt.post_message(Key("enter", "\r"))
        chat = app.chat_screen.chat
        await wait_for(pilot, lambda: (r := chat.last("assistant")) is not None and r.text == "One", 10,
                       "the reply, held mid-stream")
        prompt.load_text("Two")  # the input is not locked
        prompt.post_message(Key("enter", "\r"))
        await wait_for(pilot, lambda: any("queued" in n.message for n in app._notifications), 10, "the queued note")
        assert prompt.text == ""
        assert len(chat.query(UserMessage)) == 1 and len(backend.seen) == 1, "sent while the first reply runs"
        backend.release(1)
        await wait_for(pilot, lambda: len(chat.query(UserMessage)) == 2, 10, "the queued message sent")
        await wait_idle(pilot, app)
        assert [u.text for u in chat.query(UserMessage)] == ["Count from one to one hundred.", "Two"]
        assert [a.text for a in chat.query(AssistantMessage)] == ["One two three"] * 2
        assert [m.content for m in backend.seen[1] if m.role == "user"] == ["Count from one to one hundred.", "Two"]


async def test_prompt_keys_newline_and_recall(tmp_path: Path) -> None:
    app = ChatApp(make_config(tmp_path), store=None, backend=ScriptedBackend(["ok"]))
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        prompt = app.query_one("#prompt")
        await type_text(pilot, "line one")
        await pilot.press("ctrl+j")
        await type_text(pilot, "line two")
        assert prompt.text == "line one\nline two"
        await pilot.press("enter")
        await wait_idle(pilot, app)
        assert app.chat_screen.chat.last("user").text == "line one\nline two"
        assert prompt.text == ""
        await pilot.press("up")
        assert prompt.text == "line one\nline two"
        await pilot.press("down")
        assert prompt.text == ""


async def enter(pilot: Any, app: ChatApp, text: str) -> None:
    """Put `text` in the message box and press Enter (typing itself is the key test's: a key
    press per character costs ~0.2 s here)."""
    prompt = app.query_one("#prompt")
    prompt.focus()
    prompt.load_text(text)
    await pilot.press("enter")
    await pilot.pause()  # a pause without a delay: until the app has handled what Enter caused


async def test_slash_commands(tmp_path: Path) -> None:
    app = ChatApp(make_config(tmp_path), store=None, backend=ScriptedBackend(["ok"]))
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        for cmd in ("/temp 0.5", "/system Be brief.", "/stop add END", "/stop add <x>"):
            await enter(pilot, app, cmd)
        s = app.conversation.settings
        assert s.params.temperature == 0.5 and s.system_prompt == "Be brief."
        assert s.params.stop == ("END", "<x>")
        assert app.conversation.settings.system_prompt == "Be brief."
        await enter(pilot, app, "/temp 7")
        assert app.conversation.settings.params.temperature == 0.5  # refused
        await enter(pilot, app, "/stop clear")
        assert app.conversation.settings.params.stop == ()
        await enter(pilot, app, "/help")
        assert type(app.screen).__name__ == "HelpScreen"
        await pilot.press("escape")
        await pilot.pause()
        assert type(app.screen).__name__ != "HelpScreen"
        assert not app.chat_screen.chat.query(UserMessage) and backend_calls(app) == 0, "commands are never sent"


def backend_calls(app: ChatApp) -> int:
    backend = app.conversation.backend
    assert isinstance(backend, ScriptedBackend)
    return len(backend.seen)


@pytest.mark.slow
async def test_quit_while_streaming_keeps_the_partial_reply(tmp_path: Path, gemma_backend: Any) -> None:
    store = open_store()
    app = ChatApp(make_config(tmp_path, max_tokens=400), store=store, backend=gemma_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        await type_text(pilot, "Count from one to two hundred in words.")
        await pilot.press("enter")
        chat = app.chat_screen.chat
        await wait_for(pilot, lambda: (r := chat.last("assistant")) is not None and len(r.text) > 10, 60)
        cid = app.conversation.wait_for_id()
        await pilot.press("ctrl+q")
    from aigc_chat.history_store import HistoryStore

    last = HistoryStore().get_conversation(cid).messages[-1]
    assert last.role == "assistant" and last.finish_reason == "cancelled" and last.content
    assert last.stats.get("completion_tokens", 0) > 0


async def test_autoscroll_only_while_at_the_bottom(tmp_path: Path) -> None:
    store = open_store()
    cid = store.create_conversation("long", settings={"generation": {"temperature": 0.0, "max_tokens": 30}})
    for i in range(6):
        store.add_message(cid, "user", f"question {i}")
        store.add_message(cid, "assistant", "\n\n".join(f"paragraph {j} of answer {i}" for j in range(6)),
                          finish_reason="stop")
    # a long reply, held twice: at the bottom (it must follow), then scrolled up (it must not)
    backend = GatedBackend([f"line {i} of the reply\n\n" for i in range(30)], gates=[10, 20])
    cfg = make_config(tmp_path)
    cfg.tui["stream_interval_ms"] = 0  # every piece drawn at once: what a held reply has is on screen
    app = ChatApp(cfg, store=store, conversation_id=cid, backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        chat = app.chat_screen.chat
        await wait_for(pilot, lambda: len(chat.messages()) == 12, 10, "the conversation")
        await wait_for(pilot, lambda: chat.max_scroll_y > 0 and chat.scroll_y == chat.max_scroll_y, 5,
                       "the conversation opened at the bottom")
        await enter(pilot, app, "Count slowly from one to fifty.")
        await wait_for(pilot, lambda: "line 9 " in chat.last("assistant").text, 10, "the reply up to its first hold")
        # following the reply (checked as "gets there": a batch may grow the view an instant
        # before the anchor scrolls it, seen once under load)
        await wait_for(pilot, lambda: chat.scroll_y == chat.max_scroll_y, 5, "the view to follow the reply")
        chat.focus()
        await pilot.press("home")  # the user scrolls up to read
        # an animated scroll: under load it takes more than 0.1 s to arrive
        await wait_for(pilot, lambda: chat.scroll_y == 0, 5, "the scroll home")
        grown_from = chat.max_scroll_y
        backend.release(10)
        await wait_for(pilot, lambda: "line 19 " in chat.last("assistant").text and chat.max_scroll_y > grown_from, 10,
                       "the reply to grow while scrolled up")
        await pilot.pause()  # the grown reply's messages handled: an anchor would have scrolled by now
        assert chat.scroll_y == 0, "the view must stay where the user put it while the reply grows"
        backend.release(20)
        await wait_idle(pilot, app)
        assert chat.last("assistant").text.endswith("line 29 of the reply\n\n")
        assert chat.scroll_y == 0, "the view must stay where the user put it"
        # sending again brings the view back to the bottom and follows the new reply
        await send(pilot, app, "Thanks")
        await wait_for(pilot, lambda: chat.scroll_y == chat.max_scroll_y, 5, "the view back at the bottom")


async def test_multiline_system_prompt_from_the_pane(tmp_path: Path) -> None:
    """Enter makes a new line in the system prompt field; leaving the field applies it,
    it is what the backend receives, it is saved with the conversation and shown again."""
    backend = ScriptedBackend(["ok"])
    store = open_store()
    app = ChatApp(make_config(tmp_path), store=store, backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        await pilot.press("f3")
        area = app.query_one("#set-system")
        area.focus()
        await type_text(pilot, "Be terse.")
        await pilot.press("enter")
        await type_text(pilot, "Answer in French.")
        await pilot.pause()
        assert app.conversation.settings.system_prompt == ""  # not applied while typing
        await pilot.press("tab")  # leave the field
        await pilot.pause()
        assert app.conversation.settings.system_prompt == "Be terse.\nAnswer in French."
        await send(pilot, app, "hello")
        assert backend.seen[-1][0].role == "system"
        assert backend.seen[-1][0].content == "Be terse.\nAnswer in French."
        cid = app.conversation.wait_for_id()
        # leaving without a change applies nothing new; a change is applied on the next leave
        applied: list[str] = []
        original = app.conversation.set_system_prompt
        app.conversation.set_system_prompt = lambda text: (applied.append(text), original(text))[1]
        area.focus()
        await pilot.press("tab")
        await pilot.pause()
        assert applied == []
        area.focus()
        area.load_text("Only English.")
        await pilot.press("tab")
        await pilot.pause()
        assert app.conversation.settings.system_prompt == "Only English." and applied == ["Only English."]
        area.focus()
        # hiding the pane while typing there applies what was typed
        area.load_text("Only English, please.")
        await pilot.press("f3")
        await pilot.pause()
        assert app.conversation.settings.system_prompt == "Only English, please."
    reopened = ChatApp(make_config(tmp_path), store=open_store(), conversation_id=cid,
                       backend=ScriptedBackend(["ok"]))
    async with reopened.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, reopened)
        await pilot.press("f3")
        await pilot.pause()
        assert reopened.query_one("#set-system").text == "Only English, please."
        assert reopened.conversation.settings.system_prompt == "Only English, please."
