"""Compaction in the TUI: `/compact [instructions]`, F7, and `[generation] on_overflow`.

The summary is written by the conversation core (aigc_chat.compaction) on a worker thread,
under the engine lock, like a reply. On screen it is a visible step: a line in the chat that
says what is being summarised and how far the summary has got, and Esc stops it (nothing is
stored then). When it is done the chat shows the new branch (the summary, marked as one, then
the kept exchanges); the original branch is one alt+← away.

With `on_overflow = "compact"` or `"refuse"`, a message is first checked against the context
on the worker thread (counting tokens is an engine call): "refuse" puts the message back in the
box with the numbers; "compact" compacts, then sends it.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from textual.content import Content
from textual.message import Message
from textual.widgets import Static

from aigc_chat.attachments import Attachment
from aigc_chat.chat_state import Phase
from aigc_chat.compaction import Compacted, CompactionCancelled
from aigc_chat.errors import AigcError
from aigc_chat.sanitize import sanitize

if TYPE_CHECKING:
    from aigc_chat.conversation import Conversation
    from aigc_chat.tui.chat_screen import ChatScreen


@dataclass
class CompactProgress(Message):
    job: int
    text: str


@dataclass
class CompactDone(Message):
    job: int
    done: Compacted | None  # None: on_overflow found that the message fits
    then_send: str | None = None
    files: list[Attachment] = field(default_factory=list)


@dataclass
class CompactFailed(Message):
    job: int
    reason: str
    cancelled: bool
    then_send: str | None = None
    files: list[Attachment] = field(default_factory=list)


class CompactStepLine(Static):
    """The visible step: what is being summarised, how far it has got, and that Esc stops it."""

    def __init__(self, text: str) -> None:
        super().__init__(Content(sanitize(text)), classes="notice -info compact-step")

    def show(self, text: str) -> None:
        self.update(Content(sanitize(text)))


def compact_worker(post: Callable[[Message], object], job: int, conv: Conversation, cancel: threading.Event,
                   lock: threading.Lock, instructions: str = "", then_send: str | None = None,
                   files: Sequence[Attachment] = ()) -> None:
    """Compact (or, with `then_send`, apply on_overflow first), posting progress and one end.
    Runs on a worker thread."""
    def progress(chunk: int, chunks: int, size: int) -> None:
        part = f" (part {chunk} of {chunks})" if chunks > 1 else ""
        post(CompactProgress(job, f"Compacting{part}: the summary has {size:,} characters so far · Esc stops"))

    def starting(over: tuple[int, int, int]) -> None:
        post(CompactProgress(job, f"This message would not fit ({over[0]:,} tokens, the context leaves "
                                  f"{over[1]:,}): compacting first · Esc stops"))

    done: Compacted | None
    try:
        with lock:
            if then_send is None:
                done = conv.compact(instructions=instructions, cancel=cancel, progress=progress)
            else:
                done = conv.before_send(then_send, files, cancel=cancel, progress=progress, starting=starting)
    except CompactionCancelled as exc:
        post(CompactFailed(job, str(exc), True, then_send, list(files)))
        return
    except AigcError as exc:
        post(CompactFailed(job, str(exc), False, then_send, list(files)))
        return
    except Exception as exc:  # noqa: BLE001 - shown in the UI, never a crash
        post(CompactFailed(job, f"{type(exc).__name__}: {exc}", False, then_send, list(files)))
        return
    post(CompactDone(job, done, then_send, list(files)))


class CompactionMixin:
    """The chat screen's part of compaction (module notes); ChatScreen inherits it."""

    _compact_job = 0
    _compact_cancel: threading.Event | None = None
    _compact_line: CompactStepLine | None = None

    async def start_compaction(self: Any, instructions: str = "", then_send: str | None = None,
                               files: Sequence[Attachment] = ()) -> None:
        screen: ChatScreen = self
        why = screen.chat_state.why_busy("compact")
        if why is None and screen.conversation.backend is None:
            why = "no model is ready to write the summary"
        if why is not None:
            screen.app.notify(why, severity="warning")
            return
        self._compact_job += 1
        self._compact_cancel = threading.Event()
        text = ("Checking that the message fits the context…" if then_send is not None
                else "Compacting: the model is summarising the older part of this branch · Esc stops")
        self._compact_line = CompactStepLine(text)
        await screen.chat.mount(self._compact_line)
        screen.chat.anchor()
        screen.chat_state.begin_compaction()
        job, cancel, conv = self._compact_job, self._compact_cancel, screen.conversation
        screen.run_worker(lambda: compact_worker(screen.post_message, job, conv, cancel, conv.backend_lock,
                                                 instructions, then_send, files),
                          thread=True, exclusive=True, group="compact", exit_on_error=False)

    def cancel_compaction(self) -> bool:
        """Esc while compacting: stop it (nothing is stored). False when not compacting."""
        screen: ChatScreen = self  # type: ignore[assignment]
        if screen.chat_state.phase is not Phase.COMPACTING or self._compact_cancel is None:
            return False
        self._compact_cancel.set()
        if self._compact_line is not None:
            self._compact_line.show("Stopping the compaction…")
        return True

    async def _end_step(self) -> None:
        line, self._compact_line = self._compact_line, None
        if line is not None and line.is_attached:
            await line.remove()

    async def on_compact_progress(self, event: CompactProgress) -> None:
        if event.job == self._compact_job and self._compact_line is not None:
            self._compact_line.show(event.text)

    async def on_compact_done(self, event: CompactDone) -> None:
        screen: ChatScreen = self  # type: ignore[assignment]
        if event.job != self._compact_job:
            return
        await self._end_step()
        screen.chat_state.compaction_ended()
        if event.done is not None:
            await screen.show_path()
            screen.history.reload()
            screen.app.notify(f"{event.done.line()} (alt+← goes back to it)", title="Compacted", timeout=8)
        if event.then_send is not None:
            await screen.send_now(event.then_send, event.files)
        else:
            await screen.send_next_queued()

    async def on_compact_failed(self, event: CompactFailed) -> None:
        screen: ChatScreen = self  # type: ignore[assignment]
        if event.job != self._compact_job:
            return
        await self._end_step()
        screen.chat_state.compaction_ended(failed=True)  # what was queued behind it is dropped
        if event.then_send is not None:  # the message was not sent: it stays typed, its files attached
            for f in event.files:
                screen.files_bar.add(f)
            if not screen.prompt.text.strip():
                screen.prompt.load_text(event.then_send)
        screen.app.notify(event.reason, severity="warning" if event.cancelled else "error")
