"""Saving without waiting: one thread owns a HistoryStore's writes, a front end submits work.

The TUI's event loop must never wait for SQLite: another process may hold the write lock (a
write then waits `busy_timeout`, 15 s, and fails), the disk may be full or slow. So the TUI
hands every write to a `HistoryWriter`: jobs go into a queue, one dedicated thread runs them
in order on the store's connection, and the caller gets a `concurrent.futures.Future` back at
once.

Ids that do not exist yet (the conversation a first message creates, the row a streaming
reply is written into) are passed on as those Futures: a job resolves them when it runs, and
jobs run in the order they were submitted, so the question is written before its reply rows
exactly as when the calls were synchronous. `QueuedStore` gives the write methods of
`HistoryStore` this shape, so `ReplyRecorder` works on it unchanged.

Failures. The session's own saving (`submit`) stops at the first failure: that error is
reported once through `on_failure(error)` (called on the writer thread), and every later saving
job is dropped, so the conversation goes on in memory only and the file never holds a reply
without its question or half a conversation with holes. A job the user asked for by name
(`submit(..., own_errors=True)`: a rename, a delete) reports its error to its own Future only.
A write for a conversation that another process deleted (`ConversationGone`) is no failure of
the history either: it goes to its Future and to `on_gone(error)`, and saving goes on (the
front end offers to keep the chat as a new conversation).

Reading your own writes: while a writer owns a store, that store's read methods, called from
any other thread, first wait for the jobs submitted so far; a script or a test that reads the
store after the front end "saved" sees what was saved. The TUI itself never reads that store:
it reads through a second connection on a reader thread (history_service.py).
"""

from __future__ import annotations

import queue
import threading
from collections.abc import Callable
from concurrent.futures import Future
from typing import Any

from aigc_chat.errors import AigcError
from aigc_chat.history import ConversationGone, HistoryError
from aigc_chat.history_store import HistoryStore
from aigc_chat.ids import resolve


