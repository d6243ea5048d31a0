"""The openai backend against failures a real inference server will not produce on demand.

A tiny HTTP server of our own on 127.0.0.1 answers with 401, 404, 429, 5xx, stalls, error
events and usage records; everything on our side (the openai client, sockets, timeouts, the
CLI) is the real thing. The backend against a real llama.cpp server is test_openai_server.py.
"""

from __future__ import annotations

import json
import subprocess
import threading
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest

from aigc_chat.backends.openai_backend import OpenAIBackend
from aigc_chat.chat_types import GenerationResult, Message
from aigc_chat.errors import BackendError
from aigc_chat.params import GenerationParams
from tests.conftest import run_cli, run_python
from tests.fault_server import KEY, KEY_ENV, FaultServer, chunk, free_port, openai_backend, stall_after_first

HI = [Message("user", "hi")]


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


def generate(b: OpenAIBackend, params: GenerationParams | None = None) -> GenerationResult:
    return b.stream_chat(HI, params or GenerationParams(max_tokens=64)).consume()


def assert_one_clean_line(text: str, url: str) -> None:
    assert "\n" not in text.strip() and text.strip(), text
    assert url in text, text
    assert KEY not in text
    assert "Traceback" not in text and "\x1b" not in text


# -- the request and the result record ----------------------------------------------------


def test_parameters_and_usage_reach_both_ends(server: FaultServer, key: str) -> None:
    server.chat = lambda h, body: h.sse([
        chunk(None), chunk("Hel"), chunk("lo"), chunk(" there"), chunk(None, "stop"),
        chunk(usage={"prompt_tokens": 12, "completion_tokens": 3, "total_tokens": 15}),
    ])
    b = openai_backend(server.url, extra_body={"chat_template_kwargs": {"enable_thinking": False}, "top_k": 7})
    b.load()
    assert b.info().model == "m1"  # no model named: the server's first
    params = GenerationParams(temperature=0.3, top_p=0.9, top_k=20, min_p=0.1, repeat_penalty=1.1,
                              max_tokens=33, stop=("#1", "#2", "#3", "#4", "#5"), seed=42)
    result = generate(b, params)
    assert result.text == "Hello there"
    assert result.finish_reason == "stop" and result.error is None
    assert result.prompt_tokens == 12 and result.completion_tokens == 3
    assert result.time_to_first_token is not None and result.warnings == []
    assert b.info().details["usage"] == "reported by the server"
    sent = server.requests[-1]
    assert sent["model"] == "m1" and sent["stream"] is True
    assert sent["messages"] == [{"role": "user", "content": "hi"}]
    assert (sent["temperature"], sent["top_p"], sent["max_tokens"], sent["seed"]) == (0.3, 0.9, 33, 42)
    assert sent["stop"] == ["#1", "#2", "#3", "#4"]  # OpenAI's limit; the client filter does all five
    assert sent["stream_options"] == {"include_usage": True}
    assert (sent["min_p"], sent["repeat_penalty"]) == (0.1, 1.1)
    assert sent["top_k"] == 7  # the user's extra_body wins over ours
    assert sent["chat_template_kwargs"] == {"enable_thinking": False}
    assert server.auth[-1] == f"Bearer {KEY}"


def test_without_sampler_extras_the_warnings_are_honest(server: FaultServer) -> None:
    b = openai_backend(server.url, "m2", sampler_extras=False, repeat_penalty_field="repetition_penalty",
                api_key_env="")
    b.load()
    result = generate(b, GenerationParams(top_k=5, max_tokens=8))
    assert result.text == "ok" and result.finish_reason == "stop"
    assert any("top_k" in w for w in result.warnings)
    sent = server.requests[-1]
    assert sent["model"] == "m2"
    assert not {"top_k", "min_p", "repeat_penalty", "repetition_penalty"} & set(sent)
    assert server.auth[-1] == "Bearer no-key"  # no key configured: a placeholder, never another variable


def test_vllm_field_name_for_repeat_penalty(server: FaultServer) -> None:
    b = openai_backend(server.url, "m1", repeat_penalty_field="repetition_penalty")
    b.load()
    generate(b, GenerationParams(repeat_penalty=1.3, max_tokens=8))
    assert server.requests[-1]["repetition_penalty"] == 1.3 and "repeat_penalty" not in server.requests[-1]


