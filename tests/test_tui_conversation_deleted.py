"""`aigc-chat history delete N` in another shell while the TUI shows N: the TUI says so in
the chat, offers to keep the chat as a new conversation, and saving stays on (it used to stop
for the rest of the session with "History not saved: no message 49"). A real SQLite file,
deleted from outside by the real CLI."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from aigc_chat.config import Config
from aigc_chat.conversation import Conversation
from aigc_chat.history_service import HistoryService
from aigc_chat.history_store import HistoryStore
from aigc_chat.tui.app import ChatApp
from tests.conftest import run_cli
from tests.scripted_backend import ScriptedBackend
from tests.tui_driver import SIZE, make_config, screen_text, send, wait_for, wait_idle


def stored() -> list[tuple[int, list[str]]]:
    with HistoryStore(readonly=True) as s:
        return [(c.id, [m.content for m in s.get_conversation(c.id).messages]) for c in s.list_conversations()]


@pytest.mark.asyncio
async def test_a_conversation_deleted_elsewhere_can_be_kept_and_saving_goes_on(cli: str, tmp_path: Path) -> None:
    app = ChatApp(make_config(tmp_path), store=HistoryStore(), backend=ScriptedBackend(["Fine."], model="s.gguf"))
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, app, "first question")
        old = app.conversation.wait_for_id()
        assert old is not None and stored() == [(old, ["first question", "Fine."])]
        r = run_cli(cli, "history", "delete", str(old))  # another shell
        assert r.returncode == 0, r.stderr
        assert stored() == []

        await send(pilot, app, "second question")  # its writes find the conversation gone
        await wait_for(pilot, lambda: type(app.screen).__name__ == "ConfirmDialog", 10, "the offer")
        assert f"Conversation {old} was deleted elsewhere" in screen_text(app)
        await pilot.press("y")
        await wait_for(pilot, lambda: len(stored()) == 1 and len(stored()[0][1]) == 4, 10, "the chat kept")
        new, contents = stored()[0]
        assert new > old and contents == ["first question", "Fine.", "second question", "Fine."]
        await wait_for(pilot, lambda: app.conversation.known_id == new, 10, "the chat is the new one")

        # saving never stopped: the next turn goes into the new conversation
        assert app.conversation.saving
        await send(pilot, app, "third question")
        await wait_for(pilot, lambda: len(stored()[0][1]) == 6, 10, "the next turn saved")
        notes = " ".join(n.message for n in app._notifications)
        assert "history not saved" not in notes.lower(), notes
        assert "history off" not in screen_text(app)
        notices = [str(w.render()) for w in app.chat_screen.chat.query("NoticeMessage")]
        assert any("deleted outside this window" in text for text in notices), notices


def test_the_core_without_a_screen_warns_once_and_keeps_saving() -> None:
    """One-shot (`--continue` while another shell deletes the conversation): one warning, the
    same words; the core can also keep the chat as a new conversation itself."""
    told: list[str] = []
    conv = Conversation(Config(path=Path(os.environ["AIGC_CHAT_CONFIG"])), HistoryService(HistoryStore()),
                        on_history_failure=lambda exc: told.append(str(exc)))
    conv.attach_backend(ScriptedBackend(["Fine."]))
    conv.begin("send", "one").consume()
    old = conv.wait_for_id()
    with HistoryStore() as other:
        other.delete_conversation(old)
    conv.begin("send", "two").consume()
    conv.set_params(top_k=3)
    assert conv.history.writer is not None and conv.history.writer.wait(10)
    assert told == [f"conversation {old} was deleted (aigc-chat history delete, or another window) while this ran"]
    assert conv.saving
    conv.keep_as_new()
    new = conv.wait_for_id()
    assert new is not None and new > old and conv.history.writer.wait(10)
    assert stored() == [(new, ["one", "Fine.", "two", "Fine."])]
    conv.close()
