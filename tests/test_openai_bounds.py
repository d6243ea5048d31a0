"""What an OpenAI-compatible server sends back is bounded, and named when it is not an API.

A real HTTP server on 127.0.0.1 (tests/fault_server.py) sends keep-alives with no text, empty
deltas, endless bodies, a gzip bomb, HTML, malformed model lists and chunks of the wrong shape;
the client side (the openai package, httpx, sockets, the CLI) is the real thing. Whatever the
old code would have read whole runs in a memory-capped subprocess (tests/capped.py).
"""

from __future__ import annotations

import time
import zlib
from pathlib import Path
from typing import Any

import pytest

from aigc_chat.backends.openai_backend import OpenAIBackend
from aigc_chat.chat_types import GenerationResult, Message
from aigc_chat.errors import BackendError
from aigc_chat.params import GenerationParams
from tests.capped import run_capped
from tests.fault_server import KEY, KEY_ENV, FaultServer, chunk, openai_backend
from tests.test_openai_faults import write_config

HI = [Message("user", "hi")]
PATIENCE = 0.5  # read_timeout of these tests, seconds


@pytest.fixture
def key(monkeypatch: pytest.MonkeyPatch) -> str:
    monkeypatch.setenv(KEY_ENV, KEY)
    return KEY


def generate(b: OpenAIBackend) -> GenerationResult:
    return b.stream_chat(HI, GenerationParams(max_tokens=64)).consume()


def one_line(text: str, url: str) -> str:
    assert text.strip() and "\n" not in text.strip(), text
    assert url in text and "Traceback" not in text, text
    return text


def keep_alive_forever(h: Any, comment: bytes = b": keepalive\n\n", first: dict | None = None,
                       empty: bool = False) -> None:
    """An event stream that stays busy without text: SSE comments, or empty deltas."""
    h.sse_start()
    if first is not None:
        h.sse_send(first)
    deadline = time.monotonic() + 20
    try:
        while time.monotonic() < deadline:
            if empty:
                h.sse_send(chunk(None))
            else:
                h.wfile.write(comment)
                h.wfile.flush()
            time.sleep(0.05)
    except OSError:
        pass  # the client left


# -- item 5: the read timeout counts text, not bytes -------------------------------------------


def test_keepalives_alone_end_after_the_read_timeout(server: FaultServer, key: str) -> None:
    server.chat = lambda h, body: keep_alive_forever(h)
    b = openai_backend(server.url, "m1", read_timeout=PATIENCE)
    t0 = time.monotonic()
    result = generate(b)
    assert time.monotonic() - t0 < 10
    assert result.finish_reason == "error" and result.text == ""
    assert f"did not start the reply within {PATIENCE:g} s" in one_line(result.error, server.url)


def test_empty_deltas_mid_reply_end_after_the_read_timeout(server: FaultServer, key: str) -> None:
    server.chat = lambda h, body: keep_alive_forever(h, first=chunk("partial"), empty=True)
    b = openai_backend(server.url, "m1", read_timeout=PATIENCE)
    t0 = time.monotonic()
    result = generate(b)
    assert time.monotonic() - t0 < 10
    assert result.finish_reason == "error" and result.text == "partial"
    assert f"sent no text for {PATIENCE:g} s mid-reply" in one_line(result.error, server.url)


def test_slow_text_with_keepalives_between_is_not_cut(server: FaultServer, key: str) -> None:
    """Text every 0.3 s, keep-alives between: each gap is under the timeout, so the reply is
    whole even though it lasts longer than the timeout."""
    def chat(h: Any, body: dict) -> None:
        h.sse_start()
        for word in ("a", "b", "c", "d"):
            for _ in range(3):
                h.wfile.write(b": ping\n\n")
                h.wfile.flush()
                time.sleep(0.1)
            h.sse_send(chunk(word))
        h.sse_send(chunk(None, "stop"))
        h.sse_send("[DONE]")

    server.chat = chat
    result = generate(openai_backend(server.url, "m1", read_timeout=PATIENCE))
    assert result.error is None and result.text == "abcd"


