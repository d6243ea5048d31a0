"""Files waiting to go with the next message: one chip per file (name, size, tokens) in a
list above the message box. Keyboard-first: tab to it, `x` (or Delete) removes the
highlighted file, Enter shows its text. Hidden while no file is attached."""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding
from textual.content import Content
from textual.message import Message
from textual.widgets import OptionList
from textual.widgets.option_list import Option

from aigc_chat.attachments import Attachment, human_size
from aigc_chat.sanitize import one_line


def chip(file: Attachment) -> str:
    """'app.py · 1.2 KB · 340 tokens' (the name sanitised: it is the user's, or a file's)."""
    tokens = f" · {file.tokens:,} tokens" if file.tokens is not None else ""
    return f"📎 {one_line(file.name)} · {human_size(file.size)}{tokens}"


class FilesBar(OptionList):
    BINDINGS = [
        Binding("x,delete", "remove", "Remove file"),
        Binding("enter", "preview", "Show file", show=False),
    ]

    @dataclass
    class Preview(Message):
        file: Attachment

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, compact=True)
        self.files: list[Attachment] = []
        self.display = False

    def add(self, file: Attachment) -> None:
        self.files = [f for f in self.files if f.name != file.name] + [file]  # attached again: the new text
        self._show()

    def take(self) -> list[Attachment]:
        """The files, for the message being sent; the bar empties."""
        files, self.files = self.files, []
        self._show()
        return files

    def _show(self) -> None:
        self.clear_options()
        self.add_options([Option(Content(chip(f))) for f in self.files])
        self.display = bool(self.files)
        self.border_title = f"{len(self.files)} file{'s' if len(self.files) != 1 else ''} for the next message"

    def action_remove(self) -> None:
        index = self.highlighted
        if index is None or not self.files:
            return
        del self.files[index]
        self._show()
        if self.files:
            self.highlighted = min(index, len(self.files) - 1)
        else:
            self.screen.focus_next()

    def action_preview(self) -> None:
        if self.highlighted is not None and self.files:
            self.post_message(self.Preview(self.files[self.highlighted]))
