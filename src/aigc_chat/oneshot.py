"""`aigc-chat --prompt`: one answer on stdout, for scripts and pipes.

stdout carries only the model's text (sanitised unless --raw); everything else goes to
stderr. Exit codes: 0 ok, 1 runtime error, 2 usage/config error, 130 on Ctrl-C (the partial
answer stays on stdout, newline-terminated).
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from typing import Any, TextIO

from aigc_chat.backends.base import GenerationResult
from aigc_chat.config import Config
from aigc_chat.errors import UsageError
from aigc_chat.loader import load_backend
from aigc_chat.safe_open import read_stream
from aigc_chat.sanitize import StreamSanitizer, sanitize
from aigc_chat.session import ChatSession


# More than any context holds (a 128k-token context is ~0.5 MiB of text), small enough that
# `< /dev/zero` ends at once with one line instead of filling the memory.
STDIN_LIMIT = 16 << 20


def read_prompt(prompt: str, stdin: TextIO | None) -> str:
    """`--prompt -` reads only stdin; otherwise piped stdin comes first, then the prompt."""
    piped = ""
    if stdin is not None and not stdin.isatty():
        if hasattr(stdin, "buffer"):
            data = read_stream(stdin.buffer, STDIN_LIMIT, "stdin")
            piped = data.decode("utf-8", errors="replace")
            if "\ufffd" in piped and b"\xef\xbf\xbd" not in data:
                sys.stderr.write("aigc-chat: warning: stdin is not valid UTF-8; "
                                 "its invalid bytes became U+FFFD (\ufffd)\n")
        else:
            piped = stdin.read(STDIN_LIMIT + 1)
            if len(piped) > STDIN_LIMIT:
                raise UsageError(f"stdin is over the {STDIN_LIMIT >> 20} MiB limit")
    if prompt == "-":
        text = piped
    elif piped.strip():
        text = f"{piped.rstrip()}\n\n{prompt}"
    else:
        text = prompt
    if not text.strip():
        raise UsageError("the prompt is empty")
    return text


def run_oneshot(config: Config, args: argparse.Namespace) -> int:
    text = read_prompt(args.prompt, sys.stdin)
    err = sys.stderr
    show_status = err.isatty() and not args.json

    def progress(msg: str) -> None:
        if show_status:
            err.write(f"\r\x1b[2K{msg}…")
            err.flush()

    t0 = time.perf_counter()
    backend = load_backend(config, progress)
    load_time = time.perf_counter() - t0
    if show_status:
        err.write("\r\x1b[2K")
        err.flush()
    session = ChatSession(backend, config.generation, config.system_prompt)
    history = _attach_history(session, config, args)
    if history is not None:
        history.load_into(session)
    turn = session.send(text)
    out = sys.stdout
    sanitizer = None if args.raw else StreamSanitizer()
    last = ""
    interrupted = False
    deltas = iter(turn)
    try:
        for delta in deltas:
            if history is not None:
                history.on_delta(delta)
            if args.json:
                continue
            shown = sanitizer.feed(delta) if sanitizer else delta
            if shown:
                out.write(shown)
                out.flush()
                last = shown
    except KeyboardInterrupt:
        interrupted = True
    finally:
        deltas.close()  # stops the engine and records the (partial) reply
    result = turn.result
    assert result is not None
    if history is not None:
        history.close()
    if not args.json:
        tail = sanitizer.flush() if sanitizer else ""
        if tail:
            out.write(tail)
            last = tail
        if (result.text or interrupted) and not last.endswith("\n"):
            out.write("\n")
        out.flush()
    else:
        out.write(json.dumps(_json_record(result, _info_dict(backend)), ensure_ascii=True) + "\n")
        out.flush()
    for warning in result.warnings:
        err.write(f"aigc-chat: warning: {sanitize(warning)}\n")
    if args.verbose:
        _print_stats(err, backend, result, load_time, session)
    if interrupted:
        return 130
    if result.finish_reason == "error":
        err.write(f"aigc-chat: error: {sanitize(str(result.error))}\n")
        return 1
    return 0


def _attach_history(session: ChatSession, config: Config, args: argparse.Namespace) -> Any:
    """Save the exchange unless --no-history; --continue / --conversation load earlier turns.
    The history store is optional here so a broken data dir never blocks an answer."""
    try:
        from aigc_chat import history_hooks
    except ImportError:
        if getattr(args, "continue_", False) or getattr(args, "conversation", None):
            raise UsageError("conversation history is not available in this build") from None
        return None
    return history_hooks.attach_oneshot(session, config, args)


def _info_dict(backend: Any) -> dict[str, Any]:
    info = backend.info()
    return {"backend": info.name, "model": info.model, "device": info.device,
            "context_length": info.context_length}


def _json_record(result: GenerationResult, info: dict[str, Any]) -> dict[str, Any]:
    return {
        "text": result.text,
        "finish_reason": result.finish_reason,
        "usage": result.usage(),
        "timings": {
            "time_to_first_token_s": result.time_to_first_token,
            "decode_tokens_per_s": result.decode_tokens_per_s,
            "total_s": result.total_time,
        },
        "backend": info.get("backend") or info.get("name"),
        "model": info.get("model"),
        "error": result.error,
    }


def _print_stats(err: TextIO, backend: Any, result: GenerationResult, load_time: float,
                 session: ChatSession) -> None:
    info = backend.info()
    ttft = f"{result.time_to_first_token * 1000:.0f} ms" if result.time_to_first_token is not None else "-"
    rate = f"{result.decode_tokens_per_s:.1f} tok/s" if result.decode_tokens_per_s else "-"
    err.write(sanitize(
        f"[{info.name}] {info.model} on {info.device}, context {info.context_length}, "
        f"loaded in {load_time:.2f} s\n"
        f"prompt {result.prompt_tokens} tok, completion {result.completion_tokens} tok, "
        f"first token {ttft}, decode {rate}, finish {result.finish_reason}\n"
    ))
    plan = session.last_plan
    if plan is not None and plan.dropped:
        err.write(f"{plan.dropped} old messages were left out to fit the context\n")
