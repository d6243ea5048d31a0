"""How many answers to ten easy questions stay on topic: the old default (Gemma 3 270M, a
base model) against the new one (SmolLM2-135M-Instruct), each with its shipped sampling.

An answer is on topic when it contains the question's keyword (a simple check, here only:
no test asserts a model's wording). Each question is a fresh conversation through the same
path `aigc-chat -p` takes (config, per-model settings, the conversation core), seeded so a run can be
repeated. Usage:

    python bench/bench_on_topic.py [--models gemma3-270m smollm2-135m] [--seeds 0 1 2]
                                   [--greedy] [--max-tokens 64] [-v]
"""

from __future__ import annotations

import argparse
import re
import time

from aigc_chat.config import load_config
from aigc_chat.conversation import Conversation
from aigc_chat.loader import load_backend, model_settings_for

QUESTIONS: list[tuple[str, str]] = [
    ("What is the capital of France?", r"paris"),
    ("How many legs does a spider have?", r"\beight\b|\b8\b"),
    ("What colour is the sky on a clear day?", r"blue"),
    ("What is two plus two?", r"\bfour\b|\b4\b"),
    ("Who wrote Romeo and Juliet?", r"shakespeare"),
    ("What is the largest planet in our solar system?", r"jupiter"),
    ("What gas do plants take in from the air to make food?", r"carbon dioxide|co2|co₂"),
    ("At what temperature in Celsius does water boil at sea level?", r"\b100\b"),
    ("What is the opposite of hot?", r"\bcold\b"),
    ("How many days are there in a week?", r"\bseven\b|\b7\b"),
]


def on_topic(answer: str, pattern: str) -> bool:
    return re.search(pattern, answer.lower()) is not None


def run_model(name: str, seeds: list[int], greedy: bool, max_tokens: int, verbose: bool) -> tuple[int, int, float]:
    flags = {"max_tokens": max_tokens}
    if greedy:
        flags["temperature"] = 0.0
    base = load_config().with_overrides(model=name, **flags)
    hits = total = 0
    t0 = time.perf_counter()
    backend = None
    try:
        for seed in seeds:
            cfg = model_settings_for(base.with_overrides(seed=seed))
            if backend is None:
                backend = load_backend(cfg)
                shown = {k: getattr(cfg.generation, k)
                         for k in ("temperature", "top_p", "top_k", "min_p", "repeat_penalty")}
                print(f"{name}: {shown}")
            for question, pattern in QUESTIONS:
                conv = Conversation(cfg)  # a fresh conversation per question, nothing stored
                conv.attach_backend(backend, external=True)
                answer = conv.begin("send", question).consume().text
                ok = on_topic(answer, pattern)
                hits += ok
                total += 1
                if verbose:
                    first = " ".join(answer.split())[:110]
                    print(f"  [{'ok' if ok else '--'}] seed {seed} {question} -> {first}")
    finally:
        if backend is not None:
            backend.close()
    return hits, total, time.perf_counter() - t0


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--models", nargs="+", default=["gemma3-270m", "smollm2-135m"])
    p.add_argument("--seeds", nargs="+", type=int, default=[0])
    p.add_argument("--greedy", action="store_true", help="temperature 0 instead of the shipped sampling")
    p.add_argument("--max-tokens", type=int, default=64)
    p.add_argument("-v", "--verbose", action="store_true", help="print each answer's start")
    args = p.parse_args()
    for name in args.models:
        hits, total, secs = run_model(name, args.seeds, args.greedy, args.max_tokens, args.verbose)
        mode = "greedy" if args.greedy else "shipped sampling"
        print(f"{name}: {hits}/{total} answers on topic ({mode}, seeds {args.seeds}, {secs:.0f} s)")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
