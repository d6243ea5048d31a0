"""The conversation: one widget per message, styled by role, replies streamed as Markdown.

A streamed reply is drawn as finished segments plus a short live tail (see AssistantMessage),
so a batch costs the same at token 20,000 as at token 100; when the reply ends the whole
text is rendered once more so nothing a cut may have split stays wrong. Every string shown
here has been through `aigc_chat.sanitize`: model output never reaches the terminal as
control sequences, and it is never parsed as markup.

A reasoning model's thinking is a ThinkingBlock above the answer: plain text streamed live
under "Thinking… N s", collapsed to one line ("Thought for 4.2 s · 380 tokens") once the
answer begins; `t` on a focused reply expands or collapses it, and that choice is the new
default (`[tui] show_reasoning`, remembered by the app).
"""

from __future__ import annotations

import time
from collections.abc import Sequence
from typing import Any

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical, VerticalScroll
from textual.content import Content
from textual.timer import Timer
from textual.widgets import Label, Static

from aigc_chat.attachments import Attachment
from aigc_chat.sanitize import one_line, sanitize
from aigc_chat.tree import Node
from aigc_chat.tui.events import BranchRequest, ReasoningShown
from aigc_chat.tui.text_utils import format_stats, last_code_block

ROLE_TITLES = {"user": "You", "assistant": "Assistant", "system": "System"}


def position_text(position: tuple[int, int]) -> str:
    """Where a message stands among its alternatives, for its header: "‹ 2/3 ›"."""
    index, count = position
    return f"‹ {index}/{count} ›" if count > 1 else ""


class ChatMessage(Vertical, can_focus=True):
    """A message the user can focus (tab / shift+tab) to copy it or its last code block, move
    between its alternatives (left / right, or [ / ]), or fork the conversation there (f).
    `node` is its place in the conversation's tree (aigc_chat.tree)."""

    # Every key that acts on a focused message is in the footer while it is focused (a user
    # who cannot see `f` forks at the wrong message); ←/→ only where there are alternatives.
    BINDINGS = [
        Binding("left,left_square_bracket", "branch(-1)", "‹ Prev", key_display="←"),
        Binding("right,right_square_bracket", "branch(1)", "Next ›", key_display="→"),
        Binding("f", "fork", "Fork here"),
        Binding("c", "copy_message", "Copy"),
        Binding("b", "copy_code", "Copy code"),
    ]

    def __init__(self, role: str, text: str = "", *, node: Node | None = None) -> None:
        super().__init__(classes=f"message -{role}")
        self.role = role
        self.text = text  # raw text as stored; sanitised whenever shown
        self.node = node
        self.position = (1, 1)  # among its alternatives; set by the screen (set_position)

    def title(self) -> str:
        return ROLE_TITLES.get(self.role) or one_line(self.role.capitalize())

    def _title_content(self) -> Content:
        where = position_text(self.position)
        return Content.assemble((self.title(), ""), ("  " + where, "bold") if where else "")

    def set_position(self, position: tuple[int, int]) -> None:
        if position == self.position:
            return
        self.position = position
        self.set_class(position[1] > 1, "-branched")
        for label in self.query(".role").results(Label):
            label.update(self._title_content())
        self.refresh_bindings()

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """The arrows only where there are alternatives (and only shown in the footer there)."""
        if action == "branch":
            return self.position[1] > 1
        return True

    def action_branch(self, step: int) -> None:
        self.post_message(BranchRequest(self, "switch", step))

    def action_fork(self) -> None:
        self.post_message(BranchRequest(self, "fork"))

    def action_copy_message(self) -> None:
        self.app.copy_text(self.text, "message")  # type: ignore[attr-defined]

    def action_copy_code(self) -> None:
        code = last_code_block(self.text)
        if code is None:
            self.app.notify("this message has no code block", severity="warning")
            return
        self.app.copy_text(code, "code block")  # type: ignore[attr-defined]


