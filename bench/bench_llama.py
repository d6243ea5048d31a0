"""Benchmark the llama.cpp backend on Gemma 3 270M (the default until issue 12).

1. Decode tokens/s through our backend against llama-cpp-python called directly (same
   model, prompt tokens and sampling), runs interleaved so machine noise hits both alike.
2. Time to first token at turn 10 against turn 1 of one conversation (KV prefix reuse).
3. `aigc-chat --help` wall time.

    .venv/bin/python bench/bench_llama.py [--rounds 5] [--tokens 128]
"""

from __future__ import annotations

import argparse
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("AIGC_CHAT_CACHE_DIR", str(Path(__file__).resolve().parent.parent / ".test-cache"))
os.environ.setdefault("AIGC_CHAT_DATA_DIR", tempfile.mkdtemp())
os.environ.setdefault("AIGC_CHAT_CONFIG", os.path.join(tempfile.mkdtemp(), "none.toml"))

from aigc_chat.backends.llama_cpp_backend import LlamaCppBackend
from aigc_chat.chat_types import Message
from aigc_chat.config import Config
from aigc_chat.conversation import Conversation, plan_prompt
from aigc_chat.default_model import ensure_gemma  # the figures in the docs are Gemma 3 270M's
from aigc_chat.params import GenerationParams


def direct_decode(llm, prompt_tokens: list[int], n: int) -> float:
    """llama-cpp-python's own streaming completion, as a user of the library would call it."""
    llm.reset()
    t_first = None
    count = 0
    for _chunk in llm.create_completion(prompt_tokens, max_tokens=n, temperature=0.0, stream=True,
                                        top_k=40, top_p=0.95, min_p=0.05, repeat_penalty=1.0):
        count += 1
        if t_first is None:
            t_first = time.perf_counter()
    return (count - 1) / (time.perf_counter() - t_first)


def ours_decode(backend: LlamaCppBackend, messages: list[Message], n: int) -> float:
    backend._llm.reset()
    params = GenerationParams(temperature=0.0, max_tokens=n)
    return backend.stream_chat(messages, params).consume().decode_tokens_per_s


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=128)
    ap.add_argument("--turns", type=int, default=10)
    args = ap.parse_args()
    path = ensure_gemma()
    backend = LlamaCppBackend(str(path), {"n_ctx": 4096})
    backend.load()
    llm = backend._llm
    # A prompt that does not end the turn early: the base model keeps writing.
    messages = [Message("user", "Write a long story about a lighthouse keeper and the sea.")]
    prompt = backend.tokenize_messages(messages)
    print(f"model: {path.name}  threads: {llm.n_threads}  info: {backend.info().device}")
    ours, direct = [], []
    ours_decode(backend, messages, 16)  # warm-up: first-call costs are not decode speed
    for _ in range(args.rounds):
        direct.append(direct_decode(llm, prompt, args.tokens))
        ours.append(ours_decode(backend, messages, args.tokens))
    mo, md = statistics.median(ours), statistics.median(direct)
    print(f"decode tok/s  ours: {mo:.1f}  llama-cpp-python direct: {md:.1f}  "
          f"ratio: {mo / md:.3f}  (target >= 0.97; {args.rounds} interleaved rounds, median)")
    print(f"  ours  : {', '.join(f'{x:.1f}' for x in ours)}")
    print(f"  direct: {', '.join(f'{x:.1f}' for x in direct)}")

    # Time to first token through a 10-turn conversation, repeated; the model is warm.
    evaluated: list[int] = []
    real_eval = llm.eval
    llm.eval = lambda toks: (evaluated.append(len(toks)), real_eval(toks))[1]
    ratios = []
    for rep in range(args.rounds):
        llm.reset()
        params = GenerationParams(temperature=0.0, max_tokens=48)
        conv = Conversation(Config(path=Path(os.devnull), generation=params))  # no history: nothing stored
        conv.attach_backend(backend, external=True)
        ttft = []
        for turn in range(args.turns):
            evaluated.clear()
            r = conv.begin("send", f"Tell me one more fact about the sea, number {turn + 1}.").consume()
            ttft.append(r.time_to_first_token)
            if rep == 0:
                print(f"  turn {turn + 1:2d}: prompt {r.prompt_tokens:4d} tok, evaluated {evaluated[0]:4d} new, "
                      f"first token {r.time_to_first_token * 1000:6.1f} ms")
        ratios.append(ttft[-1] / ttft[0])
    print(f"TTFT turn {args.turns} / turn 1: median {statistics.median(ratios):.2f} over {args.rounds} "
          f"conversations ({', '.join(f'{x:.2f}' for x in ratios)}) (target <= 1.5)")
    llm.eval = real_eval

    # Without prefix reuse, for contrast: re-evaluate the whole turn-10 prompt.
    llm.reset()
    t0 = time.perf_counter()
    last_prompt = plan_prompt(backend, "", conv.messages, params).messages[:-1]
    backend.stream_chat(last_prompt, GenerationParams(temperature=0.0, max_tokens=1)).consume()
    print(f"  (turn-{args.turns} prompt evaluated from scratch: {(time.perf_counter() - t0) * 1000:.1f} ms)")

    exe = Path(sys.executable).parent / "aigc-chat"
    times = []
    for _ in range(5):
        t0 = time.perf_counter()
        subprocess.run([str(exe), "--help"], capture_output=True, check=True)
        times.append(time.perf_counter() - t0)
    print(f"aigc-chat --help: median {statistics.median(times) * 1000:.0f} ms (target < 300 ms)")
    backend.close()


if __name__ == "__main__":
    main()
