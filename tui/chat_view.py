"""The conversation: one widget per message, styled by role, replies streamed as Markdown.

A streamed reply is drawn as finished segments plus a short live tail (see AssistantMessage),
so a batch costs the same at token 20,000 as at token 100; when the reply ends the whole
text is rendered once more so nothing a cut may have split stays wrong. Every string shown
here has been through `aigc_chat.sanitize`: model output never reaches the terminal as
control sequences, and it is never parsed as markup.
"""

from __future__ import annotations

from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.widgets import Label, Static

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


def split_point(text: str, min_keep: int) -> int:
    """Where a growing Markdown text can be cut into a finished part and a live tail: the
    last blank line outside a code fence, at least `min_keep` characters in; 0 if none."""
    best = 0
    in_fence = False
    pos = 0
    for line in text.splitlines(keepends=True):
        stripped = line.lstrip()
        if stripped.startswith(("```", "~~~")):
            in_fence = not in_fence
        pos += len(line)
        if not in_fence and not line.strip() and pos >= min_keep and pos < len(text):
            best = pos
    return best


class MarkdownView(Static):
    """Markdown drawn as one widget (Rich's renderer, code highlighted with Pygments).

    Why not Textual's Markdown widget: it makes a widget per block, and every layout change
    walks every widget on the screen, so a long reply (or a long conversation) made each
    streamed batch slower than the last. One widget per finished segment keeps the walk short.
    The text is sanitised and is never read as markup; links are shown, not made clickable.
    """

    def __init__(self, source: str = "", *, classes: str = "") -> None:
        super().__init__(classes=classes)
        self.source = source
        self._apply()

    def set_source(self, source: str) -> None:
        self.source = source
        self._apply()

    def _apply(self) -> None:
        from rich.markdown import Markdown as RichMarkdown

        dark = True
        try:
            dark = self.app.current_theme.dark
        except Exception:  # noqa: BLE001 - not mounted yet: the default (dark) look
            pass
        self.update(RichMarkdown(self.source, code_theme="monokai" if dark else "default",
                                 hyperlinks=False, inline_code_lexer=None))
        # Textual (8.2) starts a new layout generation for a widget only when no layout is
        # pending yet. If a layout pass ran between the pending request and this update, the
        # box model cached from the old text outlives it and the reply stays drawn at its old
        # height: under load a finished reply showed up empty. Start the generation ourselves.
        if hasattr(self, "_layout_updates"):
            self._layout_updates += 1


class AssistantMessage(ChatMessage):
    """A reply: Markdown body plus a stats line (time to first token, tok/s, tokens).

    While streaming, the body is a list of finished segments (each one widget, never redrawn
    again) and a live tail that is redrawn per batch; the tail is cut at a block boundary
    once it passes SEGMENT characters, so each batch costs O(batch + SEGMENT), not O(reply).
    When the reply ends the body is redrawn once from the complete text.
    """

    SEGMENT = 1500

    def __init__(self, text: str = "", *, message_id: int | None = None,
                 stats: dict[str, Any] | None = None, finish_reason: str | None = None) -> None:
        super().__init__("assistant", text, message_id=message_id)
        self.stats = stats or {}
        self.finish_reason = finish_reason
        self.batches = 0
        self._tail = ""
        self._tail_view: MarkdownView | None = None

    def compose(self) -> ComposeResult:
        yield Label(ROLE_TITLES["assistant"], classes="role")
        with Vertical(classes="body"):
            yield MarkdownView(sanitize(self.text), classes="segment")
        yield Static(self._stats_content(), classes="stats")

    @property
    def shown_markdown(self) -> str:
        """The Markdown currently on screen, all segments together."""
        return "".join(v.source for v in self.query(MarkdownView))

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
        views = list(self.query(MarkdownView))
        self._tail_view = views[-1] if views else None
        self._tail = self._tail_view.source if self._tail_view else ""

    async def append(self, shown: str, raw_so_far: str) -> None:
        """Add sanitised text to the reply (a batch of deltas)."""
        self.text = raw_so_far
        if self._tail_view is None:
            self.start_stream()
        assert self._tail_view is not None
        self.batches += 1
        self._tail += shown
        if len(self._tail) > self.SEGMENT:
            cut = split_point(self._tail, self.SEGMENT // 2)
            if cut:
                done, self._tail = self._tail[:cut], self._tail[cut:]
                self._tail_view.set_source(done)
                self._tail_view = MarkdownView(self._tail, classes="segment")
                await self.query_one(".body", Vertical).mount(self._tail_view)
                return
        self._tail_view.set_source(self._tail)

    async def finish(self, text: str, stats: dict[str, Any], finish_reason: str) -> None:
        """The reply is over: render the whole text once, show the stats."""
        self.text = text
        self.stats = stats
        self.finish_reason = finish_reason
        self.remove_class("-streaming")
        self.set_class(finish_reason == "cancelled", "-cancelled")
        self.set_class(finish_reason == "error", "-error")
        body = self.query_one(".body", Vertical)
        views = list(body.query(MarkdownView))
        for extra in views[1:]:
            await extra.remove()
        full = sanitize(text)
        if views:
            views[0].set_source(full)
        else:
            await body.mount(MarkdownView(full, classes="segment"))
        self._tail, self._tail_view = "", None
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
                                 self.meta.get("n", 8), self.meta.get("mode", "auto"))
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
