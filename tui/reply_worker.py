"""Running a turn off the UI thread and telling the screen about it in typed events.

The worker owns nothing: the conversation core's `Turn` plans the prompt, streams, and keeps
the history in step. This loop only sanitises what is shown and batches it, so the screen is
redrawn about `interval` times a second however fast the model is (every redraw is bytes over
an SSH link). A reasoning model's thinking (`aigc_chat.reasoning.Reasoning` pieces, which come
before the answer) is kept apart: its own sanitiser, batched on the same clock, posted in the
same ReplyDelta's `thinking`."""

from __future__ import annotations

import threading
import time
from collections.abc import Callable

from textual.message import Message

from aigc_chat.chat_types import PromptProgress
from aigc_chat.conversation import Turn
from aigc_chat.errors import AigcError
from aigc_chat.reasoning import Reasoning
from aigc_chat.sanitize import StreamSanitizer
from aigc_chat.tui.events import ReplyDelta, ReplyFailed, ReplyFinished, ReplyProgress, ReplyStarted


def stream_reply(post: Callable[[Message], object], job: int, turn: Turn, cancel: threading.Event,
                 engine_lock: threading.Lock, interval: float,
                 clock: Callable[[], float] = time.monotonic) -> None:
    """Run `turn` to its end, posting ReplyStarted, ReplyDelta batches, then ReplyFinished
    (or ReplyFailed when it could not start). Runs on a worker thread."""
    try:
        with engine_lock:
            def reading(progress: PromptProgress) -> None:
                post(ReplyProgress(job, progress.text()))

            post(ReplyStarted(job, turn.start(cancel, reading)))
            sanitizer, thought_sanitizer = StreamSanitizer(), StreamSanitizer()
            raw: list[str] = []
            shown: list[str] = []
            thought: list[str] = []
            last = clock()
            for piece in turn.run(cancel):
                if isinstance(piece, Reasoning):
                    safe = thought_sanitizer.feed(piece)
                    if safe:
                        thought.append(safe)
                else:
                    if not raw:  # the answer begins: what the reasoning held back is final
                        rest = thought_sanitizer.flush()
                        if rest:
                            thought.append(rest)
                    raw.append(piece)
                    safe = sanitizer.feed(piece)
                    if safe:
                        shown.append(safe)
                now = clock()
                if (shown or thought) and now - last >= interval:
                    post(ReplyDelta(job, "".join(shown), "".join(raw), "".join(thought)))
                    shown.clear()
                    thought.clear()
                    last = now
    except AigcError as exc:
        post(ReplyFailed(job, str(exc)))
        return
    except Exception as exc:  # noqa: BLE001 - shown in the UI, never a crash
        post(ReplyFailed(job, f"{type(exc).__name__}: {exc}"))
        return
    assert turn.result is not None  # the turn has ended: its reply node holds the text, stats and finish reason
    post(ReplyFinished(job, turn.reply_node, tuple(turn.result.warnings)))
