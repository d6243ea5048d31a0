"""The openai backend takes its cancel event through `_generate(messages, params, cancel)`,
against the real loopback HTTP server of tests/fault_server.py: a cancel while the server
is silent returns at once and the server sees the client leave."""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest

from aigc_chat.chat_types import Message
from aigc_chat.params import GenerationParams
from tests.fault_server import FaultServer, stall_after_first
from tests.fault_server import openai_backend as backend

HI = [Message("user", "hi")]
READ_TIMEOUT = 60.0  # what a missed cancel would wait for; every bound below is far under it


@pytest.fixture
def server() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        srv.chat = stall_after_first
        yield srv


def test_generate_itself_honours_the_cancel_it_is_given(server: FaultServer) -> None:
    """No ChatStream: the interface alone carries the event to the engine."""
    b = backend(server.url, "m1", read_timeout=READ_TIMEOUT)
    b.load()
    cancel = threading.Event()
    gen = b._generate(HI, GenerationParams(max_tokens=64), cancel)
    assert next(gen) == "first"
    timer = threading.Timer(0.1, cancel.set)  # from another thread, as the TUI's Esc
    timer.start()
    t0 = time.monotonic()
    rest = list(gen)  # the server sends nothing more: only the event can end this
    assert time.monotonic() - t0 < 10
    assert rest == []  # no EngineEnd: the engine did not finish, it was stopped
    assert server.disconnected.wait(10), "the server never saw the client leave"
    timer.join()


def test_a_stream_made_long_before_it_runs_still_cancels_at_once(server: FaultServer) -> None:
    """Streams are made and dropped unstarted (a regenerate replaced before it ran); none of
    that may cost a later stream its cancel (a side table of pending events once lost the
    oldest past 16, and that stream then sat out the whole read timeout)."""
    b = backend(server.url, "m1", read_timeout=READ_TIMEOUT)
    b.load()
    cancel = threading.Event()
    stream = b.stream_chat(HI, GenerationParams(max_tokens=64), cancel)
    unstarted = [b.stream_chat(HI, GenerationParams(max_tokens=64)) for _ in range(20)]
    it = iter(stream)
    assert next(it) == "first"
    cancel.set()
    t0 = time.monotonic()
    assert list(it) == []
    assert time.monotonic() - t0 < 10
    assert stream.result is not None and stream.result.finish_reason == "cancelled"
    assert stream.result.text == "first"
    assert server.disconnected.wait(10)
    assert unstarted and len(server.requests) == 1  # streams never iterated never reached the server