class UserMessage(ChatMessage):
    BINDINGS = [Binding("e", "edit", "Edit (new branch)")]

    def __init__(self, text: str, *, node: Node | None = None, files: Sequence[Attachment] = ()) -> None:
        super().__init__("user", text, node=node)
        self.files = tuple(files)

    def action_edit(self) -> None:
        self.post_message(BranchRequest(self, "edit"))

    def compose(self) -> ComposeResult:
        from aigc_chat.tui.files_bar import chip

        yield Label(self._title_content(), classes="role")
        for f in self.files:
            yield Static(Content(chip(f)), classes="file-chip")
        if self.text or not self.files:
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


def _start_layout(widget: Static) -> None:
    # Textual (8.2) starts a new layout generation for a widget only when no layout is
    # pending yet. If a layout pass ran between the pending request and an update, the box
    # model cached from the old text outlives it and the widget stays drawn at its old
    # height: under load a finished reply showed up empty. Start the generation ourselves.
    if hasattr(widget, "_layout_updates"):
        widget._layout_updates += 1


class SourceView(Static):
    """A Static that shows a `source` text it can be given again (a segment of a reply)."""

    def __init__(self, source: str = "", *, classes: str = "") -> None:
        super().__init__(classes=classes)
        self.source = source
        self._apply()

    def set_source(self, source: str) -> None:
        self.source = source
        self._apply()

    def _apply(self) -> None:
        raise NotImplementedError


class MarkdownView(SourceView):
    """Markdown drawn as one widget (Rich's renderer, code highlighted with Pygments).

    Why not Textual's Markdown widget: it makes a widget per block, and every layout change
    walks every widget on the screen, so a long reply (or a long conversation) made each
    streamed batch slower than the last. One widget per finished segment keeps the walk short.
    The text is sanitised and is never read as markup; links are shown, not made clickable.
    """

    def _apply(self) -> None:
        from rich.markdown import Markdown as RichMarkdown

        dark = True
        try:
            dark = self.app.current_theme.dark
        except Exception:  # noqa: BLE001 - not mounted yet: the default (dark) look
            pass
        self.update(RichMarkdown(self.source, code_theme="monokai" if dark else "default",
                                 hyperlinks=False, inline_code_lexer=None))
        _start_layout(self)


class PlainView(SourceView):
    """Sanitised plain text (never markup) that can be replaced: one segment of reasoning."""

    def _apply(self) -> None:
        # a segment cut after a newline keeps it in `source`; drawn, it would be a blank line
        self.update(Content(self.source.removesuffix("\n")))
        _start_layout(self)


def thinking_title(stats: dict[str, Any], elapsed: float | None = None) -> str:
    """'Thought for 4.2 s · 380 tokens' from a reply's stats (`elapsed`: the time measured on
    screen, for when the stats do not have it yet)."""
    seconds = stats.get("thinking_time")
    if not isinstance(seconds, (int, float)) or isinstance(seconds, bool):
        seconds = elapsed
    line = f"Thought for {seconds:.1f} s" if seconds is not None else "Thought"
    tokens = stats.get("reasoning_tokens")
    if isinstance(tokens, int) and not isinstance(tokens, bool) and tokens > 0:
        line += f" · {tokens} token{'s' if tokens != 1 else ''}"
    return line


