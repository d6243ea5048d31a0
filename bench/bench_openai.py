"""Benchmark the openai backend against llama-cpp-python's server on the default model.

1. Decode tokens/s and time to first token through our backend against the openai client
   used directly on the same server (same prompt, seed and sampling), runs interleaved so
   machine noise hits both alike: the cost of our helper thread and shared stream logic;
   and the client-side first-token cost alone, against an instant loopback server.
2. Cancel latency: from setting the cancel event to the stream's end, while the server is
   generating, and while it is silent (a stalled loopback server).
3. How long failures take to surface: connection refused, unknown model.

    .venv/bin/python bench/bench_openai.py [--rounds 5] [--tokens 64] [--threads 1]
"""

from __future__ import annotations

import argparse
import http.server
import os
import socket
import statistics
import subprocess
import sys
import threading
import time
import urllib.request
from pathlib import Path

os.environ.setdefault("AIGC_CHAT_CACHE_DIR", str(Path(__file__).resolve().parent.parent / ".test-cache"))

from aigc_chat.backends.openai_backend import OpenAIBackend
from aigc_chat.chat_types import Message
from aigc_chat.default_model import ensure_gemma  # the figures in the docs are Gemma 3 270M's
from aigc_chat.errors import BackendError
from aigc_chat.params import GenerationParams

REPO = Path(__file__).resolve().parent.parent

PROMPT = "Write a long story about a lighthouse keeper and the sea."


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_server(threads: int) -> tuple[subprocess.Popen, str]:
    port = free_port()
    proc = subprocess.Popen(
        [sys.executable, str(REPO / "tests" / "openai_llama_server.py"), "--model", str(ensure_gemma()),
         "--port", str(port), "--n_threads", str(threads)],
        stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL, cwd=REPO,
    )
    url = f"http://127.0.0.1:{port}/v1"
    for _ in range(600):
        try:
            urllib.request.urlopen(f"{url}/models", timeout=2).close()
            return proc, url
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise SystemExit("the server did not start")


def ours(url: str, tokens: int, seed: int) -> tuple[float, float, int]:
    b = OpenAIBackend(None, {"base_url": url})
    b.load()
    r = b.stream_chat([Message("user", PROMPT)], GenerationParams(max_tokens=tokens, seed=seed)).consume()
    b.close()
    return r.time_to_first_token or 0.0, r.decode_tokens_per_s or 0.0, r.completion_tokens


def direct(url: str, tokens: int, seed: int) -> tuple[float, float, int]:
    import openai

    client = openai.OpenAI(base_url=url, api_key="no-key", max_retries=0)
    model = client.models.list().data[0].id
    p = GenerationParams(max_tokens=tokens, seed=seed)
    t0 = time.perf_counter()
    first = last = None
    n = 0
    stream = client.chat.completions.create(
        model=model, messages=[{"role": "user", "content": PROMPT}], stream=True,
        temperature=p.temperature, top_p=p.top_p, max_tokens=tokens, seed=seed,
        extra_body={"top_k": p.top_k, "min_p": p.min_p, "repeat_penalty": p.repeat_penalty},
    )
    for chunk in stream:
        if chunk.choices and chunk.choices[0].delta.content:
            now = time.perf_counter()
            first = first or now
            last = now
            n += 1
    client.close()
    rate = (n - 1) / (last - first) if n > 1 and last and first and last > first else 0.0
    return (first - t0) if first else 0.0, rate, n


def cancel_latency_generating(url: str) -> float:
    b = OpenAIBackend(None, {"base_url": url})
    b.load()
    cancel = threading.Event()
    stream = b.stream_chat([Message("user", PROMPT)], GenerationParams(max_tokens=400), cancel)
    stamp: list[float] = []

    def press() -> None:  # as the TUI's Esc would: from another thread, mid-reply
        time.sleep(0.1)
        stamp.append(time.perf_counter())
        cancel.set()

    for i, _ in enumerate(stream):
        if i == 3:
            threading.Thread(target=press).start()
    return time.perf_counter() - stamp[0]


class _Stall(http.server.BaseHTTPRequestHandler):
    protocol_version = "HTTP/1.0"

    def log_message(self, *_a: object) -> None:
        pass

    def do_GET(self) -> None:
        body = b'{"object":"list","data":[{"id":"m","object":"model"}]}'
        self.send_response(200)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        self.wfile.write(b'data: {"id":"c","object":"chat.completion.chunk","created":0,"model":"m",'
                         b'"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}\n\n')
        self.wfile.flush()
        time.sleep(30)


