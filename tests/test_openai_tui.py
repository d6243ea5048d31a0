"""The TUI on the openai backend: the real app (App.run_test) talking to a loopback HTTP
server of ours, for what a real inference server will not do on demand (refuse, 429, go
silent). Failures must show as messages, never crash the app or leave it stuck.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path
from typing import Any

import pytest

from aigc_chat.config import Config
from aigc_chat.tui.app import ChatApp
from aigc_chat.tui.chat_view import AssistantMessage, NoticeMessage
from tests.fault_server import KEY, KEY_ENV, FaultServer, chunk, free_port
from tests.tui_driver import wait_for

pytestmark = pytest.mark.asyncio

SIZE = (100, 32)


def config(tmp: Path, url: str, model: str = "") -> Config:
    cfg = Config(path=tmp / "config.toml", backend="openai", model=model)
    cfg.backends["openai"] = {"base_url": url, "api_key_env": KEY_ENV, "read_timeout": 60.0}
    cfg.generation = cfg.generation.with_updates(max_tokens=32)
    return cfg


async def send(pilot: Any, app: ChatApp, text: str) -> None:
    app.query_one("#prompt").focus()
    await pilot.press(*["space" if ch == " " else ch for ch in text])
    await pilot.press("enter")


def notices(app: ChatApp) -> list[str]:
    return [n.message for n in app._notifications]


def screen_text(app: ChatApp) -> str:
    return "\n".join(strip.text for strip in app.screen._compositor.render_strips())


async def test_refused_connection_is_a_message(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    url = f"http://127.0.0.1:{free_port()}/v1"
    app = ChatApp(config(tmp_path, url))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.chat_screen.chat_state.phase == "load failed", what="the load to fail")
        error = app.chat_screen.chat_state.load_error
        assert error and "connection refused" in error and url in error
        await wait_for(pilot, lambda: any("connection refused" in m for m in notices(app)), what="the message")
        assert app.query(NoticeMessage)  # and a notice in the chat saying what to do
        assert all(KEY not in m for m in notices(app))


async def test_models_offered_reply_streams_and_429_is_a_message(
    tmp_path: Path, server: FaultServer, monkeypatch: pytest.MonkeyPatch,
) -> None:
    monkeypatch.setenv(KEY_ENV, KEY)
    server.chat = lambda h, body: h.sse([chunk("Hello"), chunk(" from"), chunk(" the server"), chunk(None, "stop")])
    app = ChatApp(config(tmp_path, server.url))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.chat_screen.chat_state.phase == "idle", what="the backend to load")
        assert app.conversation.backend is not None and app.conversation.backend.info().model == "m1"
        await pilot.press("f3")  # the settings pane offers the server's models
        await wait_for(pilot, lambda: app.chat_screen.settings_pane is not None, what="the settings pane")
        await wait_for(pilot, lambda: "m1, m2" in str(app.query_one("#set-model-list").render()),
                       what="the model list in the settings pane")
        await pilot.press("f3")
        await send(pilot, app, "hi")
        screen = app.chat_screen
        await wait_for(pilot, lambda: screen.chat_state.phase == "idle" and screen.chat.last("assistant") is not None
                       and app.conversation.messages[-1].role == "assistant", what="the reply")
        reply = app.chat_screen.chat.last("assistant")
        assert isinstance(reply, AssistantMessage) and reply.text == "Hello from the server"
        server.chat = lambda h, body: h.status(429, {"error": {"message": "slow down"}}, {"Retry-After": "3"})
        await send(pilot, app, "again")
        await wait_for(pilot, lambda: any("429" in m for m in notices(app)), what="the 429 message")
        await wait_for(pilot, lambda: app.chat_screen.chat_state.phase == "idle", what="idle after the error")
        assert all(KEY not in m for m in notices(app))
        assert server.auth[-1] == f"Bearer {KEY}"


async def test_escape_stops_a_silent_server_at_once(tmp_path: Path, server: FaultServer) -> None:
    sent = threading.Event()

    def chat(h: Any, body: dict) -> None:
        h.sse_start()
        h.sse_send(chunk("partial"))
        sent.set()
        h.stall_until_client_leaves()

    server.chat = chat
    cfg = config(tmp_path, server.url, "m2")
    cfg.tui["stream_interval_ms"] = 0  # every piece drawn at once: "partial" on screen means received
    app = ChatApp(cfg)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.chat_screen.chat_state.phase == "idle", what="the backend to load")
        await send(pilot, app, "hi")
        await wait_for(pilot, lambda: app.chat_screen.chat_state.phase == "generating", what="generating")
        await wait_for(pilot, sent.is_set, what="the first chunk")
        await wait_for(pilot, lambda: (r := app.chat_screen.chat.last("assistant")) is not None and r.text == "partial",
                       what="the first chunk on screen")
        await pilot.press("escape")
        t0 = time.monotonic()
        await wait_for(pilot, lambda: app.chat_screen.chat_state.phase == "idle", timeout=10, what="idle after Esc")
        assert time.monotonic() - t0 < 10  # the read timeout is 60 s: Esc did not wait for it
        reply = app.chat_screen.chat.last("assistant")
        assert isinstance(reply, AssistantMessage) and reply.text == "partial"
        assert reply.finish_reason == "cancelled", (notices(app), screen_text(app))
        assert server.disconnected.wait(10), "the server never saw the client leave"
