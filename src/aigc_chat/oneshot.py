"""`aigc-chat --prompt`: one answer on stdout, for scripts and pipes.

stdout carries only the model's text (sanitised unless --raw); everything else goes to
stderr. Exit codes: 0 ok, 1 runtime error, 2 usage/config error, 130 on Ctrl-C (the partial
answer stays on stdout, newline-terminated).
"""

from __future__ import annotations

import argparse
import json
import sys
import threading
import time
from typing import Any, TextIO

from aigc_chat.attachments import HARD_CAP, Attachment, from_bytes, read_file, utf16_kind
from aigc_chat.backends.base import Backend
from aigc_chat.chat_types import GenerationResult, PromptProgress
from aigc_chat.compaction import Compacted
from aigc_chat.config import Config
from aigc_chat.conversation import Conversation, PromptPlan, Turn
from aigc_chat.errors import UsageError
from aigc_chat.history_service import HistoryService
from aigc_chat.launch import conversation_to_open, flag_settings, open_history
from aigc_chat.loader import load_backend
from aigc_chat.reasoning import Reasoning
from aigc_chat.safe_open import read_stream
from aigc_chat.sanitize import StreamSanitizer, one_line

# More than any context holds (a 128k-token context is ~0.5 MiB of text), small enough that
# `< /dev/zero` ends at once with one line instead of filling the memory.
STDIN_LIMIT = 16 << 20


def read_prompt(prompt: str, stdin: TextIO | None, allow_empty: bool = False) -> str:
    """`--prompt -` reads only stdin; otherwise piped stdin comes first, then the prompt.
    `allow_empty`: files are attached, so the question may be empty ("here is a file")."""
    piped = ""
    if prompt == "-" and stdin is not None and _isatty(stdin):
        raise UsageError("-p - reads the prompt from stdin, but stdin is a terminal: pipe the text in "
                         "(`echo question | aigc-chat -p -`) or give it as `-p TEXT`")
    if stdin is not None and not stdin.isatty():
        if hasattr(stdin, "buffer"):
            data = read_stream(stdin.buffer, STDIN_LIMIT, "stdin")
            utf16 = utf16_kind(data)
            if utf16:  # decoded as UTF-8 it would be sent as noise: say what it is and how to convert
                raise UsageError(f"stdin is {utf16} text: only UTF-8 is read; convert it with "
                                 f"`iconv -f {utf16} -t UTF-8`")
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
    if not text.strip() and not allow_empty:
        raise UsageError("the prompt is empty")
    return text


def read_files(paths: list[str], stdin: TextIO | None) -> list[Attachment]:
    """The -f files, read and checked before anything else happens (one line for a binary,
    missing, too large or special file). `-` is stdin, attached under the name "stdin"."""
    files = []
    for path in paths:
        if path == "-":
            if stdin is None or not hasattr(stdin, "buffer"):
                raise UsageError("-f -: there is no stdin to read")
            if _isatty(stdin):  # it would wait for the terminal, silently
                raise UsageError("-f - reads a file from stdin, but stdin is a terminal: pipe the file in "
                                 "(`aigc-chat -f - -p QUESTION < FILE`) or name it (-f FILE)")
            files.append(from_bytes("stdin", read_stream(stdin.buffer, HARD_CAP, "stdin")))
        else:
            files.append(read_file(path))
    return files


