"""A 100 KB source file attached to a question: from Enter to the first token, how much is
our handling (reading, checking, counting, building the prompt) and how much is the engine
evaluating the prompt. Real llama.cpp on Gemma 3 270M (`--model gemma3-270m`: its 32k
training context holds the file; the default SmolLM2's 8k does not, and refuses it with one
line), through the conversation core as both front ends use it.

    .venv/bin/python bench/bench_files.py [--kb 100] [--runs 3]
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
import time
from dataclasses import replace
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
os.environ.setdefault("AIGC_CHAT_CONFIG", os.path.join(tempfile.mkdtemp(), "none.toml"))
os.environ.setdefault("AIGC_CHAT_CACHE_DIR", str(REPO / ".test-cache"))

from aigc_chat.attachments import read_file, render  # noqa: E402 - after the config is pointed away
from aigc_chat.chat_types import Message  # noqa: E402
from aigc_chat.config import Config  # noqa: E402
from aigc_chat.conversation import Conversation, plan_prompt  # noqa: E402
from aigc_chat.default_model import ensure_gemma  # noqa: E402
from aigc_chat.loader import load_backend  # noqa: E402


def source_file(folder: Path, kb: int) -> Path:
    """Python-looking source of about `kb` KB (this repository's own, repeated)."""
    text = "".join(p.read_text() for p in sorted((REPO / "src" / "aigc_chat").glob("*.py")))
    path = folder / "big_module.py"
    path.write_text((text * (kb * 1024 // len(text) + 1))[: kb * 1024])
    return path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("--kb", type=int, default=100)
    ap.add_argument("--runs", type=int, default=3)
    args = ap.parse_args()
    model = ensure_gemma()
    cfg = Config(path=Path(os.environ["AIGC_CHAT_CONFIG"]), model=str(model))
    cfg = replace(cfg, backends={"llama": {"n_ctx": 0}},  # 0: the model's training context
                  generation=cfg.generation.with_updates(max_tokens=1, temperature=0.0))
    backend = load_backend(cfg)
    print(f"machine: {os.cpu_count()} CPUs, load average {os.getloadavg()[0]:.2f}; model {model.name}")
    with tempfile.TemporaryDirectory() as tmp:
        path = source_file(Path(tmp), args.kb)
        rows = []
        for _ in range(args.runs):
            backend._llm.reset()  # type: ignore[attr-defined]  # no prefix reuse between runs
            conv = Conversation(cfg)
            conv.attach_backend(backend, external=True)
            t0 = time.perf_counter()
            f = read_file(str(path))
            t1 = time.perf_counter()
            counted = conv.count_file(f)  # tokenises the file once: the context check
            t2 = time.perf_counter()
            turn = conv.begin("send", "Summarise this module.", [counted])
            plan = plan_prompt(backend, "", conv.messages, cfg.generation)  # what Turn.start does first
            t3 = time.perf_counter()
            backend.tokenize_messages([Message("user", render("Summarise this module.", [counted]))])
            t4 = time.perf_counter()  # the engine tokenises its prompt once more, then evaluates
            result = turn.consume()
            t5 = time.perf_counter()
            ttft = result.time_to_first_token or 0.0
            rows.append({"read": t1 - t0, "count": t2 - t1, "plan": t3 - t2, "tokenize": t4 - t3,
                         "ttft": ttft, "total": t5 - t0, "tokens": plan.prompt_tokens or 0})
            conv.close()
        med = {k: statistics.median(r[k] for r in rows) for k in rows[0]}
        ours = med["read"] + med["count"] + med["plan"] + med["tokenize"]
        evaluate = max(med["ttft"] - med["tokenize"], 0.0)
        print(f"{args.kb} KB file, {med['tokens']:,.0f} prompt tokens, median of {args.runs}:")
        print(f"  ours: read {med['read'] * 1000:.0f} ms, count {med['count'] * 1000:.0f} ms, "
              f"plan {med['plan'] * 1000:.0f} ms, the engine's own tokenising {med['tokenize'] * 1000:.0f} ms "
              f"= {ours * 1000:.0f} ms")
        print(f"  prompt evaluation: {evaluate:.2f} s ({med['tokens'] / max(evaluate, 1e-9):,.0f} tok/s); "
              f"Enter to first token {ours - med['tokenize'] + med['ttft']:.2f} s, "
              f"ours {100 * ours / (ours + evaluate):.1f}% of it")
    backend.close()
    sys.exit(0)


if __name__ == "__main__":
    main()
