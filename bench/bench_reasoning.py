"""A 5,000-token reasoning block then a 1,000-token answer: the cost per 1,000 tokens must stay
flat, and the answer must not slow down because the thinking before it was long.

    .venv/bin/python bench/bench_reasoning.py [--think 5000] [--answer 1000]

(a) the stream layer every backend shares (ChatStream: splitter, stop filter, UTF-8) through
    the conversation core, per 1,000 tokens, side by side with the same reply without a block;
(b) the TUI: the real app under Textual's pilot, the reply streamed in 20-token batches, each
    one laid out and painted before the next; wall time per 1,000 tokens of thinking and of
    answer, and the answer's against a reply of the same answer with no thinking before it.
"""

from __future__ import annotations

import argparse
import asyncio
import itertools
import os
import statistics
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("AIGC_CHAT_CONFIG", os.path.join(tempfile.mkdtemp(), "none.toml"))

from aigc_chat.config import Config  # noqa: E402 - after the config is pointed away
from aigc_chat.conversation import Conversation  # noqa: E402
from aigc_chat.reasoning import Reasoning  # noqa: E402
from tests.scripted_backend import ScriptedBackend  # noqa: E402 - the test suite's scripted backend


def reply(think: int, answer: int) -> list[str]:
    words = [f"step{i} " for i in range(think)]
    text = [f"word{i} " for i in range(answer)]
    return (["<think>", *words, "</think>\n"] if think else []) + text


def per_thousand(marks: list[float]) -> list[float]:
    return [b - a for a, b in itertools.pairwise(marks)]


def stream_layer(think: int, answer: int) -> tuple[list[float], list[float]]:
    """Seconds per 1,000 tokens through Conversation.begin/Turn.run: (thinking, answer)."""
    conv = Conversation(Config(path=Path(os.devnull)))
    conv.attach_backend(ScriptedBackend(reply(think, answer)))
    conv.settings.params = conv.settings.params.with_updates(max_tokens=think + answer + 10)
    marks = {"think": [time.perf_counter()], "answer": []}
    counts = {"think": 0, "answer": 0}
    for piece in conv.begin("send", "go").run():
        kind = "think" if isinstance(piece, Reasoning) else "answer"
        if kind == "answer" and not marks["answer"]:
            marks["answer"].append(time.perf_counter())
        counts[kind] += 1
        if counts[kind] % 1000 == 0:
            marks[kind].append(time.perf_counter())
    return per_thousand(marks["think"]), per_thousand(marks["answer"])


async def tui(think: int, answer: int, batch: int = 20) -> tuple[list[float], list[float]]:
    """Seconds per 1,000 tokens painted by the chat view: (thinking, answer)."""
    from textual.app import App

    from aigc_chat.tui.chat_view import AssistantMessage, ChatView

    class Bench(App[None]):
        def compose(self):  # type: ignore[no-untyped-def]
            yield ChatView(id="chat")

    pieces = reply(think, answer)
    words, text = pieces[1:think + 1] if think else [], pieces[-answer:]
    app = Bench()
    t_marks: list[float] = []
    a_marks: list[float] = []
    async with app.run_test(size=(100, 30)) as pilot:
        msg = AssistantMessage()
        await app.query_one(ChatView).mount(msg)
        msg.start_stream()
        t_marks.append(time.perf_counter())
        for i in range(0, len(words), batch):
            await msg.append("", "", thinking="".join(words[i:i + batch]))
            await pilot.pause()
            if (i + batch) % 1000 == 0:
                t_marks.append(time.perf_counter())
        raw = ""
        a_marks.append(time.perf_counter())
        for i in range(0, len(text), batch):
            chunk = "".join(text[i:i + batch])
            raw += chunk
            await msg.append(chunk, raw)
            await pilot.pause()
            if (i + batch) % 1000 == 0:
                a_marks.append(time.perf_counter())
    return per_thousand(t_marks), per_thousand(a_marks)


def ms(values: list[float]) -> str:
    if not values:
        return "-"
    return (f"first {values[0] * 1000:.0f} ms, last {values[-1] * 1000:.0f} ms, "
            f"median {statistics.median(values) * 1000:.0f} ms")


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--think", type=int, default=5000)
    ap.add_argument("--answer", type=int, default=1000)
    args = ap.parse_args()
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}")
    think, ans = stream_layer(args.think, args.answer)
    _, alone = stream_layer(0, args.answer)
    print(f"(a) stream layer, thinking per 1,000 tokens: {ms(think)}")
    print(f"(a) stream layer, answer per 1,000 tokens after {args.think} thinking: {ms(ans)}; "
          f"without thinking: {ms(alone)}")
    t_think, t_ans = asyncio.run(tui(args.think, args.answer))
    _, t_alone = asyncio.run(tui(0, args.answer))
    print(f"(b) TUI, thinking per 1,000 tokens painted: {ms(t_think)}")
    print(f"(b) TUI, answer per 1,000 tokens after {args.think} thinking: {ms(t_ans)}; "
          f"without thinking: {ms(t_alone)}")
    if t_ans and t_alone:
        print(f"(b) answer after thinking / answer alone: {statistics.median(t_ans) / statistics.median(t_alone):.2f}")


if __name__ == "__main__":
    main()
