"""A reply that outlives its terminal (`[tui] on_hangup = "finish"`, the default).

When the terminal goes away mid-reply (an SSH link drops, a tmux server is killed), the
screen has nobody to show the reply to, but the reply itself needs no screen: the core's
`Turn` streams it and its `ReplyRecorder` saves it. So the process stops touching the
terminal (its output goes to /dev/null: nothing can block on, or fail writing to, a dead
pty), lets the running reply go on to its own end (stop, max_tokens, the end of the
model), answers the questions that were queued behind it, writes the history, and exits.
`aigc-chat --continue` afterwards shows the whole reply.

A hard limit (`[tui] hangup_limit_s`, 10 minutes by default) bounds the time without a
screen, so nothing runs forever on a shared box: past it the reply is stopped and saved
as cancelled. After the finish the hang-up watchdog (terminal_watch.arm_watchdog) is armed
as for `on_hangup = "stop"`, so a stuck shutdown still cannot keep the process alive."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable

from aigc_chat.conversation import Conversation
from aigc_chat.errors import AigcError

ENGINE_WAIT = 5.0  # past the limit: how long a stopped reply gets to end before the history closes


def detach_terminal() -> None:
    """Point stdout and stderr (Textual's writer, llama.cpp's log, any print) at /dev/null
    and ignore further SIGHUPs. Call on the main thread."""
    try:
        null = os.open(os.devnull, os.O_WRONLY)
    except OSError:  # pragma: no cover - no /dev/null
        return
    for fd in (1, 2):
        try:
            os.dup2(null, fd)
        except OSError:  # pragma: no cover
            pass
    os.close(null)
    try:
        signal.signal(signal.SIGHUP, signal.SIG_IGN)
    except (ValueError, OSError, AttributeError):  # pragma: no cover - not the main thread / not Unix
        pass


class HeadlessFinish:
    """Finish what a hung-up TUI was doing, on a thread of its own (module notes).

    `running_done`: set when the reply already streaming ends (None: none is); `running_cancel`:
    stops it; `queued`: questions still to send after it, in order."""

    def __init__(self, conversation: Conversation, *, running_done: threading.Event | None,
                 running_cancel: threading.Event | None, queued: list[str], limit: float,
                 after: Callable[[], object] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.conversation = conversation
        self.running_done = running_done
        self.running_cancel = running_cancel
        self.queued = list(queued)
        self.limit = limit
        self.after = after
        self.clock = clock
        self.answered = 0  # queued questions sent
        self.thread = threading.Thread(target=self._run, name="headless-finish")  # not a daemon: it saves

    def start(self) -> HeadlessFinish:
        self.thread.start()
        return self

    def join(self, timeout: float | None = None) -> None:
        self.thread.join(timeout)

    def _run(self) -> None:
        deadline = self.clock() + self.limit
        try:
            if self.running_done is not None and not self.running_done.wait(max(0.0, deadline - self.clock())):
                if self.running_cancel is not None:
                    self.running_cancel.set()
                self.running_done.wait(ENGINE_WAIT)
            for text in self.queued:
                if self.clock() >= deadline or self.conversation.backend is None:
                    break
                self._answer(text, deadline)
        finally:
            self.conversation.close()
            if self.after is not None:
                self.after()

    def _answer(self, text: str, deadline: float) -> None:
        """One queued question, sent and answered as the screen would have (saved by the core)."""
        conv = self.conversation
        try:
            turn = conv.begin("send", text, [], None)
        except AigcError:
            return
        cancel = threading.Event()
        timer = threading.Timer(max(0.0, deadline - self.clock()), cancel.set)
        timer.daemon = True
        timer.start()
        try:
            with conv.backend_lock:
                turn.start(cancel)
                for _piece in turn.run(cancel):
                    pass
            self.answered += 1
        except Exception:  # noqa: BLE001 - nobody to tell; the core has recorded what it could
            pass
        finally:
            timer.cancel()
