"""Every key binding in the TUI names an action that exists where it is looked up: a binding
to a moved action does nothing at all when pressed, with no error (`n` in the history list was
bound to the app's new_conversation after the action moved to the chat screen)."""

from __future__ import annotations

import importlib
import inspect
import pkgutil
from pathlib import Path

import pytest
from textual.actions import parse
from textual.binding import Binding
from textual.dom import DOMNode

import aigc_chat.tui
from aigc_chat.tui.app import ChatApp
from aigc_chat.tui.chat_screen import ChatScreen
from tests.scripted_backend import ScriptedBackend
from tests.tui_driver import SIZE, make_config, send, wait_for, wait_idle


def _tui_classes() -> list[type[DOMNode]]:
    out: list[type[DOMNode]] = []
    for info in pkgutil.iter_modules(aigc_chat.tui.__path__):
        try:
            module = importlib.import_module(f"aigc_chat.tui.{info.name}")
        except ImportError:  # an optional part (the GAN screen without torch)
            continue
        for _, cls in inspect.getmembers(module, inspect.isclass):
            if issubclass(cls, DOMNode) and cls.__module__ == module.__name__:
                out.append(cls)
    return out


def test_every_binding_names_an_action_that_exists() -> None:
    missing = []
    classes = _tui_classes()
    assert ChatScreen in classes
    for cls in classes:
        for binding in cls.__dict__.get("BINDINGS", []):
            if not isinstance(binding, Binding):
                continue
            where, name, _ = parse(binding.action)
            target = {"app": ChatApp, "screen": ChatScreen, "": cls}.get(where)
            if target is None or not hasattr(target, f"action_{name}"):
                missing.append(f"{cls.__name__}: {binding.key} -> {binding.action}")
    assert missing == []


@pytest.mark.asyncio
async def test_n_in_the_history_list_starts_a_new_conversation(tmp_path: Path) -> None:
    app = ChatApp(make_config(tmp_path), backend=ScriptedBackend(["ok"]))
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, app, "hello")
        assert app.chat_screen.chat.messages()
        app.chat_screen.query_one("#history-list").focus()
        await pilot.press("n")
        await wait_for(pilot, lambda: app.chat_screen.chat.messages() == [], 10, "a new conversation")
