"""tui/headless.py without a terminal: what a hung-up TUI hands over is finished and saved,
within the hard limit (the real-terminal test is tests/test_e2e_hangup.py)."""

from __future__ import annotations

import threading
from collections.abc import Iterator

from aigc_chat.backends.base import EngineEnd, EngineStart
from aigc_chat.params import GenerationParams
from aigc_chat.tui.headless import HeadlessFinish
from tests.scripted_backend import ScriptedBackend
from tests.test_conversation_core import make, stored


class Endless(ScriptedBackend):
    """A reply that never ends by itself: only a cancel stops it."""

    def _generate(self, messages, params: GenerationParams, cancel: threading.Event) -> Iterator[object]:  # type: ignore[override]
        yield EngineStart(1)
        yield "so far"
        cancel.wait(60)
        yield EngineEnd("stop")


def test_queued_questions_are_answered_and_saved_then_the_after_hook_runs() -> None:
    conv = make(["Hel", "lo"])
    after = threading.Event()
    finish = HeadlessFinish(conv, running_done=None, running_cancel=None, queued=["one", "two"],
                            limit=60, after=after.set).start()
    finish.join(30)
    assert not finish.thread.is_alive() and after.is_set() and finish.answered == 2
    assert stored() == [("user", "one", None), ("assistant", "Hello", "stop"),
                        ("user", "two", None), ("assistant", "Hello", "stop")]


def test_the_hard_limit_stops_a_reply_that_would_run_forever() -> None:
    conv = make()
    conv.attach_backend(Endless([]))
    finish = HeadlessFinish(conv, running_done=None, running_cancel=None, queued=["go on", "never sent"],
                            limit=0.3).start()
    finish.join(30)
    assert not finish.thread.is_alive()
    assert stored() == [("user", "go on", None), ("assistant", "so far", "cancelled")]


def test_a_running_reply_past_the_limit_is_cancelled_and_waited_for() -> None:
    conv = make()
    done, cancel = threading.Event(), threading.Event()
    threading.Thread(target=lambda: (cancel.wait(30), done.set()), daemon=True).start()
    finish = HeadlessFinish(conv, running_done=done, running_cancel=cancel, queued=[], limit=0.1).start()
    finish.join(30)
    assert cancel.is_set() and done.is_set() and not finish.thread.is_alive()
