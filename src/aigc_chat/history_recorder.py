"""One assistant reply saved while it streams: a turn's save policy, beside the writer.

The row is made when the reply starts, so even a reply cut off by a kill -9 is in the
history with what it had said (at most `interval` seconds of text lost) and which model wrote
it; it is finished with the stats and finish reason, also when cancelled or failed; a failure
that said nothing leaves no row. The store it is given is a HistoryStore (one-shot's direct
writes, tests) or a history_writer.QueuedStore (the TUI's writer thread), whose ids are
Futures: the recorder passes them on as they are.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from concurrent.futures import Future
from contextlib import suppress
from typing import TYPE_CHECKING, Any

from aigc_chat.history import CURRENT

if TYPE_CHECKING:
    from aigc_chat.chat_types import GenerationResult


class ReplyRecorder:
    """Persists one assistant reply while it streams: the row is created at start, the text is
    written at most about once a second while deltas arrive, and finalised with stats and the
    finish reason at the end (also when cancelled or failed). A process killed mid-reply
    therefore loses at most `interval` seconds of text.

    `store` may also be a `history_writer.QueuedStore` (the TUI): then every write is queued
    for the writer thread and the ids here are Futures it resolves. `clock` is for tests."""

    def __init__(self, store: Any, conversation_id: Any, *, interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, author: dict[str, str] | None = None,
                 parent: Any = CURRENT) -> None:
        self.store = store
        self.conversation_id = conversation_id
        self.parent = parent  # the message it answers (an id or a Future); CURRENT: the leaf
        # which backend and model wrote the reply: kept in its stats from the first row on, so
        # even a reply cut off by a kill -9 says where it came from
        self.author = dict(author or {})
        self.interval = interval
        self.clock = clock
        self.message_id: Any = None
        self._written = ""
        self._last_flush = 0.0
        self.finished = False
        self.stop_asked = False  # another process asked this reply to stop (aigc_chat.reply_owner)
        self._stop_check: Any = None  # the last check's answer (a Future on a QueuedStore)

    def start(self) -> Any:
        if self.message_id is None:
            from aigc_chat.reply_owner import writer_meta

            self.message_id = self.store.add_message(self.conversation_id, "assistant", "",
                                                     stats=self.author or None, parent=self.parent,
                                                     meta=writer_meta())
            self._last_flush = self.clock()
        return self.message_id

    def check_stop(self) -> bool:
        """Read whether another process asked this reply to stop (request_stop), never waiting:
        on a queued store the answer is the one asked for at the previous check."""
        check = getattr(self.store, "stop_requested", None)
        if check is None or self.message_id is None or self.stop_asked:
            return self.stop_asked
        last = self._stop_check
        if isinstance(last, Future):
            if not last.done():
                return False
            with suppress(Exception):
                self.stop_asked = bool(last.result())
        try:
            self._stop_check = check(self.message_id)
        except Exception:  # noqa: BLE001 - a history that cannot answer asks nothing
            self._stop_check = None
        if not isinstance(self._stop_check, Future):
            self.stop_asked = self.stop_asked or bool(self._stop_check)
        return self.stop_asked

    def feed(self, text_so_far: str) -> None:
        if self.message_id is None:
            self.start()
        now = self.clock()
        if now - self._last_flush >= self.interval and text_so_far != self._written:
            self._last_flush = now
            self.store.update_message(self.message_id, text_so_far)
            self._written = text_so_far

    def finish(self, result: GenerationResult) -> None:
        """Record the final text, stats and finish reason. A failure that produced no text
        leaves no row (the session does not keep such a reply either)."""
        if self.finished:
            return
        self.finished = True
        if not result.text and not getattr(result, "reasoning", "") and result.finish_reason == "error":
            if self.message_id is not None:
                self.store.delete_message(self.message_id)
            return
        self.start()
        assert self.message_id is not None
        reasoning = getattr(result, "reasoning", "")
        self.store.update_message(self.message_id, result.text, finish_reason=result.finish_reason,
                                  stats={**self.author, **result_stats(result)},
                                  meta={"reasoning": reasoning} if reasoning else {})  # its writer: done
        self._written = result.text


def result_stats(result: GenerationResult) -> dict[str, Any]:
    stats: dict[str, Any] = {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "time_to_first_token": result.time_to_first_token,
        "decode_tokens_per_s": result.decode_tokens_per_s,
        "total_time": result.total_time,
    }
    if result.cached_tokens is not None:  # engines that read the prompt themselves say how
        stats["cached_tokens"] = result.cached_tokens
        stats["prompt_tokens_per_s"] = result.prompt_tokens_per_s
    if result.error:
        stats["error"] = result.error
    if result.stop_sequence:
        stats["stop_sequence"] = result.stop_sequence
    if getattr(result, "reasoning_tokens", 0):
        stats["reasoning_tokens"] = result.reasoning_tokens
        stats["thinking_time"] = result.thinking_time
    return stats