def test_no_usage_from_the_server_is_said_so(server: FaultServer) -> None:
    server.chat = lambda h, body: h.sse([chunk("a"), chunk("b"), chunk(None, "length")])
    b = openai_backend(server.url, "m1")
    b.load()
    result = generate(b)
    assert result.text == "ab" and result.finish_reason == "length"
    assert result.prompt_tokens == 0 and result.completion_tokens == 2
    assert "counted from streamed chunks" in b.info().details["usage"]


def test_server_usage_counts_tokens_merged_into_one_chunk(server: FaultServer) -> None:
    # vLLM with speculative decoding, for one, streams several tokens per chunk.
    server.chat = lambda h, body: h.sse([
        chunk("one two"), chunk(" three four"), chunk(" five six"), chunk(None, "stop"),
        chunk(usage={"prompt_tokens": 9, "completion_tokens": 6, "total_tokens": 15}),
    ])
    b = openai_backend(server.url, "m1")
    b.load()
    result = generate(b)
    assert result.text == "one two three four five six"
    assert (result.prompt_tokens, result.completion_tokens) == (9, 6)
    assert result.usage()["total_tokens"] == 15


def test_server_rejecting_stream_options_gets_the_request_again(server: FaultServer) -> None:
    def chat(h: Any, body: dict) -> None:
        if "stream_options" in body:
            return h.status(400, {"error": {"message": "Unrecognized request argument: stream_options"}})
        h.sse([chunk("fine"), chunk(None, "stop")])

    server.chat = chat
    b = openai_backend(server.url, "m1")
    b.load()
    assert generate(b).text == "fine"
    assert generate(b).text == "fine"
    assert ["stream_options" in r for r in server.requests] == [True, False, False]


def test_stop_strings_filtered_client_side_too(server: FaultServer) -> None:
    # A server that ignores `stop`: the shared filter still cuts the text.
    server.chat = lambda h, body: h.sse([chunk("one "), chunk("two EN"), chunk("D three"), chunk(None, "stop")])
    b = openai_backend(server.url, "m1")
    b.load()
    result = generate(b, GenerationParams(stop=("END",)))
    assert result.text == "one two " and result.finish_reason == "stop" and result.stop_sequence == "END"


def test_output_escape_sequences_are_not_interpreted_in_errors(server: FaultServer) -> None:
    server.chat = lambda h, body: h.status(500, {"error": {"message": "boom \x1b]52;c;aGk=\x07\x1b[2J done"}})
    b = openai_backend(server.url, "m1")
    b.load()
    result = generate(b)
    assert result.finish_reason == "error"
    assert "boom" in result.error and "done" in result.error
    assert_one_clean_line(result.error, server.url)


# -- failures: one clear line, never the key, never a hang -------------------------------------

STATUS_WORDS = {401: "401", 403: "403", 404: "404", 429: "429", 500: "500", 503: "503"}


@pytest.mark.parametrize("code", sorted(STATUS_WORDS))
def test_status_errors_when_loading(server: FaultServer, key: str, code: int) -> None:
    server.models = code
    with pytest.raises(BackendError) as err:
        openai_backend(server.url).load()
    assert STATUS_WORDS[code] in str(err.value)
    assert_one_clean_line(str(err.value), server.url)


@pytest.mark.parametrize("code", sorted(STATUS_WORDS))
def test_status_errors_when_chatting(server: FaultServer, key: str, code: int) -> None:
    # The error body echoes the Authorization header: the worst a server could do.
    server.chat = lambda h, body: h.status(
        code, {"error": {"message": f"no: {h.headers.get('Authorization')}"}}, {"Retry-After": "7"})
    b = openai_backend(server.url, "m1")
    b.load()
    result = generate(b)
    assert result.finish_reason == "error" and result.text == ""
    assert STATUS_WORDS[code] in result.error
    assert_one_clean_line(result.error, server.url)
    if code == 429:
        assert "retry after 7" in result.error
    if code == 404:
        assert "'m1'" in result.error and "aigc-chat models" in result.error
    if code == 401:
        assert KEY_ENV in result.error


def test_unknown_model_named(server: FaultServer) -> None:
    with pytest.raises(BackendError) as err:
        openai_backend(server.url, "nope").load()
    assert "'nope'" in str(err.value) and "m1, m2" in str(err.value)
    assert_one_clean_line(str(err.value), server.url)


def test_model_names_from_the_server_are_safe_to_print(server: FaultServer) -> None:
    server.models = ["evil\x1b]0;pwned\x07-model", "m1"]
    b = openai_backend(server.url)
    assert b.list_models() == ["evil-model", "m1"]
    b.load()
    assert b.info().model == "evil-model"


