"""What rendering a chat template costs, now that Jinja templates run in a bounded process
(aigc_chat.template_process), on the default model's own template (SmolLM2's ChatML).

    .venv/bin/python bench/bench_templates.py [--renders 300] [--turns 10]

Side by side, per render of a `--turns`-exchange conversation (microseconds, median of 5
batches):

- **before**: what the app did until issue 22: compile the template with Jinja's sandbox and
  render it, in this process, on every call;
- **in-process, compiled once**: the cheapest possible in-process render (no bound at all);
- **renderer process**: a round trip to the child (template compiled there once), a new
  conversation each time (the per-template memo is bypassed);
- **memoised**: the same messages again (a turn renders them two or three times).

Also the first render's cost (starting the child and compiling), once.
"""

from __future__ import annotations

import argparse
import statistics
import time
from typing import Any


def _time(fn: Any, renders: int) -> float:
    batches = []
    for _ in range(5):
        t0 = time.perf_counter()
        for i in range(renders):
            fn(i)
        batches.append((time.perf_counter() - t0) / renders * 1e6)
    return statistics.median(batches)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--renders", type=int, default=300)
    ap.add_argument("--turns", type=int, default=10)
    args = ap.parse_args()

    from jinja2.sandbox import ImmutableSandboxedEnvironment

    from aigc_chat import template_process
    from aigc_chat.chat_types import Message
    from aigc_chat.default_model import ensure_default_model
    from aigc_chat.gguf_info import read_gguf_info
    from aigc_chat.templates import ChatTemplate

    source = read_gguf_info(ensure_default_model()).chat_template
    assert source
    history = []
    for k in range(args.turns):
        history += [Message("user", f"Question {k}: what is {k} + {k}? Explain briefly."),
                    Message("assistant", f"{k} + {k} is {2 * k}. Adding a number to itself doubles it.")]

    def conv(i: int) -> list[Message]:
        return [*history, Message("user", f"And number {i}?")]

    def variables(i: int) -> dict[str, Any]:
        return {"messages": [{"role": m.role, "content": m.content} for m in conv(i)],
                "add_generation_prompt": True, "bos_token": "", "eos_token": "<|im_end|>",
                "enable_thinking": True}

    def before(i: int) -> None:
        env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
        env.from_string(source).render(**variables(i))

    env = ImmutableSandboxedEnvironment(trim_blocks=True, lstrip_blocks=True)
    compiled = env.from_string(source)
    proc = template_process.TemplateProcess()
    t0 = time.perf_counter()
    proc.render(source, variables(0))
    first = (time.perf_counter() - t0) * 1e3
    tpl = ChatTemplate("gguf", source)
    same = conv(0)
    tpl.render(same)
    rows = [
        ("before (compile + render, in-process)", _time(before, max(args.renders // 10, 20))),
        ("in-process, compiled once (unbounded)", _time(lambda i: compiled.render(**variables(i)), args.renders)),
        ("renderer process (bounded)", _time(lambda i: proc.render(source, variables(i)), args.renders)),
        ("memoised (same messages again)", _time(lambda i: tpl.render(same), args.renders)),
    ]
    proc.close()
    print(f"SmolLM2 template, {2 * args.turns + 1} messages; first render (start + compile): {first:.0f} ms")
    for name, us in rows:
        print(f"  {name:<40} {us:8.1f} us/render")


if __name__ == "__main__":
    main()
