"""Attaching files in the TUI (real Textual pilot, real llama.cpp counting the tokens, real
SQLite): /file with Tab completion, the chip, removing it, a pasted path, what is sent and
stored, and files refused before anything is stored."""

from __future__ import annotations

from pathlib import Path

import pytest

from aigc_chat.history_store import HistoryStore
from aigc_chat.loader import load_backend
from aigc_chat.tui.app import ChatApp
from aigc_chat.tui.chat_view import UserMessage
from tests.tiny_gguf import write_chain_gguf
from tests.tui_driver import SIZE, make_config, screen_text, send, wait_for, wait_idle

pytestmark = [pytest.mark.asyncio]


@pytest.fixture
def chain_backend(tmp_path: Path):
    from aigc_chat.config import Config

    path = write_chain_gguf(tmp_path / "chain.gguf", list("Sure."))
    backend = load_backend(Config(path=tmp_path / "none.toml", model=str(path)))
    yield backend
    backend.close()


async def attach(pilot, app: ChatApp, command: str) -> None:
    prompt = app.query_one("#prompt")
    prompt.focus()
    prompt.load_text(command)
    await pilot.press("enter")


async def test_attach_complete_remove_and_send(tmp_path: Path, chain_backend, monkeypatch) -> None:
    monkeypatch.chdir(tmp_path)
    (tmp_path / "pelican_notes.txt").write_text("Pelicans fish with their pouch.\n")
    (tmp_path / "heron.md").write_text("Herons wait.\n")
    app = ChatApp(make_config(tmp_path, max_tokens=8), store=HistoryStore(), backend=chain_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        prompt = app.query_one("#prompt")
        prompt.focus()
        prompt.load_text("/file pel")
        prompt.move_cursor(prompt.document.end)
        await pilot.press("tab")  # completes the path
        assert prompt.text == "/file pelican_notes.txt"
        await pilot.press("enter")
        bar = app.chat_screen.files_bar
        await wait_for(pilot, lambda: len(bar.files) == 1, 20, "the chip")
        assert bar.files[0].tokens and "pelican_notes.txt" in screen_text(app) and "tokens" in screen_text(app)
        await attach(pilot, app, "/file heron.md")
        await wait_for(pilot, lambda: len(bar.files) == 2, 20, "the second chip")
        bar.focus()
        bar.highlighted = 1
        await pilot.press("x")  # removed before sending
        assert [f.name for f in bar.files] == ["pelican_notes.txt"]
        reply = await send(pilot, app, "What is in it?")
        assert reply.text == "Sure." and bar.files == [] and not bar.display
        (user,) = app.chat_screen.chat.query(UserMessage)
        assert [f.name for f in user.files] == ["pelican_notes.txt"]
        sent = app.conversation.messages[0].content
        assert "File `pelican_notes.txt`" in sent and "Pelicans fish" in sent and sent.endswith("What is in it?")
        cid = app.conversation.wait_for_id()
    with HistoryStore(readonly=True) as s:
        msg = s.get_conversation(cid).messages[0]
    assert msg.content == "What is in it?"
    stored = [(f.name, f.content) for f in msg.attachments]
    assert stored == [("pelican_notes.txt", "Pelicans fish with their pouch.\n")]


async def test_a_pasted_path_attaches_and_a_reopened_message_shows_its_files(tmp_path: Path,
                                                                            chain_backend) -> None:
    f = tmp_path / "dropped file.txt"
    f.write_text("dropped\n")
    app = ChatApp(make_config(tmp_path, max_tokens=8), store=HistoryStore(), backend=chain_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        app.query_one("#prompt").focus()
        from textual import events

        app.query_one("#prompt").post_message(events.Paste(f"'{f}'"))
        bar = app.chat_screen.files_bar
        await wait_for(pilot, lambda: len(bar.files) == 1, 20, "the pasted file's chip")
        assert app.query_one("#prompt").text == ""  # the path was not typed into the message
        await send(pilot, app, "ok")
        cid = app.conversation.wait_for_id()
    app2 = ChatApp(make_config(tmp_path, max_tokens=8), store=HistoryStore(), conversation_id=cid,
                   backend=chain_backend)
    async with app2.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app2)
        await wait_for(pilot, lambda: bool(app2.chat_screen.chat.query(UserMessage)), 10, "the conversation")
        (user,) = app2.chat_screen.chat.query(UserMessage)
        assert [x.name for x in user.files] == [str(f)] and "📎" in screen_text(app2)
        assert app2.conversation.messages[0].content.startswith(f"File `{f}`")  # sent again with it


async def test_files_refused_leave_nothing_behind(tmp_path: Path, chain_backend) -> None:
    (tmp_path / "bin.dat").write_bytes(b"\x00\x01")
    (tmp_path / "long.txt").write_text("pelican " * 400)  # more than the chain model's 256 tokens
    app = ChatApp(make_config(tmp_path, max_tokens=8), store=HistoryStore(), backend=chain_backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        for name, why in (("bin.dat", "binary file"), ("long.txt", "tokens, more than the"),
                          ("missing.txt", "not found")):
            await attach(pilot, app, f"/file {tmp_path / name}")
            await wait_for(pilot, lambda why=why: any(why in n.message for n in app._notifications), 20, why)
        assert app.chat_screen.files_bar.files == []
    with HistoryStore(readonly=True) as s:
        assert s.list_conversations() == []
