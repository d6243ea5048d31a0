"""Small text helpers for the TUI: reply stats, dates, code blocks. No Textual here."""

from __future__ import annotations

import re
import time
from typing import Any

from aigc_chat.labels import model_label
from aigc_chat.reply_stats import prompt_facts

_FENCE = re.compile(r"^(?P<indent> {0,3})(?P<fence>`{3,}|~{3,})[^\n]*\n(?P<body>.*?)^(?P=indent)(?P=fence)[ \t]*$",
                    re.MULTILINE | re.DOTALL)


def last_code_block(markdown: str) -> str | None:
    """The body of the last fenced code block, or None when the text has none.

    An unterminated final fence (a reply cut off mid-block) still counts: its body runs to
    the end of the text.
    """
    blocks = [m.group("body") for m in _FENCE.finditer(markdown)]
    tail_start = 0
    if blocks:
        tail_start = list(_FENCE.finditer(markdown))[-1].end()
    open_fence = re.search(r"^ {0,3}(`{3,}|~{3,})[^\n]*\n", markdown[tail_start:], re.MULTILINE)
    if open_fence:
        return markdown[tail_start + open_fence.end():].rstrip("\n") + "\n"
    return blocks[-1] if blocks else None


def format_stats(stats: dict[str, Any], finish_reason: str | None) -> str:
    """'0.12 s to first token · 48.3 tok/s · 128 tokens · done · model.gguf' from a reply's stats."""
    parts: list[str] = []
    ttft = stats.get("time_to_first_token")
    if isinstance(ttft, (int, float)):
        parts.append(f"{ttft:.2f} s to first token")
    rate = stats.get("decode_tokens_per_s")
    if isinstance(rate, (int, float)) and rate > 0:
        parts.append(f"{rate:.1f} tok/s")
    tokens = stats.get("completion_tokens")
    if isinstance(tokens, int):
        parts.append(f"{tokens} tokens")
    parts += prompt_facts(stats)
    if finish_reason:
        parts.append({"length": "stopped at max tokens", "cancelled": "cancelled",
                      "error": "failed", "stop": "done"}.get(finish_reason, finish_reason))
    model = stats.get("model")
    if isinstance(model, str) and model:
        parts.append(model_label(model))  # which model wrote it: conversations can switch
    return " · ".join(parts)


def format_date(timestamp: float, now: float | None = None) -> str:
    """Short, sortable-looking dates: time today, 'Mon 12' this week, else YYYY-MM-DD."""
    now = time.time() if now is None else now
    t = time.localtime(timestamp)
    today = time.localtime(now)
    if (t.tm_year, t.tm_yday) == (today.tm_year, today.tm_yday):
        return time.strftime("%H:%M", t)
    if 0 <= now - timestamp < 6 * 86400:
        return time.strftime("%a %H:%M", t)
    return time.strftime("%Y-%m-%d", t)
