"""A broken history never blocks an answer nor freezes the screen (pilot, real SQLite).

Each fault is a real one: another process (a `sqlite3` shell) holding the write lock, SQLite's
own "database or disk is full" (PRAGMA max_page_count), garbage bytes for a file, a
read-only file or directory. The replies come from the scripted backend (fast); the real
model in a real terminal is tests/test_e2e_history_faults.py.
"""

from __future__ import annotations

import argparse
from pathlib import Path
from typing import Any

import pytest

from aigc_chat.history import HistoryError
from aigc_chat.history_store import HistoryStore, default_path
from aigc_chat.launch import open_history
from aigc_chat.tui.app import ChatApp
from aigc_chat.tui.launch import history_note
from tests.history_faults import LockHolder, fill_up, read_only
from tests.scripted_backend import ScriptedBackend
from tests.tui_driver import SIZE, make_config, screen_text, wait_for, wait_idle

pytestmark = [pytest.mark.asyncio]

LOCK_WAIT_MS = 5000  # the store's busy timeout here (15 s in real use): the time a write waits


def _open_store(a: argparse.Namespace) -> tuple[Any, str]:
    """What run_tui does: the shared opening rules, and the TUI's words for them."""
    opening = open_history(a)
    return opening.store, history_note(opening)


def notes(app: ChatApp, text: str) -> list[str]:
    return [n.message for n in app._notifications if text in n.message]


def args(**kw) -> argparse.Namespace:
    base = {"no_history": False, "conversation": None, "continue_": False}
    base.update(kw)
    return argparse.Namespace(**base)


async def send_and_wait(pilot, app: ChatApp, text: str, reply: str) -> None:
    prompt = app.query_one("#prompt")
    prompt.focus()
    prompt.load_text(text)
    await pilot.press("enter")
    screen = app.chat_screen
    await wait_for(pilot, lambda: screen.chat_state.phase == "idle" and (r := screen.chat.last("assistant")) is not None
                   and r.text == reply and r.finish_reason == "stop", 30, "the answer")


async def test_a_locked_history_does_not_block_the_answer_nor_the_screen(tmp_path: Path, isolated_dirs) -> None:
    HistoryStore().close()  # an existing, healthy history
    store = HistoryStore()
    store.connection.execute(f"PRAGMA busy_timeout = {LOCK_WAIT_MS}")  # how long a write waits
    app = ChatApp(make_config(tmp_path), store=store, backend=ScriptedBackend(["Hello", " there"]))
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        with LockHolder(default_path()):
            await send_and_wait(pilot, app, "hi", "Hello there")
            # the answer is here while the history's first write still waits for the lock
            writer = app.conversation.history.writer
            assert writer.pending() > 0, "the answer should not have waited for the history"
            prompt = app.query_one("#prompt")
            await pilot.press("x", "y")  # the screen takes keys meanwhile
            assert prompt.text == "xy" and writer.pending() > 0
            # after the busy timeout: told once, marked in the status bar and the pane
            await wait_for(pilot, lambda: notes(app, "history not saved"), 30, "the notice")
            (note,) = notes(app, "history not saved")
            assert "database is locked by another process" in note and str(default_path()) in note
            assert "history off │ idle" in screen_text(app)
            assert app.chat_screen.history.border_title == "History (not saving)"
            # the conversation goes on in memory; nothing more is tried, nobody is told twice
            await send_and_wait(pilot, app, "again", "Hello there")
            assert [m.content for m in app.conversation.messages] == ["hi", "Hello there", "again", "Hello there"]
            assert writer.pending() == 0 and len(notes(app, "history not saved")) == 1
    with HistoryStore() as s:  # nothing half-saved after the lock went away
        assert s.list_conversations() == []


async def test_a_full_disk_does_not_stop_the_answer_and_is_said_once(tmp_path: Path, isolated_dirs) -> None:
    store = HistoryStore()
    fill_up(store)  # SQLITE_FULL for real: not one more row fits
    before = len(store.list_conversations())
    app = ChatApp(make_config(tmp_path), store=store, backend=ScriptedBackend(["Fine", "."]))
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        await send_and_wait(pilot, app, "hello", "Fine.")
        await wait_for(pilot, lambda: notes(app, "history not saved"), 30, "the notice")
        await send_and_wait(pilot, app, "and again", "Fine.")
        assert len(notes(app, "history not saved")) == 1
        assert "history not saved: disk is full" in notes(app, "history not saved")[0]
        assert "history off" in screen_text(app)
    with HistoryStore() as s:
        assert len(s.list_conversations()) == before
        assert s.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


async def test_a_corrupt_history_starts_with_a_notice_and_answers(tmp_path: Path, isolated_dirs) -> None:
    path = default_path()
    path.parent.mkdir(parents=True)
    garbage = b"this is not a database\x00\xff" * 500
    path.write_bytes(garbage)
    store, note = _open_store(args())  # what run_tui does
    assert store is None
    assert str(path) in note and "not a history database" in note and "--no-history" in note
    app = ChatApp(make_config(tmp_path), store=store, backend=ScriptedBackend(["Still", " here"]),
                  history_note=note)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        assert len(notes(app, "History is off")) == 1
        pane_line = str(app.query_one("#history-count").render())
        assert "history is off: it cannot be opened" in pane_line and app.chat_screen.history.row_count() == 0
        await send_and_wait(pilot, app, "hi", "Still here")
        assert "history off │ idle" in screen_text(app)
    assert path.read_bytes() == garbage  # never "repaired" over the user's file
    # --continue needs the history: the one line the one-shot mode gives too
    with pytest.raises(HistoryError, match="not a history database"):
        _open_store(args(continue_=True))


@pytest.mark.parametrize("what", ["file", "directory"])
async def test_a_read_only_history_opens_shows_the_pane_and_answers(tmp_path: Path, isolated_dirs, what) -> None:
    with HistoryStore() as s:
        cid = s.create_conversation("Pelicans", model="m.gguf", backend="llama")
        s.add_message(cid, "user", "How do pelicans fish?")
        s.add_message(cid, "assistant", "With their pouch.", finish_reason="stop")
    path = default_path()
    with read_only(path if what == "file" else path.parent):
        store, note = _open_store(args())
        assert store is not None and store.readonly
        assert "History is read-only" in note and str(path) in note
        app = ChatApp(make_config(tmp_path), store=store, backend=ScriptedBackend(["Sure", "."]),
                      history_note=note)
        async with app.run_test(size=SIZE) as pilot:
            await wait_idle(pilot, app)
            pane = app.chat_screen.history
            await wait_for(pilot, lambda: [t for _, t in pane.rows()] == ["Pelicans"], 10, "the pane")
            assert len(notes(app, "History is read-only")) == 1
            assert app.chat_screen.history.border_title == "History (not saving)"
            await send_and_wait(pilot, app, "hi", "Sure.")
            # an old conversation opens (read on the reader thread) and can be continued in memory
            app.query_one("#history-list").focus()
            await pilot.press("enter")
            await wait_for(pilot, lambda: app.conversation.known_id == cid
                           and len(app.chat_screen.chat.messages()) == 2, 10, "the conversation to open")
            await send_and_wait(pilot, app, "And herons?", "Sure.")
            assert len(app.conversation.messages) == 4
            assert len(notes(app, "History")) == 1  # told once, at the start
    with HistoryStore() as s:  # nothing was written
        assert [len(s.get_conversation(c.id).messages) for c in s.list_conversations()] == [2]