def test_server_without_models_route_still_chats_when_a_model_is_named(server: FaultServer) -> None:
    server.models = 404
    with pytest.raises(BackendError, match="/models"):
        openai_backend(server.url).load()  # no model named and no list: nothing to go on
    b = openai_backend(server.url, "m1")
    b.load()
    assert generate(b).text == "ok"


def test_connection_refused_is_quick_and_clear() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    b = openai_backend(url, "m1")
    for call in (b.load, b.list_models):
        with pytest.raises(BackendError, match="connection refused") as err:
            call()
        assert_one_clean_line(str(err.value), url)
    result = generate(b)  # a stream on a dead server ends as an error, not an exception
    assert result.finish_reason == "error" and "connection refused" in result.error


def test_server_that_never_answers_times_out(server: FaultServer) -> None:
    server.chat = lambda h, body: h.stall_until_client_leaves()
    b = openai_backend(server.url, "m1", read_timeout=0.5)
    b.load()
    t0 = time.monotonic()
    result = generate(b)
    assert time.monotonic() - t0 < 10  # bounded by read_timeout, not a hang
    assert result.finish_reason == "error" and "did not answer in time" in result.error
    assert_one_clean_line(result.error, server.url)


def test_headers_then_silence_times_out_before_the_reply(server: FaultServer) -> None:
    def chat(h: Any, body: dict) -> None:
        h.sse_start()  # a server still evaluating a long prompt looks like this
        h.stall_until_client_leaves()

    server.chat = chat
    b = openai_backend(server.url, "m1", read_timeout=0.5)
    b.load()
    result = generate(b)
    assert result.finish_reason == "error" and result.text == ""
    assert "did not start the reply within 0.5 s" in result.error
    assert_one_clean_line(result.error, server.url)


def test_stall_mid_reply_times_out_with_partial_text(server: FaultServer) -> None:
    def chat(h: Any, body: dict) -> None:
        h.sse_start()
        h.sse_send(chunk("partial"))
        h.stall_until_client_leaves()

    server.chat = chat
    b = openai_backend(server.url, "m1", read_timeout=0.5)
    b.load()
    result = generate(b)
    assert result.finish_reason == "error" and result.text == "partial"
    assert "mid-reply" in result.error
    assert_one_clean_line(result.error, server.url)


def test_error_event_mid_stream_keeps_the_partial_text(server: FaultServer) -> None:
    server.chat = lambda h, body: h.sse([chunk("so far"), {"error": {"message": "CUDA out of memory"}}])
    b = openai_backend(server.url, "m1")
    b.load()
    result = generate(b)
    assert result.finish_reason == "error" and result.text == "so far"
    assert "CUDA out of memory" in result.error
    assert_one_clean_line(result.error, server.url)


def test_garbage_in_the_stream_is_an_error_not_a_crash(server: FaultServer) -> None:
    server.chat = lambda h, body: h.sse([chunk("x"), "{not json"])
    b = openai_backend(server.url, "m1")
    b.load()
    result = generate(b)
    assert result.finish_reason == "error" and result.text == "x"
    assert_one_clean_line(result.error, server.url)


def test_stream_that_just_stops_is_an_error(server: FaultServer) -> None:
    server.chat = lambda h, body: h.sse([chunk("cut "), chunk("short")], done=False)
    b = openai_backend(server.url, "m1")
    b.load()
    result = generate(b)
    assert result.finish_reason == "error" and result.text == "cut short"
    assert "cut the reply short" in result.error
    server.chat = lambda h, body: h.sse([], done=False)
    result = generate(b)
    assert result.finish_reason == "error" and result.text == ""
    assert "without any text or reason" in result.error


# -- cancelling closes the HTTP response at once ---------------------------------------------


def test_cancel_while_the_server_is_silent_ends_the_stream_and_the_connection(server: FaultServer) -> None:
    server.chat = stall_after_first
    b = openai_backend(server.url, "m1", read_timeout=60.0)
    b.load()
    cancel = threading.Event()
    stream = b.stream_chat(HI, GenerationParams(max_tokens=64), cancel)
    seen: list[str] = []
    t0 = time.monotonic()
    for delta in stream:
        seen.append(delta)
        threading.Timer(0.2, cancel.set).start()  # as the TUI's Esc would, from another thread
    assert time.monotonic() - t0 < 10  # far below the 60 s read timeout: no waiting for the server
    assert seen == ["first"]
    assert stream.result is not None and stream.result.finish_reason == "cancelled"
    assert stream.result.text == "first"
    assert server.disconnected.wait(10), "the server never saw the client leave"


