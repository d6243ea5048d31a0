"""The message box: multi-line, Enter sends, ctrl+j inserts a newline, up recalls.

Shift+Enter cannot be told apart from Enter in most terminals, but ctrl+j sends a bare LF
that every terminal (and tmux, and SSH) passes through distinctly, so it is the newline key.
Terminals speaking the kitty keyboard protocol also get shift+enter and alt+enter.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual import events
from textual.binding import Binding
from textual.message import Message
from textual.widgets import TextArea

FILE_PREFIX = "/file "


def complete_path(partial: str) -> str | None:
    """The longest unambiguous completion of a path being typed (a folder gets its "/"), or
    None when nothing matches or nothing would be added."""
    import os

    expanded = os.path.expanduser(partial)
    folder, stem = os.path.split(expanded)
    try:
        names = [n for n in os.listdir(folder or ".")
                 if n.startswith(stem) and (stem.startswith(".") or not n.startswith("."))]
    except OSError:
        return None
    if not names:
        return None
    common = os.path.commonprefix(names)  # noqa: RUF071 - names in one folder: a character prefix is meant
    if len(names) == 1 and os.path.isdir(os.path.join(folder or ".", common)):
        common += "/"
    if common == stem:
        return None
    head = partial[: len(partial) - len(stem)] if stem else partial
    return head + common


def pasted_path(text: str) -> str | None:
    """A paste that is just the path of an existing regular file (terminals paste a dropped
    file's path, sometimes quoted or with a file:// prefix), else None: an ordinary paste."""
    import os
    from urllib.parse import unquote

    candidate = text.strip()
    if not candidate or "\n" in candidate:
        return None
    if len(candidate) > 1 and candidate[0] == candidate[-1] and candidate[0] in "'\"":
        candidate = candidate[1:-1]
    if candidate.startswith("file://"):
        candidate = unquote(candidate[len("file://"):])
    candidate = candidate.replace("\\ ", " ")
    return candidate if os.path.isfile(os.path.expanduser(candidate)) else None


class PromptInput(TextArea):
    """TextArea that submits on Enter and keeps a history of sent prompts."""

    BINDINGS = [
        Binding("ctrl+j,shift+enter,alt+enter", "newline", "Newline", show=False),
    ]

    @dataclass
    class Submitted(Message):
        input: PromptInput
        text: str

    @dataclass
    class PathPasted(Message):
        """The terminal pasted (or dropped) the path of an existing file: attach it."""

        path: str

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, soft_wrap=True, tab_behavior="focus", show_line_numbers=False,
                         compact=True, highlight_cursor_line=False)
        self.sent_prompts: list[str] = []
        self._recall: int | None = None  # index into history while recalling
        self.placeholder = "Message (Enter sends, ctrl+j newline, F1 help)"

    async def _on_key(self, event: events.Key) -> None:
        if event.key == "tab" and self.text.startswith(FILE_PREFIX) and "\n" not in self.text:
            completed = complete_path(self.text[len(FILE_PREFIX):])
            if completed is not None:
                event.stop()
                event.prevent_default()
                self.load_text(FILE_PREFIX + completed)
                self.move_cursor(self.document.end)
                return
        if event.key == "enter":
            event.stop()
            event.prevent_default()
            self.post_message(self.Submitted(self, self.text))
            return
        if event.key == "up" and self._can_recall_back():
            event.stop()
            event.prevent_default()
            self._recall_step(-1)
            return
        if event.key == "down" and self._recall is not None and self.cursor_location[0] == self.document.line_count - 1:
            event.stop()
            event.prevent_default()
            self._recall_step(1)
            return
        await super()._on_key(event)

    def _can_recall_back(self) -> bool:
        if not self.sent_prompts:
            return False
        if self._recall is not None:
            return self.cursor_location[0] == 0
        return self.text == ""

    def _recall_step(self, step: int) -> None:
        index = len(self.sent_prompts) if self._recall is None else self._recall
        index += step
        if index >= len(self.sent_prompts):
            self._recall = None
            self.load_text("")
            return
        self._recall = max(0, index)
        self.load_text(self.sent_prompts[self._recall])
        self.move_cursor(self.document.end)

    async def _on_paste(self, event: events.Paste) -> None:
        path = pasted_path(event.text)
        if path is not None and not self.text.strip():
            event.stop()
            event.prevent_default()
            self.post_message(self.PathPasted(path))
            return
        await super()._on_paste(event)

    def remember(self, text: str) -> None:
        """Add a sent prompt to the recall list (consecutive duplicates kept once)."""
        if text.strip() and (not self.sent_prompts or self.sent_prompts[-1] != text):
            self.sent_prompts.append(text)
        self._recall = None

    def action_newline(self) -> None:
        start, end = self.selection
        self._replace_via_keyboard("\n", start, end)
