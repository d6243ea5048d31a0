"""A clock that moves only when the test moves it.

For code whose behaviour depends on elapsed time (the reply recorder's once-a-second
writes, "most recently active" ordering): the test steps the clock past or short of the
threshold and asserts at each step, so the outcome never depends on how fast a loaded
machine runs, and no test waits real seconds for a timer.
"""

from __future__ import annotations

import time
from types import ModuleType
from typing import Any


class FakeClock:
    """Callable like `time.monotonic` or `time.time`; `advance` moves it."""

    def __init__(self, start: float = 100.0) -> None:
        self.now = start

    def __call__(self) -> float:
        return self.now

    def advance(self, seconds: float) -> None:
        self.now += seconds


class TimeModule:
    """The `time` module with `time()` read from a fake clock, everything else real.

    For code that calls `time.time()` itself and takes no clock argument (HistoryStore
    stamps rows with it): `monkeypatch.setattr(aigc_chat.history_store, "time", TimeModule(clock))`.
    monotonic() and sleep() stay real, so busy-retry loops still time out as they should."""

    def __init__(self, clock: FakeClock, real: ModuleType = time) -> None:
        self._clock = clock
        self._real = real

    def time(self) -> float:
        return self._clock()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._real, name)
