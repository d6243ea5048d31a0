"""Keys, help and the command palette come from one table (tui/keymap.py), and the slash
commands are in the palette too (tui/commands.py): real app under Textual's pilot."""

from __future__ import annotations

from pathlib import Path

import pytest

from aigc_chat.tui import keymap, slash
from aigc_chat.tui.app import ChatApp
from aigc_chat.tui.commands import SlashProvider
from aigc_chat.tui.help_text import help_markdown
from tests.scripted_backend import ScriptedBackend
from tests.tui_driver import SIZE, make_config, send, wait_for, wait_idle

pytestmark = [pytest.mark.asyncio]


async def test_every_key_of_the_table_is_bound_helped_and_offered(tmp_path: Path) -> None:
    app = ChatApp(make_config(tmp_path), backend=ScriptedBackend(["ok"]))
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        bound = {key: active.binding.action for key, active in app.active_bindings.items()}
        titles = {c.title: c for c in app.get_system_commands(app.screen)}
        help_text = help_markdown()
        for key in keymap.KEYS:
            assert f"`{key.label}`" in help_text and key.help in help_text
            if key.action and key.keys:
                assert bound[key.keys.split(",")[0]] == keymap.bound_action(key)
                target = app if key.action in keymap.APP_ACTIONS else app.chat_screen
                assert hasattr(target, f"action_{key.action}"), key
            if key.palette:
                assert key.palette in titles
        # a palette entry runs what its key runs: "New conversation" clears the chat
        await send(pilot, app, "hi")
        app.call_later(titles["New conversation"].callback)  # as the palette runs it
        await wait_for(pilot, lambda: app.chat_screen.chat.messages() == [], 10, "a new conversation")


async def test_slash_commands_are_in_the_palette(tmp_path: Path) -> None:
    app = ChatApp(make_config(tmp_path), backend=ScriptedBackend(["ok"]))
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        provider = SlashProvider(app.screen)
        found = [hit async for hit in provider.discover()]
        assert [str(h.display) for h in found] == [f"/{n} {s}".rstrip() for n, (s, _) in slash.COMMANDS.items()]
        hits = [hit async for hit in provider.search("temp")]
        assert hits and str(hits[0].text).startswith("/temp")
        # one that needs an argument goes into the message box, to be finished there
        hits[0].command()
        await pilot.pause()
        assert app.chat_screen.prompt.text == "/temp "
        # one that takes none runs at once
        await send(pilot, app, "hello")
        (new,) = [h async for h in provider.search("/new")]
        new.command()
        await wait_for(pilot, lambda: app.chat_screen.chat.messages() == [], 10, "/new to run")
