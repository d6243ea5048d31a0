"""Moving between branches and the KV cache, on the real default model (SmolLM2-135M-Instruct
through llama.cpp), through the conversation core as both front ends drive it.

    .venv/bin/python bench/bench_branches.py [--rounds 5] [--turns 10] [--reply-tokens 40]

Each round builds a fresh conversation of `--turns` questions and real replies, then
regenerates the last reply (so the last question has two replies, and the engine's cache
holds the new one). Then, time to first token of:

- **switch**: move to the other reply (`Conversation.switch`) and ask a question there. The
  engine keeps the longest common token prefix, so only the reply switched to and the new
  question are evaluated; the shared prefix (every turn before the fork) is not.
- **next turn**: the next question on the same branch (only the question is new).
- **scratch**: the same prompt as *switch*, with the engine's cache emptied first: every
  token of the conversation evaluated.
- **deep switch**: an edit of question `turns // 2` (and its answer), then back to the
  original question and a question there. Without kept states everything after the fork
  point (half the conversation) is evaluated again; with them (backends/kept_states.py, the
  default) the branch's own KV state is put back and only the new question is evaluated.

Both are run side by side, round by round: the default engine and the same engine with kept
states off (`kept_states_mb = 0`). Figures are medians over the rounds. Target: switch <= 1.5x
the next turn on a 10-turn conversation, far below scratch.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))
os.environ.setdefault("AIGC_CHAT_CONFIG", os.path.join(tempfile.mkdtemp(), "none.toml"))

from aigc_chat.config import load_config  # noqa: E402 - after the config is pointed away
from aigc_chat.conversation import Conversation  # noqa: E402
from aigc_chat.loader import load_backend, model_settings_for  # noqa: E402

QUESTIONS = [
    "What is the capital of France?", "Name a large river in Africa.", "What do bees make?",
    "How many legs does a spider have?", "What colour is grass?", "Who wrote Hamlet?",
    "What is the boiling point of water?", "Name a planet with rings.", "What do cows drink?",
    "What is two plus three?", "Name a fruit that is yellow.", "What is the opposite of up?",
]


def ttft(conv: Conversation, action: str, text: str = "", **kw: object) -> float:
    result = conv.begin(action, text, **kw).consume()  # type: ignore[arg-type]
    assert result.time_to_first_token is not None, result
    return result.time_to_first_token


def empty_cache(conv: Conversation) -> None:
    """llama.cpp's own cache emptied (and nothing kept): the next prompt is evaluated from its
    first token."""
    conv.backend._llm.reset()  # type: ignore[union-attr]  # llama_cpp.Llama: n_tokens = 0
    conv.backend.kept.clear()  # type: ignore[union-attr]


def one_round(conv: Conversation, turns: int, seed: int) -> dict[str, float]:
    empty_cache(conv)
    conv.new()
    conv.set_params(seed=seed)
    for q in QUESTIONS[:turns]:
        conv.begin("send", q).consume()
    conv.begin("regenerate").consume()  # the cache now holds the second reply
    last = conv.path()[-1]
    prompt_tokens = conv.last_plan.prompt_tokens if conv.last_plan else 0
    out: dict[str, float] = {"prompt tokens": float(prompt_tokens or 0)}
    conv.switch(last, -1)  # back to the first reply
    out["switch"] = ttft(conv, "send", "And one more thing?")
    switched_question = conv.path()[-2]
    out["next turn"] = ttft(conv, "send", "And after that?")
    conv.show(switched_question)  # the same prompt as the switch, with nothing cached
    empty_cache(conv)
    out["scratch"] = ttft(conv, "regenerate")
    # an edit half-way, then back to the original question there
    middle = [n for n in conv.path() if n.role == "user"][turns // 2]
    conv.begin("edit", middle.content + " Answer briefly.", target=middle).consume()
    conv.switch(conv.path()[-2], -1)
    out["deep switch"] = ttft(conv, "send", "Anything else?")
    return out


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--rounds", type=int, default=5)
    p.add_argument("--turns", type=int, default=10)
    p.add_argument("--reply-tokens", type=int, default=40)
    p.add_argument("--model", default="", help="a model name or path (default: the default model)")
    args = p.parse_args()
    cfg = model_settings_for(load_config().with_overrides(
        max_tokens=args.reply_tokens, temperature=0.2, **({"model": args.model} if args.model else {})))
    kept = load_backend(cfg)
    from aigc_chat.backends.llama_cpp_backend import LlamaCppBackend

    plain = LlamaCppBackend(kept.model, {**kept.options, "kept_states_mb": 0})  # the same engine, nothing kept
    plain.load()
    results: dict[str, list[dict[str, float]]] = {"kept states (default)": [], "kept states off": []}
    try:
        info = kept.info()
        print(f"{info.name} {Path(info.model).name} on {info.device}, context {info.context_length}; "
              f"{args.turns} turns of replies up to {args.reply_tokens} tokens, {args.rounds} rounds")
        for seed in range(args.rounds):  # the two side by side, round by round
            for name, backend in zip(results, (kept, plain), strict=True):
                conv = Conversation(cfg)  # nothing stored: the history is not what is measured here
                conv.attach_backend(backend, external=True)
                results[name].append(one_round(conv, args.turns, seed))
    finally:
        kept.close()
        plain.close()
    for name, rounds in results.items():
        med = {k: statistics.median(r[k] for r in rounds) for k in rounds[0]}
        print(f"\n{name}: prompt at the switch {med['prompt tokens']:.0f} tokens")
        for what in ("next turn", "switch", "deep switch", "scratch"):
            runs = ", ".join(f"{r[what] * 1000:.0f}" for r in rounds)
            print(f"  {what:12} {med[what] * 1000:7.1f} ms  (runs: {runs})")
        print(f"  switch / next turn:       {med['switch'] / med['next turn']:.2f}x  (target <= 1.5x)")
        print(f"  deep switch / next turn:  {med['deep switch'] / med['next turn']:.2f}x")
        print(f"  scratch / switch:         {med['scratch'] / med['switch']:.1f}x")
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
