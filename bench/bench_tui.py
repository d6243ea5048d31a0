"""TUI figures: start-up to first paint, streaming cost per 1,000 tokens, history pane at scale.

    .venv/bin/python bench/bench_tui.py [startup] [stream] [history] [traffic] [--runs N]

startup  `aigc-chat` is spawned in a pseudo-terminal (100x30, TERM=xterm-256color) and timed
         until the first frame that contains the status bar has been written: what a user
         waits for. The model loads in a worker after that, so load time is excluded; the
         figure is given with the default model loading in the background and with a
         missing model (nothing competes for the CPU). Median of --runs.
stream   20,000 tokens of Markdown (paragraphs, lists, code blocks) pushed into the chat
         view as fast as it takes them:
         (a) through the real path (generation worker, 50 ms batches, sanitiser, the
             Markdown stream) with a scripted backend: total time to the final render;
         (b) in 20-token batches awaited one by one (each batch parsed, laid out and
             painted before the next): time per 1,000 tokens at the start and at the end.
             Flat means streaming costs O(new text), not O(reply length).
traffic  what goes over the wire (an SSH session's bytes): `aigc-chat` in a pseudo-terminal
         (100x30) on the default model answers one prompt (greedy, --max-tokens); every byte
         it writes to the terminal while the reply streams is counted and set against the
         reply's tokens, against the reply's own text, and against one full-screen paint.
history  10,000 conversations / 200,000 messages (built with bench_history.populate):
         opening the pane (list of 500 newest + painting it), a search in the pane, and
         opening the newest conversation into the chat view.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import random
import shutil
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
sys.path.insert(0, str(REPO / "bench"))

from tests.pty_app import PtyApp  # noqa: E402 - importable once the checkout is on sys.path

WORDS = ("the model streams tokens into the chat view while the user reads and scrolls back "
         "to earlier replies with code blocks lists and tables").split()


def markdown_tokens(n: int, seed: int = 1) -> list[str]:
    """n token-sized pieces forming realistic Markdown: prose, bullet lists, fenced code."""
    rng = random.Random(seed)
    out: list[str] = []
    while len(out) < n:
        kind = rng.random()
        if kind < 0.6:
            out += [" " + rng.choice(WORDS) for _ in range(rng.randint(30, 90))]
            out.append(".\n\n")
        elif kind < 0.8:
            for _ in range(rng.randint(3, 6)):
                out.append("- ")
                out += [" " + rng.choice(WORDS) for _ in range(rng.randint(4, 10))]
                out.append("\n")
            out.append("\n")
        else:
            out.append("```python\n")
            for i in range(rng.randint(5, 15)):
                out += ["def", f" f{i}", "(x", "):", " return", f" x*{i}", "\n"]
            out.append("```\n\n")
    return out[:n]


# -- start-up ---------------------------------------------------------------------------------

def first_paint(cmd: list[str], env: dict[str, str], marker: bytes = "│ ctx".encode()) -> float:
    t0 = time.perf_counter()
    app = PtyApp(cmd, env)
    try:
        return time.perf_counter() - t0 if app.read(30, marker=marker) else float("nan")
    finally:
        app.close()


def bench_startup(runs: int) -> None:
    exe = shutil.which("aigc-chat", path=str(Path(sys.executable).parent)) or "aigc-chat"
    with tempfile.TemporaryDirectory() as tmp:
        env = dict(os.environ)
        env.update(TERM="xterm-256color", AIGC_CHAT_CONFIG=f"{tmp}/config.toml", AIGC_CHAT_DATA_DIR=f"{tmp}/data")
        env.setdefault("AIGC_CHAT_CACHE_DIR", str(REPO / ".test-cache"))
        for label, extra in (("default model loading in background", []),
                             ("missing model (no load)", ["--model", f"{tmp}/missing.gguf"])):
            first_paint([exe, *extra], env)  # warm the page cache
            times = [first_paint([exe, *extra], env) for _ in range(runs)]
            print(f"startup to first paint, {label}: median {statistics.median(times):.3f} s "
                  f"(min {min(times):.3f}, max {max(times):.3f}, {runs} runs; target <= 0.5 s)")


# -- terminal traffic -------------------------------------------------------------------------

IDLE_S = 10.0


def bench_traffic(max_tokens: int, interval_ms: int) -> None:
    from aigc_chat.history_store import HistoryStore

    Path(os.environ["AIGC_CHAT_CONFIG"]).write_text(f"[tui]\nstream_interval_ms = {interval_ms}\n")

    exe = shutil.which("aigc-chat", path=str(Path(sys.executable).parent)) or "aigc-chat"
    env = dict(os.environ, TERM="xterm-256color", COLORTERM="truecolor")
    cmd = [exe, "--temperature", "0", "--max-tokens", str(max_tokens)]
    app = PtyApp(cmd, env)
    try:
        app.read(30, marker="│ ctx".encode())
        first_frame = len(app.buf)
        if not app.read(120, marker=b"idle"):
            raise SystemExit("traffic: the model did not load in 120 s")
        app.read(2.0)  # let the load's last paints go out
        mark = len(app.buf)
        app.read(IDLE_S)  # nobody types: what does an idle screen cost?
        idle = len(app.buf) - mark
        start = len(app.buf)
        t0 = time.perf_counter()
        app.write(b"Write a long story about a lighthouse keeper and the sea.\r")
        if not app.read(300, marker=b"tok/s", since=start):
            raise SystemExit("traffic: no finished reply in 300 s")
        elapsed = time.perf_counter() - t0
        sent = len(app.buf) - start
    finally:
        app.close()
    store = HistoryStore()
    conv = store.get_conversation(store.latest_conversation_id())
    reply = conv.messages[-1]
    tokens = int((reply.stats or {}).get("completion_tokens") or 0)
    text_bytes = len(reply.content.encode())
    print(f"[tui] stream_interval_ms = {interval_ms}, 100x30: idle screen {idle:,} bytes in {IDLE_S:.0f} s "
          f"({idle / IDLE_S:.0f} B/s)")
    print(f"  reply, default model, greedy, {tokens} tokens in {elapsed:.1f} s: "
          f"{sent:,} bytes written while the reply streamed")
    print(f"  {sent / max(tokens, 1):.0f} bytes per token, {sent / elapsed / 1024:.1f} KiB/s; the reply's own "
          f"text is {text_bytes:,} bytes ({sent / max(text_bytes, 1):.1f}x); one full-screen paint is "
          f"{first_frame:,} bytes (a repaint per token would be {first_frame * tokens / max(sent, 1):.0f}x this)")


# -- streaming --------------------------------------------------------------------------------

async def stream_full_path(n: int) -> None:
    from aigc_chat.config import Config
    from aigc_chat.tui.app import ChatApp
    from tests.scripted_backend import ScriptedBackend  # the test suite's scripted backend

    pieces = markdown_tokens(n)
    with tempfile.TemporaryDirectory() as tmp:
        cfg = Config(path=Path(tmp) / "config.toml")
        cfg.generation = cfg.generation.with_updates(max_tokens=n + 10)
        app = ChatApp(cfg, store=None, backend=ScriptedBackend(pieces))
        async with app.run_test(size=(100, 30)) as pilot:
            while app.chat_screen.state != "idle":
                await pilot.pause(0.01)
            prompt = app.query_one("#prompt")
            prompt.load_text("go")
            t0 = time.perf_counter()
            await pilot.press("enter")
            while app.chat_screen.state != "idle":
                await pilot.pause(0.005)
            total = time.perf_counter() - t0
            reply = app.chat_screen.chat.last("assistant")
            ok = reply.shown_markdown == "".join(pieces)
    print(f"stream (a) full path, {n} tokens: {total:.2f} s to the final render "
          f"({n / total:,.0f} tokens/s); final text complete: {ok}")


async def stream_batches(n: int, batch: int = 20) -> None:
    from textual.app import App

    from aigc_chat.tui.chat_view import AssistantMessage, ChatView

    pieces = markdown_tokens(n)

    class Bench(App):
        def compose(self):
            yield ChatView(id="chat")

    app = Bench()
    marks: list[float] = []
    cpu: list[float] = []
    async with app.run_test(size=(100, 30)) as pilot:
        chat = app.query_one(ChatView)
        reply = AssistantMessage()
        await chat.mount(reply)
        reply.start_stream()
        raw = ""
        t0 = time.perf_counter()
        c0 = time.process_time()
        for i in range(0, n, batch):
            chunk = "".join(pieces[i:i + batch])
            raw += chunk
            await reply.append(chunk, raw)
            await pilot.pause()  # parsed, laid out and painted before the next batch
            if (i + batch) % 1000 == 0:
                marks.append(time.perf_counter())
                cpu.append(time.process_time())
        t_fin = time.perf_counter()
        await reply.finish(raw, {"completion_tokens": n}, "stop")
        await pilot.pause()
        t_end = time.perf_counter()
    per = [b - a for a, b in zip([t0, *marks[:-1]], marks, strict=True)]
    per_cpu = [b - a for a, b in zip([c0, *cpu[:-1]], cpu, strict=True)]
    print(f"stream (b) {batch}-token batches, each painted: {n} tokens in {t_fin - t0:.2f} s; "
          f"per 1,000 tokens: first {per[0] * 1000:.0f} ms, last {per[-1] * 1000:.0f} ms, "
          f"median {statistics.median(per) * 1000:.0f} ms, max {max(per) * 1000:.0f} ms; "
          f"final full render {(t_end - t_fin) * 1000:.0f} ms")
    print(f"stream (b) CPU per 1,000 tokens (the wall figures include waiting for the next frame): "
          f"first {per_cpu[0] * 1000:.0f} ms, last {per_cpu[-1] * 1000:.0f} ms, "
          f"median {statistics.median(per_cpu) * 1000:.0f} ms")


# -- history at scale ---------------------------------------------------------------------------

async def bench_history(n_conv: int, n_msg: int, runs: int) -> None:
    from bench_history import populate

    from aigc_chat.config import Config
    from aigc_chat.history_store import HistoryStore
    from aigc_chat.tui.app import ChatApp
    from tests.scripted_backend import ScriptedBackend

    with tempfile.TemporaryDirectory() as tmp:
        db = Path(tmp) / "history.sqlite3"
        store = HistoryStore(db)
        t = populate(store, n_conv, n_msg)
        store.close()
        print(f"history: built {n_conv:,} conversations / {n_msg:,} messages in {t:.1f} s")
        cfg = Config(path=Path(tmp) / "config.toml")
        store = HistoryStore(db)
        app = ChatApp(cfg, store=store, backend=ScriptedBackend(["x"]))
        async with app.run_test(size=(100, 30)) as pilot:
            while app.chat_screen.state != "idle":
                await pilot.pause(0.01)
            pane = app.chat_screen.history
            opens, searches, convs = [], [], []
            newest = store.list_conversations(limit=1)[0].id
            for _ in range(runs):
                t0 = time.perf_counter()
                pane.reload()
                await pilot.pause()
                opens.append(time.perf_counter() - t0)
                assert pane.row_count() == 500
                pane.query_text = "python code"
                t0 = time.perf_counter()
                pane.reload()
                await pilot.pause()
                searches.append(time.perf_counter() - t0)
                pane.query_text = ""
                t0 = time.perf_counter()
                await app._open(newest)
                await pilot.pause()
                convs.append(time.perf_counter() - t0)
            n_msgs = len(app.chat_screen.chat.messages())
        store.close()
    print(f"history pane open (500 newest listed and painted): median {statistics.median(opens) * 1000:.0f} ms "
          f"(max {max(opens) * 1000:.0f}; target <= 500 ms)")
    print("history pane search 'python code' (100 hits listed and painted): "
          f"median {statistics.median(searches) * 1000:.0f} ms")
    print(f"open the newest conversation ({n_msgs} messages) into the chat view: "
          f"median {statistics.median(convs) * 1000:.0f} ms")


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("what", nargs="*", default=["startup", "stream", "history"])
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--tokens", type=int, default=20_000)
    p.add_argument("--conversations", type=int, default=10_000)
    p.add_argument("--messages", type=int, default=200_000)
    p.add_argument("--max-tokens", type=int, default=300, help="traffic: reply length")
    p.add_argument("--intervals", default="50,100,200", help="traffic: [tui] stream_interval_ms values")
    a = p.parse_args(argv)
    os.environ.setdefault("AIGC_CHAT_CACHE_DIR", str(REPO / ".test-cache"))
    tmp_home = tempfile.mkdtemp()
    os.environ["AIGC_CHAT_CONFIG"] = f"{tmp_home}/config.toml"  # never the user's files
    os.environ["AIGC_CHAT_DATA_DIR"] = f"{tmp_home}/data"
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    if "startup" in a.what:
        bench_startup(a.runs)
    if "stream" in a.what:
        asyncio.run(stream_full_path(a.tokens))
        asyncio.run(stream_batches(a.tokens))
    if "history" in a.what:
        asyncio.run(bench_history(a.conversations, a.messages, a.runs))
    if "traffic" in a.what:
        for ms in a.intervals.split(","):
            bench_traffic(a.max_tokens, int(ms))
    shutil.rmtree(tmp_home, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
