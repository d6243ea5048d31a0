"""Compaction (aigc_chat.compaction) on real models through llama.cpp, through the conversation
core as both front ends drive it.

    .venv/bin/python bench/bench_compaction.py [--exchanges 60] [--models default,gemma3-270m]
                                               [--summary-tokens 256] [--answer-tokens 24]

For each model:

1. **Tokens sent per turn**: a conversation of `--exchanges` exchanges (questions and short
   answers, written in, not generated: only the counts matter here) with 10 facts planted in
   its first 10 questions. The prompt of the next turn is counted with the model's own
   tokenizer before compaction (the whole path) and after (the summary and the 2 kept
   exchanges): both, and their ratio.
2. **Time to compact**: `Conversation.compact()` on that conversation, the model writing the
   summary (at most `--summary-tokens` tokens, greedy), wall time. The context is set so the
   whole transcript fits in one chunk (n_ctx 8192).
3. **Facts that survive**: each of the 10 facts asked for after compaction on the compacted
   branch (greedy, `--answer-tokens`), counted when the answer holds the fact's key word; and
   how many key words the summary itself kept. The same questions asked on the original branch
   (everything still in the prompt) are the baseline beside it.

This measures the mechanism's cost and a small model's quality; the quality is the model's.
"""

from __future__ import annotations

import argparse
import os
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("AIGC_CHAT_CONFIG", os.path.join(tempfile.mkdtemp(), "none.toml"))

from aigc_chat.config import load_config  # noqa: E402 - after the config is pointed away
from aigc_chat.conversation import Conversation, with_system  # noqa: E402
from aigc_chat.loader import load_backend, model_settings_for  # noqa: E402
from aigc_chat.tree import Node  # noqa: E402

FACTS = [  # (what the user says, the question asked later, the key word the answer must hold)
    ("My sister's name is Mira.", "What is my sister's name?", "mira"),
    ("My locker number is 4821.", "What is my locker number?", "4821"),
    ("I live in the town of Galway.", "In which town do I live?", "galway"),
    ("My dog is called Biscuit.", "What is my dog called?", "biscuit"),
    ("My favourite colour is teal.", "What is my favourite colour?", "teal"),
    ("I work as a baker.", "What is my job?", "baker"),
    ("My car is a red Volvo.", "What make is my car?", "volvo"),
    ("I was born in 1987.", "In which year was I born?", "1987"),
    ("My best friend is called Tomas.", "What is my best friend called?", "tomas"),
    ("I am allergic to peanuts.", "What am I allergic to?", "peanut"),
]
FILLER = [
    ("What is the capital of France?", "Paris."), ("Name a large river in Africa.", "The Nile."),
    ("What do bees make?", "Honey."), ("How many legs does a spider have?", "Eight."),
    ("What colour is grass?", "Green."), ("Who wrote Hamlet?", "Shakespeare."),
    ("What is the boiling point of water?", "100 degrees Celsius at sea level."),
    ("Name a planet with rings.", "Saturn."), ("What is two plus three?", "Five."),
    ("Name a fruit that is yellow.", "A banana."), ("What is the opposite of up?", "Down."),
]


def build(conv: Conversation, exchanges: int) -> None:
    """The conversation, written into the tree (no history): facts first, then filler."""
    parent = None
    for i in range(exchanges):
        if i < len(FACTS):
            q, a = FACTS[i][0], "Noted, I will remember that."
        else:
            q, a = FILLER[i % len(FILLER)]
        parent = conv.tree.add(Node("user", q), parent)
        parent = conv.tree.add(Node("assistant", a, finish_reason="stop"), parent)


def sent_tokens(conv: Conversation, question: str) -> int:
    assert conv.backend is not None
    from aigc_chat.chat_types import Message

    msgs = with_system(conv.settings.system_prompt, [*conv.messages, Message("user", question)])
    return conv.backend.count_tokens(msgs) or 0


def ask_facts(conv: Conversation) -> int:
    """Ask each fact's question on the current branch (each from the same point), count hits."""
    hits = 0
    leaf = conv.tree.leaf
    for _said, question, key in FACTS:
        conv.tree.leaf = leaf
        result = conv.begin("send", question).consume()
        hits += key in result.text.lower()
    conv.tree.leaf = leaf
    return hits


def run(model: str, args: argparse.Namespace) -> dict[str, object]:
    config = load_config()
    config.model = model
    config.backends.setdefault("llama", {})["n_ctx"] = 8192
    config = model_settings_for(config)
    config.generation = config.generation.with_updates(temperature=0.0, seed=1, max_tokens=args.summary_tokens)
    conv = Conversation(config)
    t0 = time.perf_counter()
    conv.attach_backend(load_backend(config, None))
    load_s = time.perf_counter() - t0
    build(conv, args.exchanges)
    original_leaf = conv.tree.leaf
    before = sent_tokens(conv, "next question")
    t0 = time.perf_counter()
    done = conv.compact()
    compact_s = time.perf_counter() - t0
    after = sent_tokens(conv, "next question")
    kept_in_summary = sum(key in done.summary.content.lower() for *_x, key in FACTS)
    conv.settings.params = conv.settings.params.with_updates(max_tokens=args.answer_tokens)
    after_hits = ask_facts(conv) if args.answer_tokens else -1
    conv.tree.leaf = original_leaf
    before_hits = ask_facts(conv) if args.answer_tokens else -1
    info = conv.backend.info() if conv.backend else None
    conv.close()
    return {"model": Path(info.model).name if info else model, "load_s": load_s, "before": before, "after": after,
            "compact_s": compact_s, "summary_tokens": done.tokens_after, "in_summary": kept_in_summary,
            "hits_after": after_hits, "hits_before": before_hits, "summary": done.summary.content}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--exchanges", type=int, default=60)
    p.add_argument("--models", default="default,gemma3-270m",
                   help="comma-separated: 'default' (the bundled model) or a name/path for --model")
    p.add_argument("--summary-tokens", type=int, default=256)
    p.add_argument("--answer-tokens", type=int, default=24, help="0: skip asking for the facts")
    args = p.parse_args()
    rows = []
    for name in args.models.split(","):
        row = run("" if name == "default" else name, args)
        rows.append(row)
        print(f"\n[{row['model']}] summary ({row['compact_s']:.1f} s):\n{row['summary']}\n", file=sys.stderr)
    print(f"{args.exchanges} exchanges, 10 facts planted in the first 10, 2 exchanges kept, greedy")
    print(f"{'model':36} {'sent/turn before':>16} {'after':>7} {'ratio':>6} {'compact s':>9} "
          f"{'facts in summary':>16} {'asked: after':>12} {'before':>7}")
    for r in rows:
        ratio = r["before"] / r["after"] if r["after"] else float("nan")  # type: ignore[operator]
        print(f"{r['model']!s:36} {r['before']:>16,} {r['after']:>7,} {ratio:>5.1f}x {r['compact_s']:>9.1f} "
              f"{r['in_summary']!s:>13}/10 {r['hits_after']!s:>9}/10 {r['hits_before']!s:>4}/10")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