def run_oneshot(config: Config, args: argparse.Namespace) -> int:
    """One answer: to `--prompt` (and piped stdin, and -f files), or, with `--regenerate`, a
    new answer to the conversation's last question, stored beside the old one."""
    regenerate = bool(getattr(args, "regenerate", False))
    compact = bool(getattr(args, "compact", False))
    paths = list(getattr(args, "file", []) or [])
    if "-" in paths and args.prompt == "-":
        raise UsageError("stdin can be the prompt (-p -) or a file (-f -), not both")
    files = read_files(paths, sys.stdin)
    compact_only = compact and args.prompt is None and not files
    text = "" if regenerate or compact_only else read_prompt(args.prompt, None if "-" in paths else sys.stdin,
                                                             allow_empty=bool(files))
    err = sys.stderr
    show_status = err.isatty() and not args.json
    conv, warnings = _start_conversation(config, args, err)
    if compact:
        from aigc_chat.compaction import plan as compaction_plan

        try:
            compaction_plan(conv.tree.path())  # nothing to compact: said before the model is loaded
        except BaseException:
            conv.close()
            raise
    if regenerate and conv.last_user() is None:
        conv.close()
        raise UsageError("nothing to regenerate: the conversation has no question yet")

    def progress(msg: str) -> None:
        if show_status:
            err.write(f"\r\x1b[2K{one_line(msg)}…")  # may name a model file or a server
            err.flush()

    t0 = time.perf_counter()
    try:
        backend = load_backend(config, progress)
    except BaseException:
        conv.close()
        raise
    load_time = time.perf_counter() - t0
    if show_status:
        err.write("\r\x1b[2K")
        err.flush()
    for note in getattr(backend, "notices", ()):
        err.write(f"aigc-chat: note: {one_line(note)}\n")
    conv.attach_backend(backend)
    try:
        counted = [conv.count_file(f) for f in files]  # refused here, before anything is stored
        compacted = (_compact_first(conv, text, counted, compact, err, progress if show_status else None)
                     if compact or not regenerate else None)
        if compact_only:
            if show_status:
                err.write("\r\x1b[2K")
            conv.close(HISTORY_WAIT)
            if args.json and compacted is not None:
                sys.stdout.write(json.dumps({"compacted": _compacted_record(compacted)}, ensure_ascii=True) + "\n")
            return 0
        # a piped run's text starts with stdin: the title is the question asked (-p), not stdin's first line
        asked = args.prompt if isinstance(args.prompt, str) and args.prompt.strip() != "-" else ""
        title = asked if asked.strip() and text != asked else ""
        turn = conv.begin("regenerate") if regenerate else conv.begin("send", text, counted, title=title)
    except BaseException:
        conv.close()
        raise
    out = sys.stdout
    sanitizer = None if args.raw else StreamSanitizer()
    thoughts = _ReasoningOut(err) if getattr(args, "show_reasoning", False) and not args.json else None
    last = ""
    interrupted = False
    reading = _ReadingLine(err) if show_status else None
    pieces = turn.run(on_progress=reading.update if reading is not None else None)
    try:
        for piece in pieces:
            if reading is not None:
                reading.clear()
            if isinstance(piece, Reasoning):  # never on stdout: that is the answer's alone
                if thoughts is not None:
                    thoughts.write(piece)
                continue
            if thoughts is not None:
                thoughts.end()
            if args.json:
                continue
            shown = sanitizer.feed(piece) if sanitizer else piece
            if shown:
                out.write(shown)
                out.flush()
                last = shown
    except KeyboardInterrupt:
        interrupted = True
    finally:
        pieces.close()  # stops the engine and records the (partial) reply
        if reading is not None:
            reading.clear()
    if thoughts is not None:
        thoughts.end()
    result = turn.result
    assert result is not None
    info = _info_dict(backend)
    plan = conv.last_plan
    saved = conv.close(HISTORY_WAIT)
    if not saved:
        warnings.once("the history stayed busy; the end of this answer may not be saved")
    if not args.json:
        tail = sanitizer.flush() if sanitizer else ""
        if tail:
            out.write(tail)
            last = tail
        if (result.text or interrupted) and not last.endswith("\n"):
            out.write("\n")
        out.flush()
    else:
        record = _json_record(result, info)
        record.update(_json_ids(conv, turn))
        if compacted is not None:  # the summary, marked as one: never as the user's text
            record["compacted"] = _compacted_record(compacted)
        out.write(json.dumps(record, ensure_ascii=True) + "\n")
        out.flush()
    for warning in result.warnings:
        err.write(f"aigc-chat: warning: {one_line(warning)}\n")
    if args.verbose:
        _print_stats(err, info, result, load_time, plan)
    if interrupted:
        return 130
    if result.finish_reason == "error":
        err.write(f"aigc-chat: error: {one_line(str(result.error))}\n")
        return 1
    return 0


