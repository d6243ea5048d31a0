"""Starting and ending the TUI process: the history by the shared rules (aigc_chat.launch),
the terminal check, the engine's threads, and an exit that no stuck thread can hold up."""

from __future__ import annotations

import argparse
import os
import sys
import threading
import time
from typing import TYPE_CHECKING, Any

from aigc_chat.config import Config
from aigc_chat.cpu import usable_cores
from aigc_chat.errors import UsageError
from aigc_chat.launch import HistoryOpening, conversation_to_open, flag_settings, open_history

if TYPE_CHECKING:
    from aigc_chat.backends.base import Backend
    from aigc_chat.tui.app import ChatApp


def ui_reserve(cores: int | None = None) -> int:
    """Cores the engine leaves to the screen's own thread: one on machines of 4 cores or fewer.

    llama.cpp's worker threads wait for each other at every step; when the screen's own
    thread takes one of their cores, they stall. On this 2-core machine, streaming into
    the TUI with 2 llama threads fell from ~70 to under 1 token/s; with 1 it kept ~70. Past
    4 cores the engine's automatic choice already leaves half of them free. The engine's
    count is still chosen before each reply (aigc_chat.cpu.ThreadPolicy): this is what it
    keeps away from itself, on top of what other processes are using.
    """
    cores = usable_cores() if cores is None else cores
    return 1 if cores <= 4 else 0


def history_note(opening: HistoryOpening) -> str:
    """What the TUI says at start about a history it cannot fully use ("" when all is well)."""
    problem = opening.problem
    if problem is None or opening.off_by_flag:
        return ""
    if opening.store is None:
        return f"History is off: {problem}. This session runs as with --no-history: nothing is saved."
    return (f"History is read-only: cannot write {opening.store.path} ({problem.reason}). You can "
            "browse and search it; nothing from this session is saved.")


def require_terminal(stdin: Any = None, stdout: Any = None) -> None:
    """The TUI reads keys from stdin and draws on stdout; without a terminal on both it
    would spin on end-of-file forever (`aigc-chat </dev/null`) or draw into a pipe."""
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    for name, stream in (("stdin", stdin), ("stdout", stdout)):
        try:
            tty = bool(stream.isatty())
        except (AttributeError, ValueError, OSError):
            tty = False
        if not tty:
            raise UsageError(f"the TUI needs a terminal, and {name} is not one "
                             "(for scripts and pipes: --prompt TEXT, or --prompt - to read stdin)")


def exit_when_stuck(code: int, grace: float = 3.0) -> None:
    """After the app has quit, a worker thread may still sit in a call that cannot be
    interrupted (a model load from a hung network mount). It must not keep the process
    alive: give the threads a moment to finish, then leave without waiting for them."""
    deadline = time.monotonic() + grace
    for thread in threading.enumerate():
        if thread is threading.main_thread() or thread.daemon:
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
        os._exit(code)


def build_app(config: Config, args: argparse.Namespace, *, terminal_check: bool = True,
              backend: Backend | None = None) -> ChatApp:
    """The app for these flags, by the rules both front ends share (aigc_chat.launch). Flag
    and history errors come before the terminal check, so `aigc-chat --conversation 99
    </dev/null` still says what is wrong with it. `backend`: one already loaded (the
    caller's), instead of loading the one the settings name."""
    opening = open_history(args)
    try:
        cid, note = conversation_to_open(opening.store, args)
        if terminal_check:
            require_terminal()
    except BaseException:
        if opening.store is not None:
            opening.store.close()
        raise
    from aigc_chat.tui.app import ChatApp

    return ChatApp(config, store=opening.store, conversation_id=cid, keep=flag_settings(config, args),
                   backend=backend, history_note=history_note(opening), start_note=note)


def run_tui(config: Config, args: argparse.Namespace) -> int:
    """Open the TUI; returns the exit code."""
    app = build_app(config, args)
    inline = bool(getattr(args, "inline", False) or config.tui.get("inline", False))
    result = app.run(inline=inline)
    if app.headless is not None:  # the terminal went away mid-reply: it is being finished (tui/headless.py)
        app.headless.join()
    elif inline and app.return_code in (None, 0):
        from aigc_chat.tui.inline import print_transcript

        print_transcript(app.conversation.path())
    code = int(result or 0) if app.return_code in (None, 0) else int(app.return_code or 1)
    exit_when_stuck(code)
    return code
