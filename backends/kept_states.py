"""Engine states kept for other branches, so moving back to one evaluates nothing it had.

An engine's KV cache holds one token sequence. A prompt that shares only a prefix with it
keeps that prefix and drops the rest, which is all a chat needs while it goes forward. A
conversation with branches (aigc_chat.tree) also goes sideways: back to a reply before a
regenerate, or to the branch before an edit five questions up. Then everything after the
fork point would be read again, at prompt-evaluation speed (about 150 tokens/s for
SmolLM2-135M on a 2-core CPU: seconds for a few turns).

So before a prompt drops at least MIN_TOKENS cached tokens, the engine copies its state out
(host memory) and keeps it here, newest first, within a byte budget; a later prompt that
shares at least MIN_TOKENS more with a kept state than with the live cache has that state put
back first. The engines do the copying (llama.cpp: its per-sequence state API; torch: slices
of the cache tensors); this module only decides, and knows nothing of either.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

MIN_TOKENS = 16  # a smaller gain is not worth a copy of the whole state
DEFAULT_BUDGET_MB = 256
MAX_KEPT = 8


def common_prefix(a: Sequence[int], b: Sequence[int]) -> int:
    n = 0
    for x, y in zip(a, b, strict=False):
        if x != y:
            break
        n += 1
    return n


@dataclass
class Kept:
    tokens: tuple[int, ...]
    state: Any  # the engine's own copy
    size: int  # bytes


class KeptStates:
    """The kept states of one engine (module notes). `budget` in bytes; 0 keeps nothing."""

    def __init__(self, budget: int, limit: int = MAX_KEPT) -> None:
        self.budget = max(0, int(budget))
        self.limit = limit
        self.kept: list[Kept] = []  # oldest first
        self.restored = 0  # how many times a kept state was put back (for tests and stats)

    @property
    def used(self) -> int:
        return sum(k.size for k in self.kept)

    def worth_keeping(self, cached: Sequence[int], prompt: Sequence[int]) -> bool:
        """Whether `prompt` would drop enough of the live cache to keep it first."""
        return self.budget > 0 and len(cached) - common_prefix(cached, prompt) >= MIN_TOKENS

    def fits(self, size: int) -> bool:
        return 0 < size <= self.budget

    def keep(self, tokens: Sequence[int], state: Any, size: int) -> None:
        """Keep a state of `tokens`; a kept state that is a prefix of it is superseded, and
        the oldest go when the budget or the count would be passed."""
        if not self.fits(size):
            return
        tokens = tuple(tokens)
        self.kept = [k for k in self.kept if tokens[: len(k.tokens)] != k.tokens and k.tokens != tokens]
        self.kept.append(Kept(tokens, state, size))
        while len(self.kept) > self.limit or self.used > self.budget:
            self.kept.pop(0)

    def best(self, prompt: Sequence[int], have: int) -> Kept | None:
        """The kept state sharing the longest prefix with `prompt`, if it beats the live
        cache's `have` tokens by MIN_TOKENS; it stays kept (moving back and forth is common)."""
        found, length = None, have + MIN_TOKENS - 1
        for k in self.kept:
            n = common_prefix(k.tokens, prompt)
            if n > length:
                found, length = k, n
        if found is not None:
            self.kept.remove(found)  # newest again
            self.kept.append(found)
        return found

    def clear(self) -> None:
        self.kept.clear()
