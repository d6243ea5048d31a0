"""The openai backend against a real OpenAI-compatible server: llama-cpp-python's own,
serving the real default model on 127.0.0.1 (started by tests/openai_llama_server.py, which
applies our AMX workaround). Replies are kept short: this runs on 2 busy CPU cores.
"""

from __future__ import annotations

import json
import os
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aigc_chat.backends.openai_backend import OpenAIBackend
from aigc_chat.chat_types import Message
from aigc_chat.errors import BackendError
from aigc_chat.params import GenerationParams
from tests.conftest import REPO, run_cli

pytestmark = pytest.mark.slow

ALIAS = "gemma-3-270m"
KEY_ENV = "AIGC_TEST_OPENAI_KEY"
KEY = "sk-test-real-server-0d9e-never-show-me"
ASK = [Message("user", "Write a short poem about the sea.")]


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class LlamaServer:
    """llama-cpp-python's server in a subprocess, up once /v1/models answers."""

    def __init__(self, model: Path) -> None:
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}/v1"
        self.log = open(os.devnull, "wb")  # noqa: SIM115 - closed in stop()
        self.proc = subprocess.Popen(
            [sys.executable, str(REPO / "tests" / "openai_llama_server.py"),
             "--model", str(model), "--port", str(self.port), "--alias", ALIAS, "--n_ctx", "2048"],
            stdout=self.log, stderr=subprocess.PIPE, cwd=REPO,
        )
        deadline = time.monotonic() + 120
        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                err = self.proc.stderr.read().decode(errors="replace") if self.proc.stderr else ""
                raise RuntimeError(f"the llama.cpp server exited with {self.proc.returncode}: {err[-2000:]}")
            try:
                with urllib.request.urlopen(f"{self.url}/models", timeout=2) as r:
                    if r.status == 200:
                        return
            except OSError:
                time.sleep(0.2)
        self.stop()
        raise RuntimeError("the llama.cpp server did not come up within 120 s")

    def stop(self) -> None:
        if self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(10)
        if self.proc.stderr:
            self.proc.stderr.close()
        self.log.close()


@pytest.fixture(scope="module")
def server(gemma_path: Path) -> Iterator[LlamaServer]:
    srv = LlamaServer(gemma_path)
    yield srv
    srv.stop()


def backend(url: str, model: str | None = ALIAS, **options: Any) -> OpenAIBackend:
    opts = {"base_url": url, "api_key_env": KEY_ENV, "connect_timeout": 2.0, "read_timeout": 60.0}
    opts.update(options)
    b = OpenAIBackend(model, opts)
    b.load()
    return b


def test_models_and_load(server: LlamaServer) -> None:
    b = OpenAIBackend(None, {"base_url": server.url})
    assert b.list_models() == [ALIAS]  # without load(), as the settings pane asks
    b.load()  # no model named: the server's first
    info = b.info()
    assert (info.name, info.model, info.context_length) == ("openai", ALIAS, 0)  # this server reports none
    assert server.url in info.device
    assert backend(server.url, context_length=2048).info().context_length == 2048


def seeded(b: OpenAIBackend, params: GenerationParams) -> Any:
    """One seeded reply from the same server state each time. llama.cpp reuses the cached
    prompt prefix; a fully cached prompt is re-evaluated one token at a time, which can
    round differently from a batch, and sampling at temperature > 0 may then pick another
    token. A one-token reply to another prompt first makes every run start alike."""
    b.stream_chat([Message("user", "Reset.")], GenerationParams(max_tokens=1)).consume()
    return b.stream_chat(ASK, params).consume()