def test_one_shot_with_keepalives_exits_1_in_one_line(server: FaultServer, cli: str,
                                                      isolated_dirs: dict[str, Path]) -> None:
    server.chat = lambda h, body: keep_alive_forever(h)
    write_config(isolated_dirs["config"], server.url, "m1", read_timeout=PATIENCE)
    t0 = time.monotonic()
    proc = run_capped(cli, "--prompt", "hi", env={KEY_ENV: KEY}, timeout=30)
    assert time.monotonic() - t0 < 20
    assert proc.returncode == 1, proc.stderr
    lines = proc.stderr.strip().splitlines()
    assert len(lines) == 1 and "did not start the reply within 0.5 s" in lines[0], proc.stderr


# -- item 6: every body is bounded after inflating ---------------------------------------------


def gzip_bomb(inflated_mib: int) -> bytes:
    """A gzip body of about inflated_mib KB that inflates to inflated_mib MiB of zeros: one
    fully flushed block of 1 MiB repeated (a full flush makes each copy stand alone)."""
    c = zlib.compressobj(9, zlib.DEFLATED, 31)
    head = c.compress(b"\0" * (1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    again = c.compress(b"\0" * (1 << 20)) + c.flush(zlib.Z_FULL_FLUSH)
    return head + again * (inflated_mib - 1) + c.flush()


def test_an_endless_model_list_is_cut_off(server: FaultServer, cli: str, isolated_dirs: dict[str, Path]) -> None:
    server.get = lambda h: h.endless("application/json", b'{"id": "m", "object": "model"}, ' * 1000)
    write_config(isolated_dirs["config"], server.url)
    proc = run_capped(cli, "models", env={KEY_ENV: KEY})
    assert proc.returncode == 1, proc.stderr
    assert "sent a body over the 16 MiB limit" in one_line(proc.stderr, server.url)


def test_a_gzip_bomb_model_list_is_cut_off_after_inflating(server: FaultServer, cli: str,
                                                           isolated_dirs: dict[str, Path]) -> None:
    bomb = gzip_bomb(4096)  # about 4 MB that inflate to 4 GiB
    assert len(bomb) < 8 << 20
    server.get = lambda h: h.raw(200, "application/json", bomb, {"Content-Encoding": "gzip"})
    write_config(isolated_dirs["config"], server.url)
    t0 = time.monotonic()
    proc = run_capped(cli, "models", env={KEY_ENV: KEY})
    assert time.monotonic() - t0 < 30
    assert proc.returncode == 1, proc.stderr
    assert "sent a body over the 16 MiB limit" in one_line(proc.stderr, server.url)


def test_compressed_bodies_within_the_limit_still_work(server: FaultServer, key: str) -> None:
    import gzip
    import json

    listing = json.dumps({"object": "list", "data": [{"id": "zipped", "object": "model"}]}).encode()
    for encoding, body in (("gzip", gzip.compress(listing)), ("deflate", zlib.compress(listing)),
                           ("deflate", zlib.compress(listing)[2:-4])):  # raw deflate, as some servers send
        server.get = lambda h, e=encoding, b=body: h.raw(200, "application/json", b, {"Content-Encoding": e})
        assert openai_backend(server.url).list_models() == ["zipped"]
    server.get = lambda h: h.raw(200, "application/json", listing, {"Content-Encoding": "br"})
    with pytest.raises(BackendError, match="encoding that was not asked for"):
        openai_backend(server.url).list_models()


def test_an_endless_line_in_the_event_stream_is_cut_off(server: FaultServer, key: str) -> None:
    def chat(h: Any, body: dict) -> None:
        h.sse_start()
        h.wfile.write(b'data: {"choices": [{"index": 0, "delta": {"content": "')
        try:
            while not server.release.is_set():
                h.wfile.write(b"x" * 65536)
        except OSError:
            pass

    server.chat = chat
    result = generate(openai_backend(server.url, "m1"))
    assert result.finish_reason == "error"
    assert "sent a line over the 1 MiB limit in its event stream" in one_line(result.error, server.url)


def test_a_whole_reply_over_its_limit_is_cut_off(server: FaultServer, key: str,
                                                 monkeypatch: pytest.MonkeyPatch) -> None:
    from aigc_chat.backends import openai_http

    monkeypatch.setattr(openai_http, "STREAM_LIMIT", 1 << 20)  # 64 MiB is slow to send in a test
    server.chat = lambda h, body: h.sse([chunk("y" * 100_000) for _ in range(30)] + [chunk(None, "stop")])
    result = generate(openai_backend(server.url, "m1"))
    assert result.finish_reason == "error" and result.text.startswith("y" * 100_000)
    assert "sent a reply over the 1 MiB limit" in one_line(result.error, server.url)


def test_an_endless_error_body_is_cut_off(server: FaultServer, key: str) -> None:
    def chat(h: Any, body: dict) -> None:
        h.send_response(500)
        h.send_header("Content-Type", "application/json")
        h.end_headers()
        try:
            while not server.release.is_set():
                h.wfile.write(b"x" * 65536)
        except OSError:
            pass

    server.chat = chat
    result = generate(openai_backend(server.url, "m1"))
    assert "sent an error body over the 1 MiB limit" in one_line(result.error, server.url)


# -- item 11: an address that is not an OpenAI-compatible API ---------------------------------

HTML = b"<!doctype html><html><head><title>Welcome to nginx!</title></head><body>hi</body></html>"


def test_html_for_the_model_list_is_named(server: FaultServer, cli: str, isolated_dirs: dict[str, Path]) -> None:
    server.get = lambda h: h.raw(200, "text/html; charset=utf-8", HTML)
    write_config(isolated_dirs["config"], server.url)
    proc = run_capped(cli, "models", env={KEY_ENV: KEY})
    assert proc.returncode == 1, proc.stderr
    line = one_line(proc.stderr, server.url)
    assert f"{server.url} answered with HTML, not an OpenAI-compatible API" in line, line
    assert "AttributeError" not in line
    with pytest.raises(BackendError, match="answered with HTML, not an OpenAI-compatible API"):
        openai_backend(server.url, "m1").load()  # what a chat (one-shot or the TUI) does first


def test_html_on_post_only_is_named_not_blamed_on_the_context(server: FaultServer, key: str) -> None:
    server.chat = lambda h, body: h.raw(200, "text/html", HTML)
    result = generate(openai_backend(server.url, "m1"))
    assert result.finish_reason == "error"
    line = one_line(result.error, server.url)
    assert "answered with HTML, not an OpenAI-compatible event stream" in line
    assert "context" not in line


MALFORMED_LISTS = [
    b'{"object": "list", "data": [["id", "m1"], ["object", "model"]]}',  # pairs, not objects
    b'{"object": "list", "data": "m1"}',
    b'{"object": "list", "data": [{"id": 7}]}',
    b'["m1", "m2"]',
    b"not json at all",
]


def test_a_malformed_model_list_is_one_line_without_warnings(server: FaultServer, cli: str,
                                                             isolated_dirs: dict[str, Path],
                                                             capfd: pytest.CaptureFixture[str]) -> None:
    import warnings

    for body in MALFORMED_LISTS:
        server.get = lambda h, body=body: h.raw(200, "application/json", body)
        with warnings.catch_warnings():
            warnings.simplefilter("error")  # a Pydantic serialisation warning fails the test
            with pytest.raises(BackendError) as err:
                openai_backend(server.url).list_models()
        line = one_line(str(err.value), server.url)
        assert "not a model list" in line or "not JSON" in line, line
    assert capfd.readouterr().err == ""
    server.get = lambda h: h.raw(200, "application/json", MALFORMED_LISTS[0])
    write_config(isolated_dirs["config"], server.url)
    proc = run_capped(cli, "models", env={KEY_ENV: KEY})
    assert proc.returncode == 1, proc.stderr
    line = one_line(proc.stderr, server.url)  # one line: no Pydantic warning before it
    assert "answered with JSON that is not a model list" in line and "ValueError" not in line, line


@pytest.mark.parametrize("bad", [
    {"id": "c", "choices": "abc"},
    {"id": "c", "choices": [{"index": 0, "delta": "zzz"}]},
    {"id": "c", "choices": [{"index": 0, "delta": {"content": 5}}]},
])
def test_a_chunk_of_the_wrong_shape_is_named(server: FaultServer, key: str, bad: dict) -> None:
    server.chat = lambda h, body: h.sse([chunk("ok"), bad, chunk(None, "stop")])
    result = generate(openai_backend(server.url, "m1"))
    assert result.finish_reason == "error" and result.text == "ok"
    assert "a chunk of the wrong shape" in one_line(result.error, server.url)
