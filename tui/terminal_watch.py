"""Quit when the terminal goes away (an SSH link dropped, the tmux pane killed).

Textual's input thread treats end-of-file as "no input yet" and polls again at once, so a
TUI whose terminal has gone spins a core forever. SIGHUP is the usual notice; a poll of the
input once a second (no bytes are sent) catches a hang-up that comes without one.

Quitting then must end the process even when Textual's own shutdown cannot: with the
terminal gone, its writer thread can be left blocked (seen: orphaned TUIs asleep forever in
`WriterThread.stop` after a tmux server was killed). So a hang-up also arms a watchdog that
ends the process `HANGUP_GRACE` seconds later if it is still there: time enough for the app
to unmount, which lets a streaming reply end and writes what the history has queued.

That is `[tui] on_hangup = "stop"`. With "finish" (the default) a reply in progress is not
stopped: the app hands it to tui/headless.py, which finishes and saves it without the
terminal, then arms the same watchdog."""

from __future__ import annotations

import asyncio
import os
import select
import signal
import sys
import threading
from collections.abc import Callable

from textual.app import App

HANGUP_EXIT = 129  # 128 + SIGHUP, as a shell reports it
HANGUP_GRACE = 12.0  # seconds: the app's unmount waits at most ~8 s (engine 5, history 3)


def arm_watchdog(grace: float = HANGUP_GRACE,
                 end: Callable[[int], object] = os._exit) -> threading.Timer:
    """End the process with HANGUP_EXIT after `grace` seconds unless it has ended by then."""
    timer = threading.Timer(grace, end, args=(HANGUP_EXIT,))
    timer.daemon = True  # a normal exit does not wait for it
    timer.start()
    return timer


def watch_terminal(app: App[int]) -> None:
    """Call from the app's on_mount (a real terminal only)."""
    armed: list[threading.Timer | None] = []

    def hang_up() -> None:
        finish = getattr(app, "finish_headless", None)
        if not armed and finish is not None and finish():  # on_hangup = "finish": tui/headless.py
            armed.append(None)
            try:
                asyncio.get_running_loop().remove_signal_handler(signal.SIGHUP)
                signal.signal(signal.SIGHUP, signal.SIG_IGN)  # the loop's removal set the default
            except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover
                pass
        app.exit(return_code=HANGUP_EXIT)
        if not armed:
            armed.append(arm_watchdog())

    try:
        asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, hang_up)
    except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover - not Unix
        pass

    def check() -> None:
        stdin = sys.__stdin__
        if stdin is None:  # no terminal input at all any more
            hang_up()
            return
        try:
            poller = select.poll()
            poller.register(stdin.fileno(), select.POLLIN)
            ready = poller.poll(0)
        except (OSError, ValueError, AttributeError):
            hang_up()
            return
        if any(mask & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _fd, mask in ready):
            hang_up()

    app.set_interval(1.0, check, name="terminal-watch")