def test_same_seed_same_text_and_stop_strings(server: LlamaServer) -> None:
    b = backend(server.url)
    params = GenerationParams(seed=1234, max_tokens=8, temperature=0.9)
    first = seeded(b, params)
    second = seeded(b, params)
    assert first.finish_reason == "length" and first.error is None
    assert first.completion_tokens == 8 and first.text
    assert first.time_to_first_token is not None and first.decode_tokens_per_s
    assert second.text == first.text  # the seed reaches the server
    # A stop string taken from the middle of that text: the same seed stops right before it.
    words = [w for w in first.text.split() if len(w) >= 3]
    assert words, first.text
    stop = words[len(words) // 2]
    cut = first.text.index(stop)
    third = seeded(b, params.with_updates(stop=(stop,)))
    assert third.finish_reason == "stop"
    assert stop not in third.text
    assert third.text == first.text[:cut]


def test_cancel_mid_stream_then_the_server_still_answers(server: LlamaServer) -> None:
    b = backend(server.url)
    cancel = threading.Event()
    stream = b.stream_chat(ASK, GenerationParams(max_tokens=300, seed=5), cancel)
    seen: list[str] = []
    for delta in stream:
        seen.append(delta)
        if len(seen) == 3:
            cancel.set()
    result = stream.result
    assert result is not None and result.finish_reason == "cancelled"
    assert 3 <= result.completion_tokens < 300
    assert result.text == "".join(seen)
    after = b.stream_chat(ASK, GenerationParams(max_tokens=3, seed=5)).consume()
    assert after.finish_reason == "length" and after.text


def test_conversation_longer_than_the_server_context(server: LlamaServer) -> None:
    # llama-cpp-python's server answers 200 with an empty stream here: still one clear line.
    b = backend(server.url)
    result = b.stream_chat([Message("user", "word " * 2500)], GenerationParams(max_tokens=4)).consume()
    assert result.finish_reason == "error" and result.text == ""
    assert "exceed its context" in (result.error or "") and server.url in (result.error or "")


def test_wrong_model_name(server: LlamaServer) -> None:
    with pytest.raises(BackendError) as err:
        backend(server.url, "no-such-model")
    msg = str(err.value)
    assert "'no-such-model'" in msg and ALIAS in msg and server.url in msg and "\n" not in msg


def test_wrong_port() -> None:
    url = f"http://127.0.0.1:{free_port()}/v1"
    t0 = time.monotonic()
    with pytest.raises(BackendError, match="connection refused") as err:
        backend(url)
    assert time.monotonic() - t0 < 10  # refused fails at once; no retries hide it
    assert url in str(err.value)


def test_cli_against_the_server(server: LlamaServer, cli: str, isolated_dirs: dict[str, Path]) -> None:
    cfg = isolated_dirs["config"]
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(f'backend = "openai"\n[openai]\nbase_url = "{server.url}"\napi_key_env = "{KEY_ENV}"\n')
    env = {KEY_ENV: KEY}
    proc = run_cli(cli, "--prompt", "Say hello.", "-n", "6", "--seed", "3", "--json", env=env, timeout=120)
    assert proc.returncode == 0, proc.stderr
    record = json.loads(proc.stdout)
    assert record["backend"] == "openai" and record["model"] == ALIAS
    assert record["text"] and record["finish_reason"] == "length"
    assert record["usage"]["completion_tokens"] == 6
    models = run_cli(cli, "models", "--backend", "openai", env=env, timeout=60)
    assert models.returncode == 0 and models.stdout.split() == [ALIAS]
    wrong = run_cli(cli, "--prompt", "hi", "--model", "nope", env=env, timeout=60)
    assert wrong.returncode == 1 and len(wrong.stderr.strip().splitlines()) == 1
    assert "'nope'" in wrong.stderr
    for p in (proc, models, wrong):
        assert KEY not in p.stdout and KEY not in p.stderr
    for root in (cfg.parent, isolated_dirs["data"]):
        for f in root.rglob("*") if root.exists() else ():
            if f.is_file():
                assert KEY.encode() not in f.read_bytes(), f


def test_server_killed_mid_stream(gemma_path: Path) -> None:
    srv = LlamaServer(gemma_path)  # its own: this test kills it
    try:
        b = backend(srv.url, read_timeout=30.0)
        stream = b.stream_chat(ASK, GenerationParams(max_tokens=300, seed=9))
        seen: list[str] = []
        t_kill = None
        for delta in stream:
            seen.append(delta)
            if len(seen) == 2:
                srv.proc.send_signal(signal.SIGKILL)
                t_kill = time.monotonic()
        assert t_kill is not None
        assert time.monotonic() - t_kill < 25  # ended by the lost connection, not a timeout
        result = stream.result
        assert result is not None and result.finish_reason == "error"
        assert result.text == "".join(seen) and len(seen) >= 2
        assert "lost mid-reply" in (result.error or "") and srv.url in (result.error or "")
        # And the next request says the server is gone, in one line.
        again = b.stream_chat(ASK, GenerationParams(max_tokens=4)).consume()
        assert again.finish_reason == "error" and (again.error or "").startswith(f"cannot connect to {srv.url}")
        assert "\n" not in (again.error or "")
    finally:
        srv.stop()
