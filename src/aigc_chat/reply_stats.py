"""How a reply's prompt reading is said, the same in the TUI's stats line and `history show`.

A stored reply's stats are a JSON object from the history (a hostile or older file may hold
anything), so each value is checked before it is shown."""

from __future__ import annotations

from typing import Any


def prompt_facts(stats: dict[str, Any]) -> list[str]:
    """['7,218 prompt tok (6,912 cached)', 'read 410 tok/s'] where the engine said how it
    read the prompt; [] for replies from engines (or releases) that did not."""
    prompt, cached, rate = stats.get("prompt_tokens"), stats.get("cached_tokens"), stats.get("prompt_tokens_per_s")
    if not _count(cached) or not _count(prompt):
        return []
    parts = [f"{prompt:,} prompt tok ({cached:,} cached)"]
    if isinstance(rate, (int, float)) and not isinstance(rate, bool) and rate > 0:
        parts.append(f"read {rate:,.0f} tok/s")
    return parts


def _count(v: Any) -> bool:
    return isinstance(v, int) and not isinstance(v, bool) and v >= 0