def test_closing_the_iterator_closes_the_connection(server: FaultServer) -> None:
    server.chat = stall_after_first
    b = openai_backend(server.url, "m1", read_timeout=60.0)
    b.load()
    stream = b.stream_chat(HI, GenerationParams(max_tokens=64))
    it = iter(stream)
    assert next(it) == "first"
    it.close()
    assert stream.result is not None and stream.result.finish_reason == "cancelled"
    assert server.disconnected.wait(10), "the server never saw the client leave"
    # The client is still usable afterwards.
    server.chat = lambda h, body: h.sse([chunk("again"), chunk(None, "stop")])
    assert generate(b).text == "again"


def test_each_stream_keeps_its_own_cancel_event(server: FaultServer) -> None:
    server.chat = stall_after_first
    b = openai_backend(server.url, "m1", read_timeout=60.0)
    b.load()
    e1, e2 = threading.Event(), threading.Event()
    s1 = b.stream_chat(HI, GenerationParams(max_tokens=64), e1)
    s2 = b.stream_chat(HI, GenerationParams(max_tokens=64), e2)  # created, not started
    it = iter(s1)
    assert next(it) == "first"
    e1.set()
    t0 = time.monotonic()
    assert list(it) == []
    assert time.monotonic() - t0 < 10 and s1.result is not None and s1.result.finish_reason == "cancelled"
    s2.close()
    assert not e2.is_set()


# -- the command line -------------------------------------------------------------------------


def write_config(path: Path, url: str, model: str | None = None, **extra: Any) -> None:
    lines = ['backend = "openai"'] + ([f'model = "{model}"'] if model else [])
    options = {"base_url": url, "api_key_env": KEY_ENV, "read_timeout": 5.0, **extra}
    lines += ["[openai]"] + [f"{k} = {json.dumps(v)}" for k, v in options.items()]
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text("\n".join(lines) + "\n")


def assert_no_key_anywhere(proc: subprocess.CompletedProcess, dirs: dict[str, Path]) -> None:
    assert KEY not in proc.stdout and KEY not in proc.stderr
    for root in (dirs["config"].parent, dirs["data"]):
        for f in root.rglob("*") if root.exists() else ():
            if f.is_file():
                assert KEY.encode() not in f.read_bytes(), f


def test_cli_failures_are_one_line_with_exit_1(server: FaultServer, cli: str, isolated_dirs: dict[str, Path]) -> None:
    env = {KEY_ENV: KEY}
    cfg = isolated_dirs["config"]

    def run(url: str, model: str | None = "m1") -> subprocess.CompletedProcess:
        write_config(cfg, url, model)
        return run_cli(cli, "--prompt", "hi", "-n", "8", env=env, timeout=60)

    cases: dict[str, tuple[Callable[[], subprocess.CompletedProcess], str]] = {}
    dead = f"http://127.0.0.1:{free_port()}/v1"
    cases["refused"] = (lambda: run(dead), "connection refused")
    cases["unknown model"] = (lambda: run(server.url, "nope"), "does not serve model 'nope'")

    def with_status(code: int) -> subprocess.CompletedProcess:
        server.chat = lambda h, body: h.status(code, {"error": {"message": "denied"}})
        return run(server.url)

    cases["401"] = (lambda: with_status(401), "401")
    cases["404"] = (lambda: with_status(404), "404")
    cases["429"] = (lambda: with_status(429), "429")
    cases["500"] = (lambda: with_status(500), "500")
    for name, (go, expect) in cases.items():
        proc = go()
        assert proc.returncode == 1, (name, proc.stderr)
        lines = proc.stderr.strip().splitlines()
        assert len(lines) == 1 and lines[0].startswith("aigc-chat: error: "), (name, proc.stderr)
        assert expect in lines[0], (name, lines[0])
        url = dead if name == "refused" else server.url
        assert url in lines[0]
        assert proc.stdout == ""
        assert_no_key_anywhere(proc, isolated_dirs)