class SerialThread:
    """One daemon thread that runs submitted callables in submission order.

    Daemon, so that a job stuck in a system call (a busy wait on a locked database) can never
    keep the process from exiting; `close` says whether the thread really finished."""

    def __init__(self, name: str) -> None:
        self.name = name
        self._queue: queue.SimpleQueue[Any] = queue.SimpleQueue()
        self._cond = threading.Condition()
        self._submitted = 0
        self._done = 0
        self._thread: threading.Thread | None = None
        self._closed = False

    def submit(self, fn: Callable[..., Any], *args: Any, **kwargs: Any) -> Future:
        fut: Future = Future()
        with self._cond:
            if self._closed:
                fut.set_exception(RuntimeError(f"{self.name} is closed"))
                return fut
            if self._thread is None:
                self._thread = threading.Thread(target=self._run, name=self.name, daemon=True)
                self._thread.start()
            self._submitted += 1
            self._queue.put((fut, fn, args, kwargs))
        return fut

    def is_current(self) -> bool:
        return threading.current_thread() is self._thread

    def pending(self) -> int:
        """Jobs submitted and not finished yet."""
        with self._cond:
            return self._submitted - self._done

    def wait(self, timeout: float | None = None) -> bool:
        """Wait until every job submitted before this call has run; False on timeout."""
        with self._cond:
            target = self._submitted
            return self._cond.wait_for(lambda: self._done >= target, timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Run what is queued (up to `timeout`), then stop. True if the thread has finished."""
        with self._cond:
            if not self._closed:
                self._closed = True
                self._queue.put(None)
            thread = self._thread
        if thread is None:
            return True
        if thread is threading.current_thread():
            return False
        thread.join(timeout)
        return not thread.is_alive()

    def _run(self) -> None:
        while True:
            item = self._queue.get()
            if item is None:
                return
            fut, fn, args, kwargs = item
            try:
                if fut.set_running_or_notify_cancel():
                    try:
                        result = fn(*args, **kwargs)
                    except BaseException as exc:  # noqa: BLE001 - handed to the Future
                        fut.set_exception(exc)
                    else:
                        fut.set_result(result)
            finally:
                with self._cond:
                    self._done += 1
                    self._cond.notify_all()


class NotSaved(HistoryError):
    """A saving job that was dropped because an earlier one failed (see HistoryWriter)."""


class HistoryWriter:
    """Owns `store`'s writes: one thread, one queue, jobs in order (see the module notes)."""

    def __init__(self, store: HistoryStore,
                 on_failure: Callable[[AigcError], None] | None = None,
                 on_gone: Callable[[ConversationGone], None] | None = None) -> None:
        self.store = store
        self.on_failure = on_failure
        self.on_gone = on_gone
        self.failure: AigcError | None = None
        self._thread = SerialThread("history-writer")
        store._before_read = self._before_foreign_read

    def submit(self, fn: Callable[..., Any], *args: Any, own_errors: bool = False,
               **kwargs: Any) -> Future:
        """Queue `fn(store, *args, **kwargs)`; Future arguments are resolved when it runs."""
        return self._thread.submit(self._job, fn, args, kwargs, own_errors)

    @property
    def failed(self) -> bool:
        return self.failure is not None

    def pending(self) -> int:
        return self._thread.pending()

    def wait(self, timeout: float | None = None) -> bool:
        return self._thread.wait(timeout)

    def close(self, timeout: float | None = None) -> bool:
        """Write what is queued (up to `timeout`) and stop; True if everything was written.
        The store stays open (whoever opened it closes it), unless the thread is still stuck
        in a write: then it must not be touched, and the process may simply exit."""
        finished = self._thread.close(timeout)
        if finished:
            self.store._before_read = None
        return finished

    def _before_foreign_read(self) -> None:
        if not self._thread.is_current():
            self._thread.wait()

    def _job(self, fn: Callable[..., Any], args: tuple, kwargs: dict, own_errors: bool) -> Any:
        if self.failure is not None and not own_errors:
            raise NotSaved(f"not saved: {self.failure}", path=self.store.path,
                           reason=getattr(self.failure, "reason", str(self.failure)))
        try:
            args = tuple(resolve(a) for a in args)
            kwargs = {k: resolve(v) for k, v in kwargs.items()}
            return fn(self.store, *args, **kwargs)
        except ConversationGone as exc:
            if not own_errors and self.on_gone is not None:
                try:
                    self.on_gone(exc)
                except Exception:  # noqa: BLE001 - reporting must not kill the writer
                    pass
            raise
        except AigcError as exc:
            if not own_errors:
                self._fail(exc)
            raise
        except Exception as exc:  # a bug or an odd sqlite3 error: still one line
            error = HistoryError(f"cannot write the history {self.store.path}: {type(exc).__name__}: {exc}",
                                 path=self.store.path, reason=f"{type(exc).__name__}: {exc}")
            if not own_errors:
                self._fail(error)
            raise error from exc

    def _fail(self, exc: AigcError) -> None:
        if self.failure is not None:
            return
        self.failure = exc
        if self.on_failure is not None:
            try:
                self.on_failure(exc)
            except Exception:  # noqa: BLE001 - reporting must not kill the writer
                pass


class QueuedStore:
    """HistoryStore's write methods, queued on a HistoryWriter: each returns a Future at once,
    and takes Futures for the ids it needs (see the module notes)."""

    def __init__(self, writer: HistoryWriter) -> None:
        self.writer = writer

    def create_conversation(self, title: str = "", **kwargs: Any) -> Future:
        return self.writer.submit(HistoryStore.create_conversation, title, **kwargs)

    def add_message(self, conversation_id: Any, role: str, content: str, **kwargs: Any) -> Future:
        return self.writer.submit(HistoryStore.add_message, conversation_id, role, content, **kwargs)

    def update_message(self, message_id: Any, content: str, **kwargs: Any) -> Future:
        return self.writer.submit(HistoryStore.update_message, message_id, content, **kwargs)

    def delete_message(self, message_id: Any) -> Future:
        return self.writer.submit(HistoryStore.delete_message, message_id)

    def stop_requested(self, message_id: Any) -> Future:
        """A read, in order with the writes (aigc_chat.reply_owner); its failure is its own."""
        return self.writer.submit(HistoryStore.stop_requested, message_id, own_errors=True)

    def update_settings(self, conversation_id: Any, settings: dict, **kwargs: Any) -> Future:
        return self.writer.submit(HistoryStore.update_settings, conversation_id, settings, **kwargs)

    def set_current_leaf(self, conversation_id: Any, message_id: Any) -> Future:
        return self.writer.submit(HistoryStore.set_current_leaf, conversation_id, message_id)
