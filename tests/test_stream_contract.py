"""The ChatStream contract every backend gets for free, and one-shot output safety.

The scripted backend stands in for a model only where a real one cannot be made to produce
the case (escape sequences, a crash mid-stream, exact token boundaries)."""

from __future__ import annotations

import io
import json
import sys
import threading
from pathlib import Path

import pytest

from aigc_chat import cli, oneshot
from aigc_chat.backends.base import EngineEnd
from aigc_chat.chat_types import Message
from aigc_chat.config import Config
from aigc_chat.conversation import Conversation
from aigc_chat.params import GenerationParams
from tests.scripted_backend import ScriptedBackend

HI = [Message("user", "hi")]


def test_engine_failure_keeps_partial_text():
    b = ScriptedBackend(["a", "b", "c"], fail_after=2)
    r = b.stream_chat(HI, GenerationParams()).consume()
    assert r.finish_reason == "error" and r.text == "ab" and "engine exploded" in r.error


def test_unsupported_params_are_reported_not_ignored():
    b = ScriptedBackend(["x"], supported=frozenset({"temperature", "max_tokens", "stop"}))
    r = b.stream_chat(HI, GenerationParams(min_p=0.2)).consume()
    assert any("min_p" in w for w in r.warnings)
    r = b.stream_chat(HI, GenerationParams()).consume()  # defaults: nothing to warn about
    assert r.warnings == []


def test_stop_split_over_pieces_never_shown():
    b = ScriptedBackend(["Hello", " <", "|en", "d|> tail"])
    stream = b.stream_chat(HI, GenerationParams(stop=("<|end|>",)))
    shown = list(stream)
    assert "".join(shown) == "Hello "
    assert all("<" not in s for s in shown)
    assert b.closed_early  # the engine was stopped, not drained


def _conversation(backend: ScriptedBackend, system: str = "") -> Conversation:
    conv = Conversation(Config(path=Path("/nonexistent/config.toml"), system_prompt=system))  # no history
    conv.attach_backend(backend)
    return conv


def test_the_conversation_keeps_a_cancelled_reply():
    b = ScriptedBackend(["one ", "two ", "three"])
    s = _conversation(b)
    turn = s.begin("send", "go")
    it = turn.run()
    next(it)
    it.close()
    assert turn.result.finish_reason == "cancelled"
    assert s.messages[-1] == Message("assistant", "one ")
    assert b.closed_early  # the engine was stopped, not drained


def test_regenerate_and_edit_send_the_system_prompt():
    b = ScriptedBackend(["answer"])
    s = _conversation(b, "sys")
    s.begin("send", "first").consume()
    s.begin("regenerate").consume()
    assert [m.role for m in s.messages] == ["user", "assistant"]
    s.begin("edit", "changed").consume()
    assert s.messages[0].content == "changed" and len(s.messages) == 2
    assert b.seen[-1][0] == Message("system", "sys")


def _run_oneshot(monkeypatch, capsys, backend, *args):
    monkeypatch.setattr(oneshot, "load_backend", lambda config, progress=None: backend)
    monkeypatch.setattr(sys, "stdin", io.TextIOWrapper(io.BytesIO(b"")))
    rc = cli.main(["--prompt", "x", "--no-history", *args])
    return rc, capsys.readouterr()


EVIL = ["Hi \x1b[2J", "\x1b]0;pwned\x07there\x1b", "[31m red\x07 [bold]x[/]\r\n"]


def test_oneshot_neutralises_escape_sequences(monkeypatch, capsys):
    rc, out = _run_oneshot(monkeypatch, capsys, ScriptedBackend(EVIL))
    assert rc == 0
    assert out.out == "Hi there red\u2407 [bold]x[/]\n"
    assert "\x1b" not in out.out


def test_oneshot_raw_passes_bytes_through(monkeypatch, capsys):
    rc, out = _run_oneshot(monkeypatch, capsys, ScriptedBackend(EVIL), "--raw")
    assert rc == 0 and "\x1b[2J" in out.out