class _ReadingLine:
    """While a long prompt is read, one status line on a terminal's stderr, rewritten after
    each batch ("reading 3,000 / 7,218 tokens · 410 tok/s · ~10 s left") and erased when
    the answer starts. A prompt read in a batch or two says nothing: it would only flicker."""

    WORTH_SHOWING = 256  # tokens left to read

    def __init__(self, err: TextIO) -> None:
        self.err = err
        self.shown = False

    def update(self, progress: PromptProgress) -> None:
        if not self.shown and progress.total - progress.cached < self.WORTH_SHOWING:
            return
        self.shown = True
        self.err.write(f"\r\x1b[2K{progress.text()}")
        self.err.flush()

    def clear(self) -> None:
        if self.shown:
            self.shown = False
            self.err.write("\r\x1b[2K")
            self.err.flush()


def _compacted_record(done: Compacted) -> dict[str, Any]:
    """A compaction in `--json`: the summary (kind "summary", role "system") and its facts."""
    return {"kind": "summary", "role": "system", "summary": done.summary.content, **done.meta}


def _compact_first(conv: Conversation, text: str, files: list[Attachment], asked: bool, err: TextIO,
                   progress: Any) -> Compacted | None:
    """`--compact`, or `[generation] on_overflow` before the question is sent: either way one
    line on stderr says what was done. Ctrl-C mid-summary leaves nothing (exit 130)."""
    from aigc_chat.compaction import CompactionCancelled

    why: list[tuple[int, int, int]] = []

    def shown(chunk: int, chunks: int, size: int) -> None:
        if progress is not None:
            progress(f"summarising{f' (part {chunk} of {chunks})' if chunks > 1 else ''}: {size} characters")

    try:
        with conv.backend_lock:
            done = (conv.compact(progress=shown) if asked
                    else conv.before_send(text, files, progress=shown, starting=why.append))
    except CompactionCancelled as exc:
        err.write(f"\naigc-chat: {exc}")
        raise KeyboardInterrupt from None
    if progress is not None:
        err.write("\r\x1b[2K")
    if done is None:
        return None
    lead = ""
    if why:
        count, room, _ctx = why[0]
        lead = f"the conversation and the question need {count:,} tokens, the context leaves {room:,}: "
    err.write(f"aigc-chat: note: {lead}{one_line(done.line())}\n")
    err.flush()
    return done


class _ReasoningOut:
    """`--show-reasoning`: the thinking on stderr as it streams, dimmed on a terminal, always
    sanitised (it is model output too), ended by a newline before the answer starts."""

    def __init__(self, err: TextIO) -> None:
        self.err = err
        self.sanitizer = StreamSanitizer()
        self.dim = _isatty(err)
        self.open = False
        self.done = False

    def write(self, text: str) -> None:
        if self.done:
            return
        shown = self.sanitizer.feed(text)
        if shown:
            if not self.open and self.dim:
                self.err.write("\x1b[2m")
            self.open = True
            self.err.write(shown)
            self.err.flush()

    def end(self) -> None:
        if self.done:
            return
        self.done = True
        tail = self.sanitizer.flush()
        if tail:
            self.err.write(tail)
            self.open = True
        if self.open:
            self.err.write(("\x1b[0m" if self.dim else "") + "\n")
            self.err.flush()


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError, OSError):
        return False


# A locked history makes each write wait the store's busy timeout (15 s) before it gives up;
# the answer is out by then, so the run waits at most this long for its last writes.
HISTORY_WAIT = 20.0


class _WarnOnce:
    """History trouble is said once per run, on stderr, whatever thread notices it."""

    def __init__(self, err: TextIO) -> None:
        self.err = err
        self._said = False
        self._lock = threading.Lock()

    def once(self, reason: str) -> None:
        with self._lock:
            if self._said:
                return
            self._said = True
        self.err.write(f"aigc-chat: warning: this answer is not saved to the history: {one_line(reason)}\n")
        self.err.flush()

    def failed(self, exc: Exception) -> None:
        self.once(str(exc))