def cut_point(text: str, size: int) -> int:
    """Where a growing plain text is cut into a finished segment and a live tail: after the
    last newline (else space) past half of `size`; `size` itself when there is neither."""
    for sep in ("\n", " "):
        i = text.rfind(sep, size // 2, len(text) - 1)
        if i != -1:
            return i + 1
    return size


class ThinkingBlock(Vertical):
    """A reply's reasoning: a one-line title, and the text below it (hidden when collapsed).

    Streamed like the answer: finished segments (each one widget, never redrawn again) and a
    live tail cut once it passes SEGMENT characters, so a batch costs O(batch + SEGMENT). The
    title shows the elapsed time while the model thinks, redrawn once a second at most and
    only then (every repaint is bytes over SSH)."""

    SEGMENT = 1500

    def __init__(self, text: str = "", *, title: str = "", expanded: bool = False,
                 live: bool = False) -> None:
        super().__init__(classes="thinking")
        self.live = live
        self.expanded = expanded or live
        self.heading = title or ("Thinking…" if live else "Thought")  # the title line
        self._initial = text
        self._tail = text
        self._tail_view: PlainView | None = None
        self._started = time.monotonic()
        self.elapsed: float | None = None  # how long it thought, measured here (once it ended)
        self._shown_seconds = 0
        self._timer: Timer | None = None
        self.set_class(live, "-live")
        self.set_class(not self.expanded, "-collapsed")

    def compose(self) -> ComposeResult:
        yield Static(self._title_content(), classes="thinking-title")
        with Vertical(classes="thinking-body"):
            yield PlainView(self._initial, classes="thinking-segment")

    def on_mount(self) -> None:
        self._tail_view = self.query(PlainView).last()
        if self.live:
            self._timer = self.set_interval(1.0, self._tick)

    @property
    def shown_text(self) -> str:
        """The reasoning currently in the block, all segments together."""
        return "".join(v.source for v in self.query(PlainView))

    @property
    def title_text(self) -> str:
        return self._title_content().plain

    def _title_content(self) -> Content:
        mark = "▾" if self.expanded else "▸"
        line = self.heading
        if self.live and self._shown_seconds:
            line += f" {self._shown_seconds} s"
        return Content(f"{mark} {sanitize(line)}")

    def _show_title(self) -> None:
        titles = self.query(".thinking-title")
        if titles:
            titles.first(Static).update(self._title_content(), layout=False)

    def _tick(self) -> None:
        seconds = int(time.monotonic() - self._started)
        if self.live and seconds != self._shown_seconds:
            self._shown_seconds = seconds
            self._show_title()

    async def append(self, text: str) -> None:
        if self._tail_view is None:
            return
        self._tail += text
        if len(self._tail) > self.SEGMENT:
            cut = cut_point(self._tail, self.SEGMENT)
            done, self._tail = self._tail[:cut], self._tail[cut:]
            self._tail_view.set_source(done)
            self._tail_view = PlainView(self._tail, classes="thinking-segment")
            await self.query_one(".thinking-body", Vertical).mount(self._tail_view)
            return
        self._tail_view.set_source(self._tail)

    def end_live(self, expanded: bool) -> None:
        """The model stopped thinking (the answer began, or the reply ended): one line,
        "Thought for 4.2 s", collapsed unless `expanded`."""
        if not self.live:
            return
        self.elapsed = time.monotonic() - self._started
        self.live = False
        self.remove_class("-live")
        if self._timer is not None:
            self._timer.stop()
            self._timer = None
        self.heading = thinking_title({}, self.elapsed)
        self.set_expanded(expanded)

    def set_heading(self, heading: str) -> None:
        self.heading = heading
        self._show_title()

    def set_expanded(self, expanded: bool) -> None:
        self.expanded = expanded
        self.set_class(not expanded, "-collapsed")
        self._show_title()

    async def set_text(self, text: str) -> None:
        """The whole reasoning, once, at the end (the last batch may not have been drawn)."""
        views = list(self.query(PlainView))
        for extra in views[1:]:
            await extra.remove()
        if views:
            views[0].set_source(text)
        self._tail, self._tail_view = text, (views[0] if views else None)


class AssistantMessage(ChatMessage):
    """A reply: its reasoning, if any (ThinkingBlock), the Markdown body and a stats line
    (time to first token, tok/s, tokens). `text` is the answer alone, as is what is copied.

    While streaming, the body is a list of finished segments (each one widget, never redrawn
    again) and a live tail that is redrawn per batch; the tail is cut at a block boundary
    once it passes SEGMENT characters, so each batch costs O(batch + SEGMENT), not O(reply).
    When the reply ends the body is redrawn once from the complete text.
    """

    SEGMENT = 1500
    BINDINGS = [Binding("t", "toggle_reasoning", "Show / hide reasoning")]

    def __init__(self, text: str = "", *, node: Node | None = None) -> None:
        super().__init__("assistant", text, node=node)
        self.batches = 0
        self._tail = ""
        self._tail_view: MarkdownView | None = None
        self._answering = False  # the answer has begun (the thinking block is collapsed)
        self._block: ThinkingBlock | None = None  # the reasoning, once there is some
        self._reading = False  # the stats line shows prompt reading progress

    def compose(self) -> ComposeResult:
        yield Label(self._title_content(), classes="role")
        if self.reasoning:
            self._block = ThinkingBlock(sanitize(self.reasoning), title=thinking_title(self.stats),
                                        expanded=self.reasoning_default())
            yield self._block
        with Vertical(classes="body"):
            yield MarkdownView(sanitize(self.text), classes="segment")
        yield Static(self._stats_content(), classes="stats")

    # The reply's record is its node's (the core's): read, never copied, so the screen cannot
    # show a finished reply other than the one the conversation holds and the history keeps.
    @property
    def stats(self) -> dict[str, Any]:
        return self.node.stats if self.node is not None else {}

    @property
    def finish_reason(self) -> str | None:
        """None while the reply streams; a stored reply that never ended is "interrupted"."""
        node = self.node
        if node is None or node.live:
            return None
        return node.finish_reason or "interrupted"

    @property
    def reasoning(self) -> str:
        """Raw, as stored (meta["reasoning"]); sanitised when shown."""
        value = self.node.meta.get("reasoning") if self.node is not None else None
        return value if isinstance(value, str) else ""

    @property
    def shown_markdown(self) -> str:
        """The Markdown currently on screen, all segments together."""
        return "".join(v.source for v in self.query(MarkdownView))

    @property
    def thinking(self) -> ThinkingBlock | None:
        """The reasoning block; None for a reply without reasoning."""
        return self._block

    def reasoning_default(self) -> bool:
        """Whether reasoning is shown expanded: `[tui] show_reasoning` of the app's config."""
        tui = getattr(getattr(self.app, "config", None), "tui", None)
        return bool(tui.get("show_reasoning", False)) if isinstance(tui, dict) else False

    def check_action(self, action: str, parameters: tuple[object, ...]) -> bool | None:
        """`t` only on a reply with reasoning (nor is it offered in the footer elsewhere)."""
        if action == "toggle_reasoning":
            return self.thinking is not None
        return super().check_action(action, parameters)

    def action_toggle_reasoning(self) -> None:
        block = self.thinking
        if block is None:
            return
        block.set_expanded(not block.expanded)
        self.post_message(ReasoningShown(block.expanded))  # the new default, for the app to keep

    async def _think(self, shown: str) -> None:
        """Reasoning text of a batch: into the live block, mounted on the first."""
        block = self.thinking
        if block is None:
            block = self._block = ThinkingBlock(live=True)
            await self.mount(block, before=self.query_one(".body", Vertical))
            self.refresh_bindings()
        await block.append(shown)

    def _stats_content(self) -> Content:
        if self.finish_reason is None and not self.stats:
            return Content("generating…" if self.has_class("-streaming") else "")
        line = format_stats(self.stats, self.finish_reason)
        error = self.stats.get("error")
        if error:
            line += f" · {error}"
        return Content(one_line(line))  # the model's name and an error: one line under the reply

    def show_reading(self, progress: str) -> None:
        """While the engine reads a long prompt, its progress stands where the stats go."""
        self._reading = True
        self.add_class("-streaming")
        self.query_one(".stats", Static).update(Content(progress))

    def start_stream(self) -> None:
        self.add_class("-streaming")
        self._reading = False
        self.query_one(".stats", Static).update(Content("generating…"))
        views = list(self.query(MarkdownView))
        self._tail_view = views[-1] if views else None
        self._tail = self._tail_view.source if self._tail_view else ""

    async def append(self, shown: str, raw_so_far: str, thinking: str = "") -> None:
        """Add sanitised text to the reply (a batch of deltas): `thinking` to the reasoning
        block, `shown` to the answer (its first text collapses the block)."""
        self.text = raw_so_far
        if self._tail_view is None or self._reading:
            self.start_stream()
        assert self._tail_view is not None
        self.batches += 1
        if thinking:
            await self._think(thinking)
        if not shown:
            return
        if not self._answering:
            self._answering = True
            block = self.thinking
            if block is not None:
                block.end_live(self.reasoning_default())
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

    async def finish(self) -> None:
        """The reply is over: render it once from its node (the whole text, the reasoning,
        the stats and how it ended)."""
        if self.node is not None:
            self.text = self.node.content
        text, stats, finish_reason, reasoning = self.text, self.stats, self.finish_reason, self.reasoning
        block = self.thinking
        if reasoning and block is None:  # all of it came in the last batch, never drawn
            block = self._block = ThinkingBlock(expanded=self.reasoning_default())
            await self.mount(block, before=self.query_one(".body", Vertical))
            self.refresh_bindings()
        if block is not None:
            if reasoning:
                await block.set_text(sanitize(reasoning))
            block.end_live(self.reasoning_default())
            block.set_heading(thinking_title(stats, block.elapsed))
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
        super().__init__(Content(one_line(text)), classes=f"notice -{severity}")


class GanMessage(ChatMessage):
    """GAN samples drawn inline; the widget comes from the GAN part, imported on demand."""

    def __init__(self, meta: dict[str, Any], *, node: Node | None = None, text: str = "") -> None:
        super().__init__("gan", text, node=node)
        self.meta = meta

    def compose(self) -> ComposeResult:
        label = self.meta.get("label")
        title = (f"GAN samples (label {label}, seed {self.meta.get('seed')})" if label is not None
                 else f"GAN samples (seed {self.meta.get('seed')})")
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

    def relayout(self) -> None:
        """Lay every message out afresh. A layout request made while another is pending is
        merged into it (Textual), and a container's placement of its children is cached by its
        own size: a message mounted whole (an opened conversation) could keep the placement
        worked out before its parts had their heights, and draw as an empty box, headers
        included, until a resize. A refresh with layout on every part, after the first frame,
        starts a new layout generation for each and clears every cached placement above it."""
        for widget in self.walk_children():
            widget.refresh(layout=True)

    def messages(self) -> list[ChatMessage]:
        return list(self.query(ChatMessage))

    def widget_for(self, node: Node) -> ChatMessage | None:
        return next((w for w in self.messages() if w.node is node), None)

    def last(self, role: str) -> ChatMessage | None:
        for widget in reversed(self.messages()):
            if widget.role == role:
                return widget
        return None


class SummaryMessage(ChatMessage):
    """A compaction's summary (aigc_chat.compaction): the model's text, headed with what it
    covers; never shown as the user's."""

    def __init__(self, text: str, *, node: Node | None = None, meta: dict[str, Any] | None = None) -> None:
        super().__init__("summary", text, node=node)
        self.meta = dict(meta or {})

    def title(self) -> str:
        from aigc_chat.compaction import label

        return label(self.meta)

    def compose(self) -> ComposeResult:
        yield Label(self._title_content(), classes="role")
        yield Static(Content(sanitize(self.text)), classes="body")


def message_widget(node: Node) -> ChatMessage:
    """The widget that shows a message of the tree (a reply still to come: an empty one)."""
    if node.kind == "summary":
        return SummaryMessage(node.content, node=node, meta=node.meta)
    if node.kind == "gan":
        return GanMessage(dict(node.meta), node=node, text=node.content)
    if node.role == "user":
        return UserMessage(node.content, node=node, files=node.files)
    return AssistantMessage(node.content, node=node)
