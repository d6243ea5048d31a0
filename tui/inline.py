"""`aigc-chat --inline` (`[tui] inline = true`): the TUI below the shell prompt, in Textual's
inline mode, without the alternate screen.

What it shows: the same app (chat, message box, status bar, every key) in the lower part of
the terminal (`Screen:inline` in app.tcss; the history pane is hidden there, ctrl+h shows
it). What it keeps: everything above it in the terminal stays in the terminal's own
scrollback and selection, and when you quit, the conversation shown (its current path) is
printed there as plain text, sanitised like the screen (no escape sequence, markup or bidi
control from a model gets through), so it stays in tmux's or the terminal's scrollback after
the app has gone. Nothing is printed after a hang-up (nobody is there to read it)."""

from __future__ import annotations

import sys
from collections.abc import Sequence
from typing import Any, TextIO

from aigc_chat.sanitize import sanitize

LABELS = {"user": "You", "assistant": "Assistant", "system": "System"}


def transcript(path: Sequence[Any]) -> str:
    """The conversation's messages as plain sanitised text (inline items are left out)."""
    parts: list[str] = []
    for node in path:
        if getattr(node, "kind", "text") != "text" or not node.content:
            continue
        label = LABELS.get(node.role, node.role)
        parts.append(f"{label}:\n{sanitize(node.content)}\n")
    return "\n".join(parts)


def print_transcript(path: Sequence[Any], out: TextIO | None = None) -> None:
    text = transcript(path)
    if not text:
        return
    stream = sys.stdout if out is None else out
    try:
        stream.write(text)
        stream.flush()
    except (OSError, ValueError):  # the terminal went away meanwhile
        pass
