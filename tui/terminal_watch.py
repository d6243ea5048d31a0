"""Quit when the terminal goes away (an SSH link dropped, the tmux pane killed).

Textual's input thread treats end-of-file as "no input yet" and polls again at once, so a
TUI whose terminal has gone spins a core forever. SIGHUP is the usual notice; a poll of the
input once a second (no bytes are sent) catches a hang-up that comes without one."""

from __future__ import annotations

import asyncio
import select
import signal
import sys

from textual.app import App

HANGUP_EXIT = 129  # 128 + SIGHUP, as a shell reports it


def watch_terminal(app: App[int]) -> None:
    """Call from the app's on_mount (a real terminal only)."""

    def hang_up() -> None:
        app.exit(return_code=HANGUP_EXIT)

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
