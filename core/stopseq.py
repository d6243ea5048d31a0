"""Stop sequences, handled once for every backend.

Engines see stop strings token by token; a string split across tokens, or a delta that shows
the first half of a stop string before the rest arrives, are the classic bugs. `StopFilter`
holds back exactly the tail that could still become a stop string, so what it releases is
final, and cuts the text at the earliest complete match.
"""

from __future__ import annotations

from collections.abc import Iterable


class StopFilter:
    def __init__(self, stops: Iterable[str]) -> None:
        self.stops: tuple[str, ...] = tuple(s for s in stops if s)
        self._held = ""
        self.stopped = False
        self.matched: str | None = None

    def feed(self, delta: str) -> str:
        """Take new model text; return the text that is now safe to show."""
        if self.stopped:
            return ""
        if not self.stops:
            return delta
        text = self._held + delta
        first = -1
        for stop in self.stops:
            idx = text.find(stop)
            if idx != -1 and (first == -1 or idx < first):
                first, self.matched = idx, stop
        if first != -1:
            self.stopped = True
            self._held = ""
            return text[:first]
        keep = self._partial_suffix(text)
        self._held = text[len(text) - keep:] if keep else ""
        return text[: len(text) - keep]

    def flush(self) -> str:
        """The generation ended without a stop: the held tail was ordinary text after all."""
        held, self._held = self._held, ""
        return "" if self.stopped else held

    def _partial_suffix(self, text: str) -> int:
        """Length of the longest tail of `text` that is a proper prefix of some stop string."""
        best = 0
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:k]):
                    best = k
                    break
        return best
