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


class PromptInput(TextArea):
    """TextArea that submits on Enter and keeps a history of sent prompts."""

    BINDINGS = [
        Binding("ctrl+j,shift+enter,alt+enter", "newline", "Newline", show=False),
    ]

    @dataclass
    class Submitted(Message):
        input: PromptInput
        text: str

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, soft_wrap=True, tab_behavior="focus", show_line_numbers=False,
                         compact=True, highlight_cursor_line=False)
        self.sent_prompts: list[str] = []
        self._recall: int | None = None  # index into history while recalling
        self.placeholder = "Message (Enter sends, ctrl+j newline, F1 help)"

    async def _on_key(self, event: events.Key) -> None:
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

    def remember(self, text: str) -> None:
        """Add a sent prompt to the recall list (consecutive duplicates kept once)."""
        if text.strip() and (not self.sent_prompts or self.sent_prompts[-1] != text):
            self.sent_prompts.append(text)
        self._recall = None

    def action_newline(self) -> None:
        start, end = self.selection
        self._replace_via_keyboard("\n", start, end)
