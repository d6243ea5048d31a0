"""A loopback HTTP server that plays an OpenAI-compatible inference server, scripted per test.

For the failures a real server will not produce on demand (401, 404, 429, 5xx, stalls,
error events, usage records, hostile model names): the test sets `models` and `chat`, and
everything on the client side (the openai package, sockets, timeouts, the CLI, the TUI) is
the real thing. Shared by test_openai_faults.py, test_openai_tui.py and test_hostile_cli.py.
"""

from __future__ import annotations

import json
import socket
import threading
import time
from collections.abc import Callable
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

from aigc_chat.backends.openai_backend import OpenAIBackend

# The API key the tests hand the client (through this variable): it must never be printed,
# logged or stored.
KEY_ENV = "AIGC_TEST_OPENAI_KEY"
KEY = "sk-test-5f3a9c1e-never-show-me"


def chunk(content: str | None = None, finish: str | None = None, usage: dict | None = None,
          **fields: str) -> dict:
    """One streamed chat.completion.chunk: a text delta, a finish reason, or (alone) the
    usage record that servers send last when asked for it; `fields` are other delta fields
    (`reasoning_content=...`, `reasoning=...`)."""
    delta: dict[str, Any] = {} if content is None else {"content": content}
    delta.update(fields)
    choices = [] if usage is not None and content is None and finish is None and not fields else [
        {"index": 0, "delta": delta, "finish_reason": finish}
    ]
    out: dict[str, Any] = {"id": "c1", "object": "chat.completion.chunk", "created": 0,
                           "model": "m1", "choices": choices}
    if usage is not None:
        out["usage"] = usage
    return out


def stall_after_first(h: Any, body: dict) -> None:
    """A `chat` script: the reply starts ("first"), then the server goes silent until the
    client leaves, as a server stuck mid-reply does; for cancel and timeout tests."""
    h.sse_start()
    h.sse_send(chunk("first"))
    h.stall_until_client_leaves()


class FaultServer:
    """A loopback HTTP server whose answers the test scripts.

    `models` answers GET /v1/models (an int: that status); `get`, when set, answers every GET
    instead (called with the handler); `chat` is called with the handler and the parsed
    request body for POST /v1/chat/completions."""

    def __init__(self) -> None:
        self.models: list[str] | int = ["m1", "m2"]
        self.chat: Callable[[Any, dict], None] = lambda h, body: h.sse([chunk("ok", "stop")])
        self.get: Callable[[Any], None] | None = None
        self.requests: list[dict] = []
        self.auth: list[str | None] = []
        self.disconnected = threading.Event()
        self.release = threading.Event()  # ends every stall at teardown
        owner = self

        class Handler(BaseHTTPRequestHandler):
            protocol_version = "HTTP/1.0"

            def log_message(self, *_a: Any) -> None:
                pass

            def do_GET(self) -> None:
                owner.auth.append(self.headers.get("Authorization"))
                if owner.get is not None:
                    return owner.get(self)
                if self.path.rstrip("/") != "/v1/models":
                    return self.status(404, {"detail": "Not Found"})
                if isinstance(owner.models, int):
                    return self.status(owner.models, {"error": {"message": f"status {owner.models}"}})
                self.json(200, {"object": "list", "data": [{"id": m, "object": "model"} for m in owner.models]})

            def do_POST(self) -> None:
                owner.auth.append(self.headers.get("Authorization"))
                body = json.loads(self.rfile.read(int(self.headers.get("Content-Length", 0))) or b"{}")
                owner.requests.append(body)
                owner.chat(self, body)

            # helpers for the scripts
            def json(self, code: int, payload: Any, headers: dict[str, str] | None = None) -> None:
                data = json.dumps(payload).encode()
                self.send_response(code)
                self.send_header("Content-Type", "application/json")
                self.send_header("Content-Length", str(len(data)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                self.wfile.write(data)

            def raw(self, code: int, content_type: str, body: bytes, headers: dict[str, str] | None = None) -> None:
                """A body as it is, with this Content-Type (and Content-Length)."""
                self.send_response(code)
                self.send_header("Content-Type", content_type)
                self.send_header("Content-Length", str(len(body)))
                for k, v in (headers or {}).items():
                    self.send_header(k, v)
                self.end_headers()
                try:
                    self.wfile.write(body)
                except OSError:
                    owner.disconnected.set()  # the client stopped reading (a body past its limit)

            def endless(self, content_type: str, piece: bytes) -> None:
                """A 200 body that never ends (no Content-Length): `piece` again and again until the
                client leaves."""
                self.send_response(200)
                self.send_header("Content-Type", content_type)
                self.end_headers()
                try:
                    while not owner.release.is_set():
                        self.wfile.write(piece)
                except OSError:
                    owner.disconnected.set()

            def status(self, code: int, payload: Any, headers: dict[str, str] | None = None) -> None:
                self.json(code, payload, headers)

            def sse_start(self) -> None:
                self.send_response(200)
                self.send_header("Content-Type", "text/event-stream")
                self.end_headers()

            def sse_send(self, payload: Any) -> None:
                text = payload if isinstance(payload, str) else json.dumps(payload)
                self.wfile.write(f"data: {text}\n\n".encode())
                self.wfile.flush()

            def sse(self, chunks: list[Any], done: bool = True) -> None:
                self.sse_start()
                for c in chunks:
                    self.sse_send(c)
                if done:
                    self.sse_send("[DONE]")

            def stall_until_client_leaves(self) -> None:
                """Send nothing more; note when the client closes its end."""
                self.connection.settimeout(0.1)
                deadline = time.monotonic() + 20
                while time.monotonic() < deadline and not owner.release.is_set():
                    try:
                        if self.connection.recv(1) == b"":
                            owner.disconnected.set()
                            return
                    except TimeoutError:
                        continue
                    except OSError:
                        owner.disconnected.set()
                        return

        self.httpd = ThreadingHTTPServer(("127.0.0.1", 0), Handler)
        self.httpd.daemon_threads = True
        self.url = f"http://127.0.0.1:{self.httpd.server_address[1]}/v1"
        self.thread = threading.Thread(target=self.httpd.serve_forever, kwargs={"poll_interval": 0.05}, daemon=True)

    def __enter__(self) -> FaultServer:
        self.thread.start()
        return self

    def __exit__(self, *_exc: Any) -> None:
        self.release.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def free_port() -> int:
    """A loopback port nothing listens on (bound, then let go): a dead server's address."""
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def openai_backend(url: str, model: str | None = None, **options: Any) -> OpenAIBackend:
    """The real openai backend pointed at `url` with the test key's variable and short
    timeouts (2 s connect, 5 s read: a test that hangs fails fast); `options` override."""
    opts = {"base_url": url, "api_key_env": KEY_ENV, "connect_timeout": 2.0, "read_timeout": 5.0}
    opts.update(options)
    return OpenAIBackend(model, opts)
