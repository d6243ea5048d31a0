"""The conversation: one widget per message, styled by role, replies streamed as Markdown.

Streaming uses Textual's MarkdownStream, which re-parses only the last Markdown block per
batch, so a long reply costs O(new text) per update instead of re-rendering it all; when the
reply ends the whole text is rendered once more so nothing a batch may have cut (a code
fence) stays wrong. Every string shown here has been through `aigc_chat.sanitize`: model
output never reaches the terminal as control sequences, and it is never parsed as markup.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Label, Markdown, Static
from textual.widgets.markdown import MarkdownStream

from aigc_chat.sanitize import sanitize
from aigc_chat.tui.text_utils import format_stats, last_code_block

ROLE_TITLES = {"user": "You", "assistant": "Assistant", "system": "System"}


class ChatMessage(Vertical, can_focus=True):
    """A message the user can focus (tab / shift+tab) to copy it or its last code block."""

    BINDINGS = [
        Binding("c", "copy_message", "Copy message"),
        Binding("b", "copy_code", "Copy code block"),
    ]

    def __init__(self, role: str, text: str = "", *, message_id: int | None = None) -> None:
        super().__init__(classes=f"message -{role}")
        self.role = role
        self.text = text  # raw text as stored; sanitised whenever shown
        self.message_id = message_id

    def action_copy_message(self) -> None:
        self.app.copy_text(self.text, "message")  # type: ignore[attr-defined]

    def action_copy_code(self) -> None:
        code = last_code_block(self.text)
        if code is None:
            self.app.notify("this message has no code block", severity="warning")
            return
        self.app.copy_text(code, "code block")  # type: ignore[attr-defined]


class UserMessage(ChatMessage):
    def __init__(self, text: str, *, message_id: int | None = None) -> None:
        super().__init__("user", text, message_id=message_id)

    def compose(self) -> ComposeResult:
        yield Label(ROLE_TITLES["user"], classes="role")
        yield Static(Content(sanitize(self.text)), classes="body")


class AssistantMessage(ChatMessage):
    """A reply: Markdown body plus a stats line (time to first token, tok/s, tokens)."""

    def __init__(self, text: str = "", *, message_id: int | None = None,
                 stats: dict[str, Any] | None = None, finish_reason: str | None = None) -> None:
        super().__init__("assistant", text, message_id=message_id)
        self.stats = stats or {}
        self.finish_reason = finish_reason
        self._stream: MarkdownStream | None = None
        self.streamed_chars = 0

    def compose(self) -> ComposeResult:
        yield Label(ROLE_TITLES["assistant"], classes="role")
        yield Markdown(sanitize(self.text), classes="body")
        yield Static(self._stats_content(), classes="stats")

    def _stats_content(self) -> Content:
        if self.finish_reason is None and not self.stats:
            return Content("generating…" if self.has_class("-streaming") else "")
        line = format_stats(self.stats, self.finish_reason)
        error = self.stats.get("error")
        if error:
            line += f" · {error}"
        return Content(sanitize(line))

    def start_stream(self) -> None:
        self.add_class("-streaming")
        self.query_one(".stats", Static).update(Content("generating…"))
        self._stream = Markdown.get_stream(self.query_one(Markdown))

    async def append(self, shown: str, raw_so_far: str) -> None:
        """Add sanitised text to the reply (a batch of deltas)."""
        self.text = raw_so_far
        if self._stream is None:
            self.start_stream()
        assert self._stream is not None
        self.streamed_chars += len(shown)
        await self._stream.write(shown)

    async def finish(self, text: str, stats: dict[str, Any], finish_reason: str) -> None:
        """The reply is over: render the whole text once, show the stats."""
        if self._stream is not None:
            await self._stream.stop()
            self._stream = None
        self.text = text
        self.stats = stats
        self.finish_reason = finish_reason
        self.remove_class("-streaming")
        self.set_class(finish_reason == "cancelled", "-cancelled")
        self.set_class(finish_reason == "error", "-error")
        await self.query_one(Markdown).update(sanitize(text))
        self.query_one(".stats", Static).update(self._stats_content())


class NoticeMessage(Static):
    """A line from the app itself (context trimmed, model failed to load, ...)."""

    def __init__(self, text: str, *, severity: str = "info") -> None:
        super().__init__(Content(sanitize(text)), classes=f"notice -{severity}")


class GanMessage(ChatMessage):
    """GAN samples drawn inline; the widget comes from the GAN part, imported on demand."""

    def __init__(self, meta: dict[str, Any], *, message_id: int | None = None, text: str = "") -> None:
        super().__init__("gan", text, message_id=message_id)
        self.meta = meta

    def compose(self) -> ComposeResult:
        label = self.meta.get("label")
        title = f"GAN samples (label {label}, seed {self.meta.get('seed')})" if label is not None \
            else f"GAN samples (seed {self.meta.get('seed')})"
        yield Label(title, classes="role")
        try:
            from aigc_chat.tui.gan_widgets import GanSamplesView
        except ImportError as exc:
            yield Static(Content(f"GAN view not available in this build ({exc})"), classes="notice -warning")
            return
        try:
            yield GanSamplesView(self.meta.get("checkpoint"), self.meta.get("seed"), self.meta.get("label"),
                                 self.meta.get("n", 8), self.meta.get("mode", "halfblock"))
        except Exception as exc:  # noqa: BLE001 - a broken checkpoint must not take the chat down
            yield Static(Content(sanitize(f"cannot draw GAN samples: {exc}")), classes="notice -error")


class ChatView(VerticalScroll):
    """Scrolls with the reply only while the user is at the bottom (Textual's anchor)."""

    def on_mount(self) -> None:
        self.anchor()

    async def clear(self) -> None:
        await self.remove_children()
        self.anchor()

    async def add(self, widget: Static | ChatMessage) -> None:
        await self.mount(widget)

    def messages(self) -> list[ChatMessage]:
        return list(self.query(ChatMessage))

    def last(self, role: str) -> ChatMessage | None:
        for widget in reversed(self.messages()):
            if widget.role == role:
                return widget
        return None