def _start_conversation(config: Config, args: argparse.Namespace,
                        err: TextIO) -> tuple[Conversation, _WarnOnce]:
    """The conversation this run answers in, opened by the rules both front ends share
    (aigc_chat.launch): flag errors and a missing conversation are found before the model
    is loaded."""
    warnings = _WarnOnce(err)
    opening = open_history(args)
    try:
        cid, note = conversation_to_open(opening.store, args)
        stored = opening.store.get_conversation(cid) if cid is not None and opening.store else None
    except BaseException:
        if opening.store is not None:
            opening.store.close()
        raise
    if note:
        err.write(f"aigc-chat: note: {one_line(note)}\n")
    if opening.problem is not None:
        warnings.once(str(opening.problem))
    history = HistoryService(opening.store) if opening.store is not None else None
    conv = Conversation(config, history, on_history_failure=warnings.failed)
    if stored is not None:
        conv.load(stored, keep=flag_settings(config, args))
    return conv, warnings


def _info_dict(backend: Backend) -> dict[str, Any]:
    info = backend.info()
    return {"backend": info.name, "model": info.model, "device": info.device,
            "context_length": info.context_length, "threads": info.details.get("threads"),
            "file_note": info.details.get("file_note") or "",
            "extra_buffers": info.details.get("extra_buffers_why") or ""}


def prompt_reading(result: GenerationResult) -> str:
    """' (6,912 cached, 306 read at 410 tok/s)': how the prompt was read, where the engine said."""
    if result.cached_tokens is None:
        return ""
    read = result.prompt_read if result.prompt_read is not None else result.prompt_tokens - result.cached_tokens
    rate = f" at {result.prompt_tokens_per_s:,.0f} tok/s" if result.prompt_tokens_per_s else ""
    return f" ({result.cached_tokens:,} cached, {read:,} read{rate})"


def _json_record(result: GenerationResult, info: dict[str, Any]) -> dict[str, Any]:
    return {
        "text": result.text,
        "reasoning": result.reasoning,
        "finish_reason": result.finish_reason,
        "usage": result.usage(),
        "timings": {
            "time_to_first_token_s": result.time_to_first_token,
            "prompt_s": result.prompt_time,
            "prompt_tokens_per_s": result.prompt_tokens_per_s,
            "thinking_s": result.thinking_time,
            "decode_tokens_per_s": result.decode_tokens_per_s,
            "total_s": result.total_time,
        },
        "backend": info.get("backend") or info.get("name"),
        "model": info.get("model"),
        "error": result.error,
    }


def _json_ids(conv: Conversation, turn: Turn) -> dict[str, Any]:
    """Where the answer was stored, for a script to carry on (`--conversation ID`) or point at
    the messages: None for each that was not saved (history off, or a failed write)."""
    from aigc_chat.ids import known

    return {"conversation_id": known(conv.conversation_ref), "question_id": known(turn.user_node.ref),
            "reply_id": known(turn.reply_node.ref)}


def _print_stats(err: TextIO, info: dict[str, Any], result: GenerationResult, load_time: float,
                 plan: PromptPlan | None) -> None:
    ttft = f"{result.time_to_first_token * 1000:.0f} ms" if result.time_to_first_token is not None else "-"
    rate = f"{result.decode_tokens_per_s:.1f} tok/s" if result.decode_tokens_per_s else "-"
    n = info.get("threads")
    threads = f", {n} thread{'s' if n != 1 else ''}" if n else ""
    # the model's name and device come from a file name, its metadata or a server: one line each
    err.write(
        f"[{one_line(info['backend'])}] {one_line(info['model'])} on {one_line(info['device'])}{threads}, "
        f"context {info['context_length']}, loaded in {load_time:.2f} s\n"
        f"prompt {result.prompt_tokens} tok{prompt_reading(result)}, completion {result.completion_tokens} tok, "
        f"first token {ttft}, decode {rate}, finish {result.finish_reason}\n"
    )
    for key in ("file_note", "extra_buffers"):  # how llama.cpp reads this model here, and why
        if info.get(key):
            err.write(f"{'model file' if key == 'file_note' else 'extra buffers'}: {one_line(info[key])}\n")
    if plan is not None and plan.dropped:
        err.write(f"{plan.dropped} old messages were left out to fit the context\n")
