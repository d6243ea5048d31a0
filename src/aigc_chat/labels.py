"""Short texts shown for stored things: a conversation's default title, a model's short
name, a time. Shared by the store (which titles a conversation from its first question), the
export, the history command and the TUI, so each names things the same way."""

from __future__ import annotations

import time

TITLE_CHARS = 60


def title_from(text: str) -> str:
    """A conversation's default title: the first non-empty line, trimmed."""
    for line in text.splitlines():
        line = " ".join(line.split())
        if line:
            return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"
    return ""


def model_label(model: str, *, unset: str = "default model") -> str:
    """The one short name a model is shown under, everywhere (status bar, history list, reply
    headings, exports): a bundled model by its short name whatever copy of it was loaded, a
    file by its name without `.gguf`, a served model as named; `unset` where none is named."""
    from aigc_chat.default_model import bundled_file_name

    name = model.rstrip("/").rsplit("/", 1)[-1] or model
    if not name:
        return unset
    return bundled_file_name(name) or name.removesuffix(".gguf")


def format_time(ts: float) -> str:
    """A stored timestamp in local time, to the minute."""
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))