def test_cli_success_and_models(server: FaultServer, cli: str, isolated_dirs: dict[str, Path]) -> None:
    server.chat = lambda h, body: h.sse([chunk("Hello"), chunk(" \x1b[31mworld"), chunk(None, "stop")])
    write_config(isolated_dirs["config"], server.url)
    proc = run_cli(cli, "--prompt", "hi", env={KEY_ENV: KEY}, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert proc.stdout == "Hello world\n"  # the escape sequence from the "model" is dropped
    assert_no_key_anywhere(proc, isolated_dirs)
    assert server.auth[-1] == f"Bearer {KEY}"
    proc = run_cli(cli, "models", env={KEY_ENV: KEY}, timeout=60)
    assert proc.returncode == 0 and proc.stdout.split() == ["m1", "m2"], proc.stderr
    dead = f"http://127.0.0.1:{free_port()}/v1"
    proc = run_cli(cli, "models", "--backend", "openai", "--config", str(isolated_dirs["config"]),
                   env={KEY_ENV: KEY}, timeout=60)
    assert proc.returncode == 0
    write_config(isolated_dirs["config"], dead)
    proc = run_cli(cli, "models", "--backend", "openai", env={KEY_ENV: KEY}, timeout=60)
    assert proc.returncode == 1 and len(proc.stderr.strip().splitlines()) == 1
    assert "connection refused" in proc.stderr and dead in proc.stderr


def test_cli_ctrl_c_while_the_server_is_silent(server: FaultServer, cli: str, isolated_dirs: dict[str, Path]) -> None:
    import os
    import signal

    server.chat = stall_after_first
    write_config(isolated_dirs["config"], server.url, "m1", read_timeout=60.0)
    proc = subprocess.Popen([cli, "--prompt", "hi"], stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                            stdin=subprocess.DEVNULL, env={**os.environ, KEY_ENV: KEY}, text=True)
    assert proc.stdout is not None
    assert proc.stdout.read(5) == "first"  # the reply has started, then the server goes quiet
    t0 = time.monotonic()
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=30)
    assert time.monotonic() - t0 < 10  # not the 60 s read timeout
    assert proc.returncode == 130, err
    assert out == "\n" and "Traceback" not in err  # the partial line is ended; nothing else
    assert server.disconnected.wait(10)


def test_base_url_on_the_command_line(server: FaultServer, cli: str, isolated_dirs: dict[str, Path]) -> None:
    server.chat = lambda h, body: h.sse([chunk("from the flag"), chunk(None, "stop")])
    write_config(isolated_dirs["config"], f"http://127.0.0.1:{free_port()}/v1")  # a dead one: the flag wins
    proc = run_cli(cli, "--backend", "openai", "--base-url", server.url, "--model", "m2", "-p", "hi", timeout=60)
    assert proc.returncode == 0 and proc.stdout == "from the flag\n", proc.stderr
    assert server.requests[-1]["model"] == "m2"
    proc = run_cli(cli, "models", "--base-url", server.url, timeout=60)
    assert proc.returncode == 0 and proc.stdout.split() == ["m1", "m2"], proc.stderr
    proc = run_cli(cli, "models", "--base-url", "127.0.0.1:8080", timeout=60)
    assert proc.returncode == 2 and len(proc.stderr.strip().splitlines()) == 1 and "base_url" in proc.stderr


@pytest.mark.parametrize("line, key", [
    ('base_url = "127.0.0.1:8080"', "openai.base_url"),
    ('api_key_env = "sk-abc-123"', "openai.api_key_env"),
    ("read_timeout = 0", "openai.read_timeout"),
    ("max_retries = -1", "openai.max_retries"),
    ('api_key = "sk-x"', "openai.api_key"),  # no such option: keys never live in the config
])
def test_bad_config_is_one_line_exit_2(cli: str, isolated_dirs: dict[str, Path], line: str, key: str) -> None:
    cfg = isolated_dirs["config"]
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(f'backend = "openai"\n[openai]\n{line}\n')
    proc = run_cli(cli, "--prompt", "hi", timeout=60)
    assert proc.returncode == 2
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and key in lines[0], proc.stderr


def test_openai_is_imported_lazily() -> None:
    code = (
        "import sys\n"
        "import aigc_chat.backends.openai_backend as m\n"
        "from aigc_chat.config import load_config\n"
        "m.OpenAIBackend(None, {})\n"
        "assert 'openai' not in sys.modules and 'httpx2' not in sys.modules, 'imported eagerly'\n"
    )
    proc = run_python(code)
    assert proc.returncode == 0, proc.stderr
