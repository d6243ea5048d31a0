"""Stop sequences, handled once for every backend.

Engines see stop strings token by token; a string split across tokens, or a delta that shows
the first half of a stop string before the rest arrives, are the classic bugs. `StopFilter`
holds back exactly the tail that could still become a stop string, so what it releases is
final, and cuts the text at the earliest match. A stop that is complete is not final while
a longer one that starts earlier may still complete ("Y" inside a pending "<Y<").
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
        first, matched = self._earliest(text)
        pending = len(text) - self._partial_suffix(text)  # where an unfinished stop could begin
        if first != -1 and first <= pending:
            self.stopped, self.matched, self._held = True, matched, ""
            return text[:first]
        self._held = text[pending:]
        return text[:pending]

    def flush(self) -> str:
        """The generation ended: the held tail is ordinary text, up to a stop it may hold."""
        held, self._held = self._held, ""
        if self.stopped:
            return ""
        first, matched = self._earliest(held)
        if first != -1:
            self.stopped, self.matched = True, matched
            return held[:first]
        return held

    def _earliest(self, text: str) -> tuple[int, str | None]:
        """Where the earliest complete stop begins (-1 if none), and which one."""
        first, matched = -1, None
        for stop in self.stops:
            idx = text.find(stop)
            if idx != -1 and (first == -1 or idx < first):
                first, matched = idx, stop
        return first, matched

    def _partial_suffix(self, text: str) -> int:
        """Length of the longest tail of `text` that is a proper prefix of some stop string."""
        best = 0
        for stop in self.stops:
            for k in range(min(len(stop) - 1, len(text)), best, -1):
                if text.endswith(stop[:k]):
                    best = k
                    break
        return best
