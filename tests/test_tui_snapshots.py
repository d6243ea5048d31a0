"""Snapshots of the main screens at fixed sizes (pytest-textual-snapshot).

Deterministic by construction: the conversation is written to the store with fixed stats,
dates are pinned, and the backend is a scripted one whose status line (device, context)
does not depend on the machine (a real one would show "GPU" on a GPU box).
Update after an intended change with `pytest tests/test_tui_snapshots.py --snapshot-update`.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aigc_chat.history_store import HistoryStore
from aigc_chat.tui import history_pane
from aigc_chat.tui.app import ChatApp
from tests.scripted_backend import ScriptedBackend
from tests.tui_driver import make_config, screen_text, settle_screen, wait_for

REPLY = """Here is a decorator:

```python
def logged(fn):
    def wrapper(*a):
        print("calling", fn.__name__)
        return fn(*a)
    return wrapper
```

It prints **before** each call; `[bold]` stays literal."""


def build_app(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> ChatApp:
    monkeypatch.setattr(history_pane, "format_date", lambda ts: "2026-01-02")
    store = HistoryStore()
    for title in ("Plan a trip to Lisbon", "How do zebras sleep?"):
        cid = store.create_conversation(title, model="gemma-3-270m-q4_k_m.gguf", backend="llama")
        store.add_message(cid, "user", title)
        store.add_message(cid, "assistant", "Short answer.", finish_reason="stop", stats={"completion_tokens": 3})
    cid = store.create_conversation("Explain Python decorators", model="gemma-3-270m-q4_k_m.gguf", backend="llama")
    store.add_message(cid, "user", "Explain Python decorators with an example")
    store.add_message(cid, "assistant", REPLY, finish_reason="stop",
                      stats={"completion_tokens": 61, "time_to_first_token": 0.08, "decode_tokens_per_s": 71.5})
    backend = ScriptedBackend(["ok"], model="scripted.gguf")
    app = ChatApp(make_config(tmp_path), store=store, conversation_id=cid, backend=backend)
    return app


async def settle(pilot) -> None:
    await settle_screen(pilot, pilot.app, rows=3)


async def reply_focused(pilot) -> None:
    """The main state: the reply focused (its rule and header marked), its keys in the footer."""
    await settle(pilot)
    pilot.app.chat_screen.chat.last("assistant").focus()
    await wait_for(pilot, lambda: "Fork here" in screen_text(pilot.app).splitlines()[-1], 10, "the footer")


def test_main_screen_100x30(snap_compare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert snap_compare(build_app(tmp_path, monkeypatch), terminal_size=(100, 30), run_before=settle)


# One main state per size (issue 27): the panes sized by the terminal, the chat never under
# its minimum width (the history steps aside at 60 columns), focus and its keys seen.
@pytest.mark.parametrize("size", [(60, 20), (80, 24), (120, 36), (200, 50)], ids=lambda s: f"{s[0]}x{s[1]}")
def test_main_screen(snap_compare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, size: tuple[int, int]) -> None:
    assert snap_compare(build_app(tmp_path, monkeypatch), terminal_size=size, run_before=reply_focused)


def test_settings_pane(snap_compare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def open_settings(pilot) -> None:
        await settle(pilot)
        await pilot.press("f2", "f3")
        app = pilot.app
        await wait_for(pilot, lambda: not app.chat_screen.history.display, 10, "the history pane hidden")
        await wait_for(pilot, lambda: app.focused is not None and app.focused.id == "set-temperature", 10,
                       "the settings pane, its first field focused")
        app.set_focus(None)
        # The picture is of the pane from its top. Focusing the first field can scroll the
        # freshly mounted pane before its final layout (seen under load: 9 rows down).
        app.chat_screen.settings_pane.scroll_home(animate=False)
        await pilot.pause()

    assert snap_compare(build_app(tmp_path, monkeypatch), terminal_size=(100, 30), run_before=open_settings)


def test_help_screen(snap_compare, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    async def open_help(pilot) -> None:
        await settle(pilot)
        await pilot.press("f1")
        await wait_for(pilot, lambda: type(pilot.app.screen).__name__ == "HelpScreen", 10, "the help screen")

    assert snap_compare(build_app(tmp_path, monkeypatch), terminal_size=(100, 30), run_before=open_help)
