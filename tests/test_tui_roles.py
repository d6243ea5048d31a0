"""Pilot tests of the role picker (F8 / the palette's "New conversation with a role"): the real
app on a real config file with `[roles.NAME]` tables, real SQLite history, and a real llama.cpp
load when the role names a model (a tiny GGUF whose greedy answer is known)."""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Input, Label, Static

from aigc_chat.config import load_config
from aigc_chat.history_store import HistoryStore
from aigc_chat.loader import model_settings_for
from aigc_chat.tui.app import ChatApp
from aigc_chat.tui.role_picker import RolePicker
from tests.scripted_backend import ScriptedBackend
from tests.tiny_gguf import write_chain_gguf
from tests.tui_driver import SIZE, send, wait_for, wait_idle

pytestmark = [pytest.mark.asyncio]

PIRATE = "You are a pirate. Answer like one."


def config(dirs: dict[str, Path], extra: str = ""):
    path = dirs["config"]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('system_prompt = "Plain."\n[generation]\ntemperature = 0.5\n\n'
                    f'[roles.pirate]\ndescription = "arr"\nsystem_prompt = "{PIRATE}"\n'
                    f"temperature = 0.9\ntop_k = 3\n{extra}", encoding="utf-8")
    return model_settings_for(load_config())  # as `aigc-chat` starts


def role_notes(app: ChatApp) -> int:
    """How many "new conversation as ..." notes the app has shown (the last step of a pick)."""
    return sum(1 for n in app._notifications if n.title == "Role")


async def pick(pilot, app: ChatApp, text: str) -> None:
    notes = role_notes(app)
    await pilot.press("f8")
    await wait_for(pilot, lambda: isinstance(app.screen, RolePicker), 10, "the role picker")
    picker = app.screen
    assert isinstance(picker, RolePicker)
    picker.query_one("#role-picker-filter", Input).value = text
    await wait_for(pilot, lambda: len(picker.shown) == 1, 10, "the filter")
    await pilot.press("enter")
    await wait_for(pilot, lambda: not isinstance(app.screen, RolePicker), 10, "the picker to close")
    await wait_for(pilot, lambda: role_notes(app) > notes, 10, "the role's new conversation")


async def test_picking_a_role_starts_a_conversation_with_its_settings(isolated_dirs: dict[str, Path]) -> None:
    backend = ScriptedBackend(["Arr."])
    app = ChatApp(config(isolated_dirs), store=HistoryStore(), backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, app, "before")
        conv = app.conversation
        assert (conv.settings.role, conv.settings.system_prompt) == ("", "Plain.")
        await pick(pilot, app, "pirate")
        assert app.chat_screen.chat.messages() == []  # a new conversation
        s = conv.settings
        assert (s.role, s.system_prompt, s.params.temperature, s.params.top_k) == ("pirate", PIRATE, 0.9, 3)
        assert conv.config.source("temperature") == "role pirate"
        # the settings pane: the role at the top, and `role pirate` beside what it set
        await pilot.press("f3")
        await wait_for(pilot, lambda: app.chat_screen.settings_pane is not None, 10, "the settings pane")
        pane = app.chat_screen.settings_pane
        assert pane is not None
        role_line = str(pane.query_one("#set-role", Static).render())
        assert role_line.startswith("Role pirate") and "system prompt, temperature, top k" in role_line
        assert str(pane.query_one("#lbl-temperature", Label).render()).endswith("· role pirate")
        assert str(pane.query_one("#lbl-top_k", Label).render()).endswith("· role pirate")
        assert str(pane.query_one("#lbl-system", Label).render()).endswith("· role pirate")
        assert str(pane.query_one("#lbl-min_p", Label).render()).endswith("· default")
        assert "role pirate │" in str(app.chat_screen.status.render())  # the role in effect, always in sight
        await send(pilot, app, "ahoy")
        assert backend.seen[-1][0].content == PIRATE  # what the model was sent
        # picking "no role" puts the config's own back
        await pick(pilot, app, "no role")
        assert (conv.settings.role, conv.settings.system_prompt, conv.settings.params.temperature) == (
            "", "Plain.", 0.5)
        assert not pane.query_one("#set-role", Static).display
    with HistoryStore() as store:
        stored = [store.get_conversation(c.id).settings for c in reversed(store.list_conversations())]
    assert [(d["role"], d["system_prompt"]) for d in stored] == [("", "Plain."), ("pirate", PIRATE)]


async def test_a_role_with_a_model_loads_it(isolated_dirs: dict[str, Path], tmp_path: Path) -> None:
    model = write_chain_gguf(tmp_path / "parrot.gguf", list("Sure."))
    app = ChatApp(config(isolated_dirs, f'model = "{model}"\n'), store=HistoryStore(),
                  backend=ScriptedBackend(["scripted"]))
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        await pick(pilot, app, "pirate")
        await wait_idle(pilot, app)
        conv = app.conversation
        assert (conv.settings.model, conv.settings.role) == (str(model), "pirate")
        await pilot.press("f3")
        await wait_for(pilot, lambda: app.chat_screen.settings_pane is not None, 10, "the settings pane")
        pane = app.chat_screen.settings_pane
        assert pane is not None and str(pane.query_one("#lbl-model", Label).render()).endswith("· role pirate")
        reply = await send(pilot, app, "hi")
        assert reply.text == "Sure."  # the role's model answered, on real llama.cpp
        assert conv.settings.params.top_k == 3
