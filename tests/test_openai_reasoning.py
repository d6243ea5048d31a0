"""Reasoning from an OpenAI-compatible server (the loopback fault server): a separate
`reasoning_content` or `reasoning` field, or `<think>` inline in the content when the server
does not parse it; all end up apart from the answer, the same way as in-process."""

from __future__ import annotations

import pytest

from aigc_chat.chat_types import Message
from aigc_chat.params import GenerationParams
from aigc_chat.reasoning import Reasoning
from tests.fault_server import FaultServer, chunk, openai_backend

HI = [Message("user", "hi")]


@pytest.mark.parametrize("field", ["reasoning_content", "reasoning"])
def test_a_separate_reasoning_field(server: FaultServer, field: str) -> None:
    server.chat = lambda h, body: h.sse([chunk(**{field: "pl"}), chunk(**{field: "an"}), chunk("Ans"),
                                         chunk("wer", "stop")])
    b = openai_backend(server.url, "m1")
    b.load()
    stream = b.stream_chat(HI, GenerationParams(max_tokens=50))
    pieces = list(stream)
    assert [p for p in pieces if isinstance(p, Reasoning)] == ["pl", "an"]
    r = stream.result
    assert r is not None and (r.text, r.reasoning) == ("Answer", "plan") and r.reasoning_tokens == 2
    assert r.thinking_time is not None and r.time_to_first_token is not None


def test_inline_think_markers_from_a_server_that_does_not_parse_them(server: FaultServer) -> None:
    server.chat = lambda h, body: h.sse([chunk("<thi"), chunk("nk>plan</th"), chunk("ink>\n"), chunk("Yes", "stop")])
    b = openai_backend(server.url, "m1")
    b.load()
    r = b.stream_chat(HI, GenerationParams(max_tokens=50)).consume()
    assert (r.text, r.reasoning) == ("Yes", "plan")


def test_stop_sequences_apply_to_the_answer_only(server: FaultServer) -> None:
    server.chat = lambda h, body: h.sse([chunk(reasoning_content="say STOP here"), chunk("one STOP two", "stop")])
    b = openai_backend(server.url, "m1")
    b.load()
    r = b.stream_chat(HI, GenerationParams(max_tokens=50, stop=("STOP",))).consume()
    assert r.reasoning == "say STOP here" and r.text == "one " and r.stop_sequence == "STOP"


def test_thinking_off_reaches_the_server_as_a_template_switch(server: FaultServer) -> None:
    b = openai_backend(server.url, "m1")
    b.load()
    b.stream_chat(HI, GenerationParams(max_tokens=5, thinking=False)).consume()
    assert server.requests[-1]["chat_template_kwargs"] == {"enable_thinking": False}
    b.stream_chat(HI, GenerationParams(max_tokens=5)).consume()
    assert "chat_template_kwargs" not in server.requests[-1]