def test_oneshot_json_escapes_control_characters(monkeypatch, capsys):
    rc, out = _run_oneshot(monkeypatch, capsys, ScriptedBackend(EVIL), "--json")
    assert rc == 0 and "\x1b" not in out.out
    assert json.loads(out.out)["text"] == "".join(EVIL)


def test_oneshot_engine_error_exit_1_partial_kept(monkeypatch, capsys):
    rc, out = _run_oneshot(monkeypatch, capsys, ScriptedBackend(["par", "tial", "x"], fail_after=2))
    assert rc == 1
    assert out.out == "partial\n"
    assert out.err.strip() == "aigc-chat: error: RuntimeError: engine exploded"


def test_a_stop_decided_only_when_the_engine_ends_is_reported() -> None:
    b = ScriptedBackend(["<Y"])
    r = b.stream_chat([Message("user", "hi")], GenerationParams(stop=("Y", "<Y<"))).consume()
    assert r.text == "<" and r.finish_reason == "stop" and r.stop_sequence == "Y"


# -- the engine gets what it needs through the interface -----------------------------------


def test_generate_receives_the_streams_own_cancel_event() -> None:
    seen: list[threading.Event] = []

    class Watching(ScriptedBackend):
        def _generate(self, messages, params, cancel):
            seen.append(cancel)
            yield "a"
            cancel.set()  # the engine, too, may see and raise the flag mid-reply
            yield "b"

    mine = threading.Event()
    stream = Watching([]).stream_chat(HI, GenerationParams(), mine)
    assert list(stream) == ["a"] and stream.result.finish_reason == "cancelled"
    assert seen == [mine]
    other = Watching([]).stream_chat(HI, GenerationParams())  # no event given: one of its own
    other.consume()
    assert seen[1] is other.cancel_event and seen[1] is not mine


def test_a_plugin_written_for_the_old_two_argument_generate_still_runs() -> None:
    class Old(ScriptedBackend):
        def _generate(self, messages, params):  # type: ignore[override]
            yield from ("old ", "style")

    with pytest.warns(DeprecationWarning, match="cancel"):
        r = Old([]).stream_chat(HI, GenerationParams()).consume()
    assert r.text == "old style" and r.finish_reason == "stop"


# -- ChatStream.close(): callers end a stream without reaching into it -----------------------


def test_close_mid_reply_stops_the_engine_and_finalises_a_cancelled_result() -> None:
    b = ScriptedBackend(["one ", "two ", "three"])
    stream = b.stream_chat(HI, GenerationParams())
    assert next(stream) == "one "
    stream.close()
    assert b.closed_early  # the engine's generator was closed, not drained
    assert stream.result is not None
    assert (stream.result.finish_reason, stream.result.text) == ("cancelled", "one ")
    assert list(stream) == []  # and nothing more comes


def test_close_after_the_end_changes_nothing() -> None:
    b = ScriptedBackend(["done"])
    stream = b.stream_chat(HI, GenerationParams())
    result = stream.consume()
    stream.close()
    stream.close()
    assert stream.result is result and (result.finish_reason, result.text) == ("stop", "done")
    assert not b.closed_early


def test_close_before_the_start_runs_no_engine() -> None:
    b = ScriptedBackend(["never"])
    stream = b.stream_chat(HI, GenerationParams())
    stream.close()
    assert b.seen == [] and stream.result is None  # no engine ran, so there is nothing to record
    assert list(stream) == []



def test_a_backend_may_return_a_plain_iterator() -> None:
    """`_generate` need not be a generator: an iterator with nothing to close ends normally."""
    class Plain(ScriptedBackend):
        def _generate(self, messages, params, cancel):
            return iter(["plain ", "text", EngineEnd("stop")])

    r = Plain([]).stream_chat(HI, GenerationParams(stop=("zz",))).consume()
    assert (r.text, r.finish_reason) == ("plain text", "stop")
    stream = Plain([]).stream_chat(HI, GenerationParams())
    assert next(stream) == "plain "
    stream.close()
    assert stream.result is not None and stream.result.finish_reason == "cancelled"
