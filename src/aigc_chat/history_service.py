"""A front end's link to the history store, off its own thread.

Threads and connections:
- the writer thread (`HistoryWriter`) owns the store it was given, and with it the one
  read-write connection: every write of the conversation core is queued there, in order;
- the reader thread owns a second connection, opened read-only on first use: the history
  pane's list and search, opening a conversation, exporting one;
- the front end's thread touches neither: it submits writes (a Future back at once) and
  waits on reads when it chooses (the TUI awaits `asyncio.wrap_future(history.read(...))`),
  so a locked, full, slow or broken history can make the history lag or stop, never the
  screen or the answer.

A history that could only be opened read-only (`HistoryStore(readonly=True)`) has no writer:
the reader thread reads that store itself and nothing is saved.
"""

from __future__ import annotations

from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from aigc_chat.errors import AigcError
from aigc_chat.history_writer import HistoryWriter, QueuedStore, SerialThread
from aigc_chat.ids import settled

READ_WAIT = 2.0  # a read waits at most this long for the writes queued before it
CLOSE_WAIT = 3.0  # quitting waits at most this long for queued writes (a locked file: less is lost than waited)


class HistoryService:
    """Writes on the writer thread, reads on the reader thread (see the module notes)."""

    def __init__(self, store: Any, on_failure: Callable[[AigcError], None] | None = None) -> None:
        self.store = store
        self.on_failure = on_failure
        self.on_gone: Callable[[AigcError], None] | None = None  # see HistoryWriter: ConversationGone
        self.problem = ""  # why nothing (more) is saved, once something went wrong
        readonly = store is not None and getattr(store, "readonly", False)
        self.writer: HistoryWriter | None = None
        self.queued: QueuedStore | None = None
        if store is not None and not readonly:
            self.writer = HistoryWriter(store, on_failure=self._failed, on_gone=self._gone)
            self.queued = QueuedStore(self.writer)
        if readonly:
            self.problem = "the history is read-only"
        self._reads = SerialThread("history-reader")
        self._reader: Any = store if readonly else None

    @property
    def available(self) -> bool:
        """There is a history to read (it may not be writable)."""
        return self.store is not None

    @property
    def saving(self) -> bool:
        """New writes are still being made (writable, and nothing has failed yet)."""
        return self.writer is not None and not self.writer.failed

    def _failed(self, exc: AigcError) -> None:
        self.problem = getattr(exc, "reason", "") or str(exc)
        if self.on_failure is not None:
            self.on_failure(exc)

    def _gone(self, exc: AigcError) -> None:
        if self.on_gone is not None:
            self.on_gone(exc)

    # -- reads ------------------------------------------------------------------------------
    def read(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future[Any]:
        """`fn(store, *args, **kwargs)` on the reader thread. Future ids among the arguments
        are resolved there (after the writes queued so far)."""
        return self._reads.submit(self._read_job, fn, args, kwargs)

    def _read_job(self, fn: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> Any:
        if self.writer is not None:
            self.writer.wait(READ_WAIT)
        if self._reader is None:
            from aigc_chat.history import HistoryError
            from aigc_chat.history_store import HistoryStore

            timeout = getattr(self.store, "busy_timeout_ms", None) or 15_000
            try:
                self._reader = HistoryStore(self.store.path, readonly=True, busy_timeout_ms=timeout)
            except HistoryError:  # odd, since the writer has it open: a second normal connection
                self._reader = HistoryStore(self.store.path, busy_timeout_ms=timeout)
        args = tuple(settled(a) for a in args)
        kwargs = {k: settled(v) for k, v in kwargs.items()}
        return fn(self._reader, *args, **kwargs)

    # -- writes -----------------------------------------------------------------------------
    def submit_action(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        """A write the user asked for (rename, delete): its error goes to its own Future."""
        assert self.writer is not None
        return self.writer.submit(fn, *args, own_errors=True)

    def close(self, timeout: float = CLOSE_WAIT) -> bool:
        """Write what is queued (up to `timeout`), close both connections; True if nothing
        queued was left unwritten."""
        finished = True
        if self.writer is not None:
            finished = self.writer.close(timeout)
        reader = self._reader
        if reader is not None and reader is not self.store:
            self._reads.submit(reader.close)
        if self.store is not None and self.writer is None:
            self._reads.submit(self.store.close)  # read-only: the reader thread's own store
        self._reads.close(1.0)
        if finished and self.writer is not None:
            self.store.close()
        return finished
