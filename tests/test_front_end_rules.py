"""The start-up rules the two front ends used to disagree on, checked in each front end:
the TUI built exactly as `aigc-chat` builds it (tui/launch.build_app, real Textual pilot, real
SQLite) and the one-shot mode as the installed command on a real llama.cpp model (a tiny
GGUF whose greedy answer is known). The rules themselves: docs/history.md."""

from __future__ import annotations

import argparse
from pathlib import Path

import pytest

from aigc_chat.history_store import HistoryStore, default_path
from aigc_chat.tui.launch import build_app
from tests.conftest import run_cli
from tests.scripted_backend import ScriptedBackend
from tests.tiny_gguf import write_chain_gguf
from tests.tui_driver import SIZE, make_config, screen_text, send, wait_for, wait_idle

ANSWER = ["Sure", "."]


def flags(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = {"no_history": False, "continue_": False, "conversation": None,
                               "model": None, "backend": None, "system": None}
    base.update(kw)
    return argparse.Namespace(**base)


def saved_one() -> int:
    with HistoryStore() as s:
        cid = s.create_conversation("Pelicans", settings={"system_prompt": "stored system"})
        s.add_message(cid, "user", "How do pelicans fish?")
        s.add_message(cid, "assistant", "With their pouch.", finish_reason="stop")
    return cid


@pytest.fixture(scope="module")
def chain_model(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_chain_gguf(tmp_path_factory.mktemp("chain") / "chain.gguf", list("Sure."))


# -- the TUI ----------------------------------------------------------------------------------

@pytest.mark.asyncio
async def test_tui_continue_with_nothing_saved_starts_a_new_conversation(tmp_path: Path) -> None:
    app = build_app(make_config(tmp_path), flags(continue_=True), terminal_check=False,
                    backend=ScriptedBackend(ANSWER))
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        await wait_for(pilot, lambda: "starting a new one" in screen_text(app), 10, "the note")
        reply = await send(pilot, app, "hi")
        assert reply.text == "Sure."
    with HistoryStore() as s:
        assert [c.title for c in s.list_conversations()] == ["hi"]


@pytest.mark.asyncio
async def test_tui_no_history_continue_reads_the_conversation_and_writes_nothing(tmp_path: Path) -> None:
    cid = saved_one()
    before = default_path().read_bytes()
    backend = ScriptedBackend(ANSWER)
    app = build_app(make_config(tmp_path), flags(no_history=True, continue_=True), terminal_check=False,
                    backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        await wait_for(pilot, lambda: app.conversation.known_id == cid and len(app.chat_screen.chat.messages()) == 2,
                       10, "the conversation to open")
        await send(pilot, app, "And herons?")
        assert "history off" in screen_text(app)
    sent = [m.content for m in backend.seen[-1]]
    assert sent == ["stored system", "How do pelicans fish?", "With their pouch.", "And herons?"]
    assert default_path().read_bytes() == before


@pytest.mark.asyncio
async def test_tui_flags_win_over_the_stored_conversation(tmp_path: Path) -> None:
    saved_one()
    cfg = make_config(tmp_path).with_overrides(system_prompt="flag system")
    backend = ScriptedBackend(ANSWER)
    app = build_app(cfg, flags(continue_=True, system="flag system"), terminal_check=False, backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        await wait_for(pilot, lambda: len(app.chat_screen.chat.messages()) == 2, 10, "the conversation to open")
        await send(pilot, app, "And herons?")
    assert backend.seen[-1][0].content == "flag system"


# -- the one-shot mode -------------------------------------------------------------------------

def test_oneshot_continue_with_nothing_saved_starts_a_new_conversation(cli: str, chain_model: Path) -> None:
    r = run_cli(cli, "--model", str(chain_model), "--continue", "--prompt", "hi", timeout=120)
    assert r.returncode == 0 and r.stdout == "Sure.\n", r.stderr
    assert r.stderr == "aigc-chat: note: no saved conversation to continue; starting a new one\n"
    with HistoryStore() as s:
        assert [c.title for c in s.list_conversations()] == ["hi"]


def test_oneshot_no_history_continue_reads_the_conversation_and_writes_nothing(cli: str, chain_model: Path) -> None:
    saved_one()
    before = default_path().read_bytes()
    r = run_cli(cli, "--model", str(chain_model), "--no-history", "--continue", "--prompt", "And herons?",
                "--json", timeout=120)
    assert r.returncode == 0 and r.stderr == "", r.stderr
    assert default_path().read_bytes() == before


def test_oneshot_exports_are_private(cli: str, tmp_path: Path) -> None:
    cid = saved_one()
    out = tmp_path / "c.md"
    r = run_cli(cli, "history", "export", str(cid), "-o", str(out))
    assert r.returncode == 0, r.stderr
    assert out.stat().st_mode & 0o777 == 0o600
