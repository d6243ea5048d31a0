"""Pilot tests of the history pane on the real store: list, search, open, rename, delete,
export, continue, and inline GAN items that re-render after a restart.

The pane's own tests run on the scripted backend (what the model says does not matter to
them); continuing a conversation after a restart runs on the real model (Gemma 3 270M), so
one test covers the whole path, and is marked slow."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import pytest

from aigc_chat.history_store import HistoryStore
from aigc_chat.tui.app import ChatApp
from aigc_chat.tui.chat_view import AssistantMessage, GanMessage, UserMessage
from tests.scripted_backend import ScriptedBackend
from tests.tui_driver import SIZE, make_config, send, type_text, wait_for, wait_idle

pytestmark = [pytest.mark.asyncio]


def fill(store: HistoryStore) -> list[int]:
    """Three conversations, the last one newest, with settings like the TUI saves them."""
    ids = []
    for i, (q, a) in enumerate([
        ("How do zebras sleep?", "Standing up, mostly."),
        ("Explain Python decorators", "A decorator wraps a function:\n\n```python\n@wrap\ndef f(): ...\n```"),
        ("Plan a trip to Lisbon", "Day one: Alfama."),
    ]):
        cid = store.create_conversation(q, model="m.gguf", backend="llama",
                                        settings={"backend": "llama", "model": "", "system_prompt": f"sys {i}",
                                                  "generation": {"temperature": 0.1 * (i + 1), "max_tokens": 9}})
        store.add_message(cid, "user", q)
        store.add_message(cid, "assistant", a, finish_reason="stop",
                          stats={"completion_tokens": 5, "time_to_first_token": 0.1, "decode_tokens_per_s": 50.0})
        ids.append(cid)
    return ids


def titles_shown(app: ChatApp) -> list[str]:
    return [title for _, title in app.chat_screen.history.rows()]


def exported(app: ChatApp, path: Path) -> bool:
    """The export has been written (off the UI thread) and notified."""
    return any(f"exported to {path}" in n.message for n in app._notifications)


async def test_pane_lists_newest_first_and_search_opens_a_conversation(tmp_path: Path) -> None:
    store = HistoryStore()
    ids = fill(store)
    app = ChatApp(make_config(tmp_path), store=store, backend=ScriptedBackend(["Lying down, sometimes."]))
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        # the pane is filled from the history's reader thread
        await wait_for(pilot, lambda: titles_shown(app) == ["Plan a trip to Lisbon", "Explain Python decorators",
                                                            "How do zebras sleep?"], 5, "the pane")
        await pilot.press("ctrl+f")
        assert app.focused.id == "history-search"
        await type_text(pilot, "standing")
        await wait_for(pilot, lambda: titles_shown(app) == ["How do zebras sleep?"], 5, "search results")
        await pilot.press("enter")  # submit the search: focus moves to the list
        await pilot.press("enter")  # open the highlighted hit
        await wait_for(pilot, lambda: app.conversation.wait_for_id() == ids[0], 5)
        texts = [(w.role, w.text) for w in app.chat_screen.chat.messages()]
        assert texts == [("user", "How do zebras sleep?"), ("assistant", "Standing up, mostly.")]
        # the conversation's settings came with it
        assert app.conversation.settings.system_prompt == "sys 0"
        assert app.conversation.settings.params.temperature == pytest.approx(0.1)
        assert app.conversation.settings.params.max_tokens == 9
        # the stats stored with the reply are shown
        reply = app.chat_screen.chat.last("assistant")
        assert "50.0 tok/s" in str(reply.query_one(".stats").render())
        # continuing it adds to the same conversation
        await send(pilot, app, "And giraffes?")
        conv = store.get_conversation(ids[0])
        assert [m.role for m in conv.messages] == ["user", "assistant", "user", "assistant"]
        assert conv.messages[-1].content == "Lying down, sometimes."
        assert titles_shown(app)[0] == "How do zebras sleep?" or app.chat_screen.history.query_text


async def test_rename_delete_and_export_from_the_pane(tmp_path: Path) -> None:
    store = HistoryStore()
    ids = fill(store)
    app = ChatApp(make_config(tmp_path), store=store, backend=ScriptedBackend(["General Kenobi."]))
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        listing = app.query_one("#history-list")
        listing.focus()
        listing.highlighted = 1  # "Explain Python decorators"
        await pilot.press("r")
        await pilot.pause()
        field = app.screen.query_one("#dialog-input")
        assert field.value == "Explain Python decorators"
        field.value = "Decorators [bold]101[/]"  # (typing costs ~0.2 s a key here; the key tests type)
        await pilot.press("enter")
        await pilot.pause()
        assert store.get_conversation(ids[1]).summary.title == "Decorators [bold]101[/]"
        await wait_for(pilot, lambda: "Decorators [bold]101[/]" in titles_shown(app), 5, "the new title")

        # export: the dialog proposes a path; .json gives JSON, anything else Markdown
        listing.focus()
        listing.highlighted = titles_shown(app).index("Decorators [bold]101[/]")
        await pilot.press("e")
        await pilot.pause()
        field = app.screen.query_one("#dialog-input")
        assert field.value.endswith(".md")
        out = tmp_path / "exported.json"
        field.value = str(out)
        await pilot.press("enter")
        await wait_for(pilot, lambda: exported(app, out), 5, "the export")  # written off the UI thread
        data = json.loads(out.read_text())
        assert "decorator wraps" in json.dumps(data)

        # delete asks first: "n" keeps it, "y" deletes it
        listing.focus()
        listing.highlighted = titles_shown(app).index("How do zebras sleep?")
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("n")
        await pilot.pause()
        assert len(store.list_conversations()) == 3
        await pilot.press("d")
        await pilot.pause()
        await pilot.press("y")
        await pilot.pause()
        assert [c.id for c in store.list_conversations()] == [ids[2], ids[1]]
        await wait_for(pilot, lambda: "How do zebras sleep?" not in titles_shown(app), 5, "the pane after the delete")

        # /export of the open conversation writes Markdown
        app.query_one("#prompt").focus()
        await send(pilot, app, "Hello there")
        md = tmp_path / "chat.md"
        app.query_one("#prompt").load_text(f"/export {md}")
        await pilot.press("enter")
        await wait_for(pilot, lambda: exported(app, md), 5, "the /export")
        text = md.read_text()
        assert "Hello there" in text and "General Kenobi." in text and not text.lstrip().startswith("{")


@pytest.mark.slow
async def test_new_conversation_and_continue_after_restart(tmp_path: Path, gemma_backend: Any) -> None:
    store = HistoryStore()
    fill(store)
    app = ChatApp(make_config(tmp_path), store=store, backend=gemma_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, app, "Remember the number 42")
        first = app.conversation.wait_for_id()
        await pilot.press("ctrl+n")
        await pilot.pause()
        assert not app.chat_screen.chat.messages() and app.conversation.wait_for_id() is None
        await wait_for(pilot, lambda: titles_shown(app)[:1] == ["Remember the number 42"], 5, "the pane")
    # "restart": a new app on a fresh store object, opened on the latest conversation
    store2 = HistoryStore()
    latest = store2.latest_conversation_id()
    assert latest == first
    app2 = ChatApp(make_config(tmp_path), store=store2, conversation_id=latest, backend=gemma_backend)
    async with app2.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app2)
        assert [w.text for w in app2.chat_screen.chat.query(UserMessage)] == ["Remember the number 42"]
        assert len(app2.chat_screen.chat.query(AssistantMessage)) == 1
        await send(pilot, app2, "What number?")
        assert app2.conversation.wait_for_id() == first
        assert len(store2.get_conversation(first).messages) == 4
        # the session sent the earlier turns too
        assert app2.conversation.last_plan.messages[0].content == "Remember the number 42"


def drawn_samples(message: GanMessage) -> tuple[str, tuple[str, ...], bytes] | None:
    """The GAN samples' picture (its mode, its characters and the pixels they show) once its
    widget is mounted and laid out (it redraws for its width), else None."""
    views = list(message.query("GanSamplesView"))
    if len(views) != 1 or not views[0].is_mounted or views[0].content_size.width <= 0:
        return None
    art = views[0].art
    return (art.mode, tuple(art.chars), art.expand().tobytes()) if art.chars else None


async def test_gan_item_is_saved_and_rerendered(tmp_path: Path) -> None:
    store = HistoryStore()
    app = ChatApp(make_config(tmp_path), store=store, backend=ScriptedBackend(["unused"]))
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        await type_text(pilot, "/gan 3 4")
        await pilot.press("enter")
        await pilot.pause()
        items = list(app.chat_screen.chat.query(GanMessage))
        assert len(items) == 1
        meta = items[0].meta
        await wait_for(pilot, lambda: drawn_samples(items[0]) is not None, 10, "the samples drawn")
        await pilot.pause()  # a resize the layout caused, handled
        first_render = drawn_samples(items[0])
        assert first_render is not None and any(row.strip() for row in first_render[1]), "samples are drawn"
        assert meta["label"] == 3 and meta["n"] == 4 and isinstance(meta["seed"], int) and meta["checkpoint"]
        cid = app.conversation.wait_for_id()
    conv = HistoryStore().get_conversation(cid)
    assert [(m.kind, m.meta) for m in conv.messages] == [("gan", meta)]
    app2 = ChatApp(make_config(tmp_path), store=HistoryStore(), conversation_id=cid,
                   backend=ScriptedBackend(["unused"]))
    async with app2.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app2)
        again = list(app2.chat_screen.chat.query(GanMessage))
        assert len(again) == 1 and again[0].meta == meta
        await wait_for(pilot, lambda: drawn_samples(again[0]) is not None, 10, "the samples drawn again")
        await pilot.pause()
        # same checkpoint, seed, label and n: the same picture as before the restart
        assert drawn_samples(again[0]) == first_render
        assert app2.conversation.messages == []  # not part of what the model is sent
        await pilot.press("ctrl+g")  # the GAN screen opens over the chat, Esc comes back
        await wait_for(pilot, lambda: type(app2.screen).__name__ == "GanScreen", 10, "the GAN screen")
        await pilot.press("escape")
        await wait_for(pilot, lambda: type(app2.screen).__name__ != "GanScreen", 10, "the chat again")
