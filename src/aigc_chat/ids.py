"""Stored ids that may not be made yet: one idea, read one way per thread.

A conversation's and a message's id is SQLite's rowid, made by the write that adds the row
(docs/architecture.md, "The history", says why ids are not chosen up front). The core hands
that write to the history writer's thread and goes on, so until the writer has run the job
the row is known by the writer's Future of its id. A `Ref` is any of the three: an id, the
writer's Future of one, or None (not saved, nor to be).

How long a reader may wait decides which function it calls:

- `known(ref)`: never waits (the UI thread, a script's JSON): the id, or None while it is
  not made or if its write failed;
- `resolve(value)`: the writer thread, where every earlier job has run, so a Future from one
  of them is done: its value (a failed one raises its error, which the writer reports);
- `settled(value)`: the reader thread (its caller gives the writer a moment first,
  `READ_WAIT`): a Future not done by then, or failed, is a `UsageError` the user can read;
- `wait(ref, timeout)`: off the event loop (a compaction's worker): the id, waiting up to
  `timeout` for the writer, None if it is not made by then;
- `part(pair, index)`: one id of a writer job that makes two (a conversation and its first
  message).
"""

from __future__ import annotations

from concurrent.futures import Future
from typing import TypeAlias, TypeVar

Ref: TypeAlias = "int | Future[int] | None"
"""A stored id, or the writer's Future of one it has not made yet, or None (not saved)."""

T = TypeVar("T")


def _as_id(value: object) -> int | None:
    return value if isinstance(value, int) and not isinstance(value, bool) else None


def known(ref: Ref) -> int | None:
    """The id without waiting: None while the writer has not made it, or if it failed."""
    if isinstance(ref, Future):
        if not ref.done() or ref.cancelled() or ref.exception() is not None:
            return None
        return _as_id(ref.result())
    return _as_id(ref)


def resolve(value: T | Future[T]) -> T:
    """A job's argument on the writer thread: a Future of an earlier job is done by now."""
    return value.result() if isinstance(value, Future) else value


def settled(value: T | Future[T]) -> T:
    """A read's argument on the reader thread: an id the writer has not made (or failed to
    make) is the user's one-line error, never a wait or a traceback."""
    if not isinstance(value, Future):
        return value
    from aigc_chat.errors import UsageError

    if not value.done():
        raise UsageError("this conversation is not saved yet (the history is busy)")
    exc = value.exception() if not value.cancelled() else None
    if value.cancelled() or exc is not None:
        reason = getattr(exc, "reason", None) or exc or "cancelled"
        raise UsageError(f"this conversation was not saved ({reason})")
    return value.result()


def wait(ref: Ref, timeout: float) -> int | None:
    """The id, waiting up to `timeout` seconds for the writer (never on the event loop)."""
    if isinstance(ref, Future):
        try:
            return _as_id(ref.result(timeout=timeout))
        except Exception:  # noqa: BLE001 - not made in time, or its write failed: no id
            return None
    return _as_id(ref)


def part(pair: Future[tuple[int, int]], index: int) -> Future[int]:
    """One id of a writer job that makes two. Completed inside the job's own completion, so
    any later job on the writer (which runs after it) finds it done."""
    out: Future[int] = Future()

    def settle(f: Future[tuple[int, int]]) -> None:
        if f.cancelled():
            out.cancel()
        elif (exc := f.exception()) is not None:
            out.set_exception(exc)
        else:
            out.set_result(f.result()[index])

    pair.add_done_callback(settle)
    return out

