"""Driving the real TUI under Textual's pilot: the helpers every TUI test module uses.

Waits are for a condition (the app idle, a reply on screen), never for a duration."""

from __future__ import annotations

import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aigc_chat.config import Config
from aigc_chat.tui.app import ChatApp
from aigc_chat.tui.chat_view import AssistantMessage

SIZE = (100, 32)


def make_config(tmp: Path, **gen: Any) -> Config:
    cfg = Config(path=tmp / "config.toml")
    params = {"temperature": 0.0, "max_tokens": 12, "seed": 1}
    params.update(gen)
    cfg.generation = cfg.generation.with_updates(**params)
    return cfg


async def wait_for(pilot: Any, cond: Callable[[], bool], timeout: float = 60.0, what: str = "") -> None:
    """Let the app run until cond() holds (pilot.pause yields to the event loop)."""
    deadline = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > deadline:
            app = pilot.app
            notes = [n.message for n in app._notifications]
            raise AssertionError(f"timed out waiting for {what or cond}; state {app.chat_screen.chat_state.phase!r}, "
                                 f"notifications {notes}\n{screen_text(app)}")
        await pilot.pause(0.05)


async def wait_idle(pilot: Any, app: ChatApp, timeout: float = 120.0, *, after: int | None = None) -> None:
    """Wait until the chat is settled (ChatState.settled: idle or without a model, nothing
    queued, no submission or turn being handled, nothing being opened). `after`: the count of
    submissions before the caller pressed Enter (ChatState.submitted); the wait then also
    lasts until that Enter has reached the screen, so an idle seen before the reply started
    is not taken for its end. Without it, the events pending now are handled first (a pause
    without a delay waits for them), and the state must read settled after them again."""
    state = app.chat_screen.chat_state
    if after is not None:
        await wait_for(pilot, lambda: state.submitted > after, timeout, "the message to reach the screen")
    while True:
        await pilot.pause()
        await wait_for(pilot, lambda: state.settled, timeout, "the app to be idle")
        await pilot.pause()  # what the end of the turn posted (a queued message, the history) handled
        if state.settled:
            return


async def type_text(pilot: Any, text: str) -> None:
    """Type into the focused widget (each character a key press, spaces included)."""
    keys = ["space" if ch == " " else ch for ch in text]
    await pilot.press(*keys)


async def send(pilot: Any, app: ChatApp, text: str) -> AssistantMessage:
    """Put text in the input and press Enter (typing is exercised by the key tests; a key
    press per character costs ~0.2 s of pilot round trips here)."""
    prompt = app.query_one("#prompt")
    prompt.focus()
    prompt.load_text(text)
    before = app.chat_screen.chat_state.submitted
    await pilot.press("enter")
    await wait_idle(pilot, app, after=before)
    reply = app.chat_screen.chat.last("assistant")
    assert isinstance(reply, AssistantMessage)
    return reply


def screen_text(app: ChatApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def settle_screen(pilot: Any, app: ChatApp, rows: int) -> None:
    """Wait until the app has done what it does by itself after starting, for a snapshot or an
    assertion on the whole screen: idle (the model loaded, the conversation opened), the
    history pane filled with `rows` conversations (it reads them on a thread after the first
    paint), and the prompt blurred (no blinking cursor in a picture), all of it drawn."""
    await wait_idle(pilot, app)
    pane = app.chat_screen.history
    await wait_for(pilot, lambda: pane.row_count() == rows, 10, f"{rows} conversations in the history pane")
    app.query_one("#prompt").blur()
    await pilot.pause()  # the blur's messages handled (a pause without a delay waits for them)
