"""Waiting for a condition, not for a duration.

A fixed `time.sleep(n)` before an assertion is wrong both ways: too short on a loaded
machine (the suite runs on two shared cores, so the test flakes) and too long everywhere
else (the suite is slow). These poll the thing the test is about until it holds, with a
deadline that only bounds a hang; a short sleep between checks keeps a poll from spinning.
Where the code under test takes a clock, a fake one (tests/fake_clock.py) is better still.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from typing import TypeVar

T = TypeVar("T")


def poll_until(condition: Callable[[], T], timeout: float, interval: float = 0.05) -> T | None:
    """Call `condition` until it returns something truthy and return that, or None once
    `timeout` seconds have passed. For callers that handle the timeout themselves (kill a
    process, say why); the condition is always tried once more at the deadline."""
    deadline = time.monotonic() + timeout
    while True:
        got = condition()
        if got:
            return got
        if time.monotonic() >= deadline:
            return None
        time.sleep(interval)


def wait_for(condition: Callable[[], T], timeout: float, what: str, interval: float = 0.05,
             detail: Callable[[], str] | None = None) -> T:
    """`poll_until`, failing the test after `timeout` seconds with what it waited for (and
    `detail()`, e.g. the screen, so the failure shows the state it got stuck in)."""
    got = poll_until(condition, timeout, interval)
    if not got:
        extra = f"\n{detail()}" if detail is not None else ""
        raise AssertionError(f"timed out after {timeout:g} s waiting for {what}{extra}")
    return got