class _Instant(_Stall):
    """Answers a chat at once with 20 one-token chunks: isolates the client's own cost."""

    def do_POST(self) -> None:
        self.rfile.read(int(self.headers.get("Content-Length", 0)))
        self.send_response(200)
        self.send_header("Content-Type", "text/event-stream")
        self.end_headers()
        piece = (b'data: {"id":"c","object":"chat.completion.chunk","created":0,"model":"m",'
                 b'"choices":[{"index":0,"delta":{"content":"x"},"finish_reason":null}]}\n\n')
        end = (b'data: {"id":"c","object":"chat.completion.chunk","created":0,"model":"m",'
               b'"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\ndata: [DONE]\n\n')
        try:
            self.wfile.write(piece * 20 + end)
        except OSError:
            pass


def client_overhead(rounds: int = 30) -> tuple[float, float]:
    """Median time to first token against an instant server: ours, bare openai client."""
    import openai

    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Instant)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{httpd.server_address[1]}/v1"
    b = OpenAIBackend("m", {"base_url": url})
    b.load()
    client = openai.OpenAI(base_url=url, api_key="no-key", max_retries=0)
    ours_t, direct_t = [], []
    for _ in range(rounds):
        r = b.stream_chat([Message("user", "hi")], GenerationParams(max_tokens=64)).consume()
        ours_t.append(r.time_to_first_token or 0.0)
        t0 = time.perf_counter()
        first = None
        messages = [{"role": "user", "content": "hi"}]
        for chunk in client.chat.completions.create(model="m", messages=messages, stream=True):
            if first is None and chunk.choices and chunk.choices[0].delta.content:
                first = time.perf_counter() - t0
        direct_t.append(first or 0.0)
    httpd.shutdown()
    return statistics.median(ours_t), statistics.median(direct_t)


def cancel_latency_silent() -> float:
    httpd = http.server.ThreadingHTTPServer(("127.0.0.1", 0), _Stall)
    httpd.daemon_threads = True
    threading.Thread(target=httpd.serve_forever, daemon=True).start()
    b = OpenAIBackend(None, {"base_url": f"http://127.0.0.1:{httpd.server_address[1]}/v1", "read_timeout": 60.0})
    b.load()
    cancel = threading.Event()
    stream = b.stream_chat([Message("user", "hi")], GenerationParams(max_tokens=10), cancel)
    it = iter(stream)
    next(it)
    stamp: list[float] = []

    def press() -> None:
        time.sleep(0.5)
        stamp.append(time.perf_counter())
        cancel.set()

    threading.Thread(target=press).start()
    for _ in it:
        pass
    took = time.perf_counter() - stamp[0]
    httpd.shutdown()
    return took


def failure_time(url: str, model: str | None) -> tuple[float, str]:
    t0 = time.perf_counter()
    try:
        OpenAIBackend(model, {"base_url": url}).load()
        return time.perf_counter() - t0, "no error?"
    except BackendError as exc:
        return time.perf_counter() - t0, str(exc)


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=1, help="server threads")
    args = ap.parse_args()
    proc, url = start_server(args.threads)
    try:
        ours(url, 4, 0)  # warm both paths
        direct(url, 4, 0)
        rows: dict[str, list[tuple[float, float, int]]] = {"ours": [], "direct": []}
        for i in range(args.rounds):
            order = (("ours", ours), ("direct", direct)) if i % 2 == 0 else (("direct", direct), ("ours", ours))
            for name, fn in order:
                rows[name].append(fn(url, args.tokens, 100 + i))
        print(f"server: llama-cpp-python, default model, {args.threads} thread(s); "
              f"{args.rounds} rounds x {args.tokens} tokens")
        for name in ("ours", "direct"):
            ttft = statistics.median(r[0] for r in rows[name])
            rate = statistics.median(r[1] for r in rows[name])
            print(f"  {name:<6} first token {ttft * 1000:7.1f} ms   decode {rate:6.1f} tok/s")
        ratio = statistics.median(a[1] / b[1] for a, b in zip(rows["ours"], rows["direct"], strict=True) if b[1])
        print(f"  decode ratio ours/direct (median of paired rounds): {ratio:.3f}")
        o, d = client_overhead()
        print(f"client-side first-token cost against an instant local server: ours {o * 1000:.2f} ms, "
              f"bare client {d * 1000:.2f} ms (median of 30)")
        gen = [cancel_latency_generating(url) for _ in range(3)]
        print(f"cancel while generating: stream ended {statistics.median(gen) * 1000:.1f} ms "
              "after the cancel (median of 3)")
        print(f"cancel while the server is silent (read_timeout 60 s): {cancel_latency_silent() * 1000:.1f} ms")
        t, msg = failure_time(f"http://127.0.0.1:{free_port()}/v1", None)
        print(f"connection refused surfaces in {t * 1000:.1f} ms: {msg}")
        t, msg = failure_time(url, "no-such-model")
        print(f"unknown model surfaces in {t * 1000:.1f} ms: {msg}")
    finally:
        proc.terminate()
        proc.wait(10)


if __name__ == "__main__":
    main()
