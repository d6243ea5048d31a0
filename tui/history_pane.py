"""The history pane: conversations newest first, full-text search, rename/delete/export keys.

The pane reads the history through the app's HistoryService (attributes down): every read
runs on the history's reader thread in an async worker, and the list is filled when the
result comes back, so a slow or locked history never holds up the screen. It asks the app to
act on a conversation by posting messages (messages up), since opening or deleting one
changes the chat view and the session as well.
"""

from __future__ import annotations

import asyncio
import re
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.message import Message
from textual.timer import Timer
from textual.widgets import Input, OptionList, Static
from textual.widgets.option_list import Option

from aigc_chat.ids import Ref, known
from aigc_chat.labels import model_label
from aigc_chat.sanitize import sanitize
from aigc_chat.tui import text_utils

if TYPE_CHECKING:
    from aigc_chat.labels import model_label
from aigc_chat.history_service import HistoryService

POLL_S = 2.0  # how often the pane checks for conversations other processes added or deleted
PAGE = 500  # conversations listed at once; older ones are reached by search


def format_date(timestamp: float) -> str:
    """Indirection so snapshot tests can pin dates."""
    return text_utils.format_date(timestamp)


def _one_line(text: str, width: int = 0) -> str:
    """Untrusted text as one line, cut to `width` cells so each entry stays two lines."""
    line = " ".join(sanitize(text).split())
    if width and len(line) > width:
        line = line[: width - 1] + "…"
    return line


_FORKS = re.compile(r"(?: \(fork\))+$")


def title_line(title: str, width: int) -> str:
    """A title cut to `width` cells, keeping a fork's " (fork)" ending: cut at the end it
    would read exactly like the conversation it was forked from."""
    line = _one_line(title)
    if len(line) <= width:
        return line
    tail = m.group(0) if (m := _FORKS.search(line)) else ""
    if tail and len(tail) < width - 4:
        return _one_line(line[: len(line) - len(tail)], width - len(tail)) + tail
    return _one_line(line, width)


WIDTH = 27  # text columns inside the pane at its narrowest (the screen sets the real one)


class HistoryList(OptionList):
    BINDINGS = [
        Binding("n", "screen.new_conversation", "New"),
        Binding("r", "pane_rename", "Rename"),
        Binding("d,delete", "pane_delete", "Delete"),
        Binding("e", "pane_export", "Export"),
    ]

    def action_pane_rename(self) -> None:
        self.parent_pane().request("rename")

    def action_pane_delete(self) -> None:
        self.parent_pane().request("delete")

    def action_pane_export(self) -> None:
        self.parent_pane().request("export")

    def parent_pane(self) -> HistoryPane:
        return self.query_ancestor(HistoryPane)


class HistoryPane(Vertical):
    """Search box, list of conversations (or search hits), a count line. Esc goes back to
    the message box (as from the settings pane)."""

    BINDINGS = [Binding("escape", "leave", "Back to the message", show=False)]

    class Leave(Message):
        pass

    def action_leave(self) -> None:
        self.post_message(self.Leave())

    @dataclass
    class Open(Message):
        conversation_id: int
        message_id: int = 0  # a search hit's message: open the branch that holds it

    @dataclass
    class Request(Message):
        """The user asked to rename, delete or export a conversation."""
        action: str
        conversation_id: int
        title: str

    def __init__(self, history: HistoryService | None, *, off_reason: str = "",
                 id: str | None = None) -> None:
        super().__init__(id=id)
        self.history = history
        self.off_reason = off_reason or "history is off (--no-history)"
        self._rows: list[tuple[int, str]] = []  # (conversation id, title) per option
        self._hits: list[int] = []  # per option, the message a search hit is in (0: none)
        self._search_timer: Timer | None = None
        self.query_text = ""
        self.current_id: Ref = None  # the conversation shown: a new one's id may be a Future (aigc_chat.ids)
        self.not_saving = ""  # why nothing is being saved ("" while all is well)
        self._count = ""
        self._fingerprint: tuple[int, int] | None = None  # HistoryStore.list_fingerprint at the last fill
        self.text_width = WIDTH  # columns for an entry's text (the pane's width less its edges)

    def set_text_width(self, pane_width: int) -> None:
        """The screen sized the pane: entries are cut to the new width (read again if it changed)."""
        width = max(8, pane_width - 3)
        if width != self.text_width:
            self.text_width = width
            if self.is_mounted and self._rows:
                self.reload()

    def compose(self) -> ComposeResult:
        yield Input(placeholder="Search all messages", id="history-search")
        yield HistoryList(id="history-list")
        yield Static("", id="history-count")

    def on_mount(self) -> None:
        self.border_title = "History"
        # after the first paint: the read runs on a thread, and a thread starting during the
        # first frame takes the interpreter from it (the pane fills a moment later instead)
        self.call_after_refresh(self.reload)
        if self.history is not None and self.history.available:
            self.set_interval(POLL_S, self._poll, name="history-poll")

    @work(exclusive=True, group="history-poll", exit_on_error=False)
    async def _poll(self) -> None:
        """Fill the list again when another process added or deleted a conversation (not while
        a search is shown: its results stay as they are until the search changes)."""
        assert self.history is not None
        try:
            now = await asyncio.wrap_future(self.history.read(lambda s: s.list_fingerprint()))
        except Exception:  # noqa: BLE001 - the next fill says what is wrong
            return
        if self._fingerprint is not None and now != self._fingerprint and not self.query_text:
            self.reload()

    # -- filling ------------------------------------------------------------------------
    def reload(self) -> None:
        """Re-read the list (or re-run the search) on the reader thread; filled on return."""
        if self.history is None or not self.history.available:
            self._fill([], self.off_reason)
            return
        self._load(self.query_text)

    @work(exclusive=True, group="history-pane", exit_on_error=False)
    async def _load(self, query: str) -> None:
        assert self.history is not None
        if query:
            try:
                hits = await asyncio.wrap_future(self.history.read(lambda s: s.search(query, limit=100, prefix=True)))
            except Exception as exc:  # noqa: BLE001 - a bad query shows a reason, never a crash
                self._fill([], f"search failed: {exc}")
                return
            self._fill_hits(hits)
            return
        try:
            convs, self._fingerprint = await asyncio.wrap_future(
                self.history.read(lambda s: (s.list_conversations(limit=PAGE), s.list_fingerprint())))
        except Exception as exc:  # noqa: BLE001 - an unreadable history says why, never a crash
            self._fill([], f"cannot read the history: {getattr(exc, 'reason', exc)}")
            return
        options = []
        rows = []
        for c in convs:
            title = _one_line(c.title) or "untitled"
            model = model_label(c.model)
            meta = f"{format_date(c.updated_at)} · {model}"
            options.append(Option(Content.assemble((title_line(title, self.text_width), "bold"), "\n",
                                                   (_one_line(meta, self.text_width), "dim"))))
            rows.append((c.id, title))
        more = " (search to reach older ones)" if len(convs) == PAGE else ""
        count = f"{len(convs)} conversation{'s' if len(convs) != 1 else ''}{more}"
        self._fill(list(zip(rows, options, strict=True)), count)

    def _fill_hits(self, hits: list[Any]) -> None:
        items = []
        for h in hits:
            title = _one_line(h.title) or "untitled"
            snippet = _one_line(h.snippet, self.text_width * 2)
            items.append(((h.conversation_id, title),
                          Option(Content.assemble((title_line(title, self.text_width), "bold"), "\n",
                                                  (snippet, "dim")))))
        self._fill(items, f"{len(hits)} match{'es' if len(hits) != 1 else ''}", [h.message_id for h in hits])

    def show_not_saving(self, reason: str) -> None:
        """Mark the pane: nothing from this session is being saved (and say why, briefly)."""
        self.not_saving = reason
        self.border_title = "History (not saving)"
        count = self.query_one("#history-count", Static)
        count.styles.height = "auto"  # the count line, then the reason (a few lines at most)
        count.styles.max_height = 5
        self._show_count()

    def _show_count(self) -> None:
        text = self._count
        if self.not_saving:
            text = f"{text}\nnot saving: {self.not_saving}" if text else f"not saving: {self.not_saving}"
        self.query_one("#history-count", Static).update(Content(text))

    def _fill(self, items: list[tuple[tuple[int, str], Option]], count: str,
              hits: list[int] | None = None) -> None:
        """Show `items` (rows and their options); `hits`: each row's search-hit message."""
        option_list = self.query_one(HistoryList)
        self._rows = [row for row, _ in items]
        self._hits = hits if hits is not None else [0] * len(items)
        option_list.set_options([opt for _, opt in items])
        if self._rows:
            option_list.highlighted = 0
        current = known(self.current_id)
        if current is not None:
            for i, (cid, _) in enumerate(self._rows):
                if cid == current:
                    option_list.highlighted = i
                    break
        self._count = count
        self._show_count()

    # -- events -----------------------------------------------------------------------------
    @on(Input.Changed, "#history-search")
    def _query_changed(self, event: Input.Changed) -> None:
        self.query_text = event.value.strip()
        if self._search_timer is not None:
            self._search_timer.stop()
        self._search_timer = self.set_timer(0.15, self.reload)

    @on(Input.Submitted, "#history-search")
    def _query_submitted(self, event: Input.Submitted) -> None:
        if self._search_timer is not None:
            self._search_timer.stop()
        self.query_text = event.value.strip()
        self.reload()
        self.query_one(HistoryList).focus()

    @on(OptionList.OptionSelected, "#history-list")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        event.stop()
        if 0 <= event.option_index < len(self._rows):
            index = event.option_index
            self.post_message(self.Open(self._rows[index][0], self._hits[index]))

    def highlighted_row(self) -> tuple[int, str] | None:
        index = self.query_one(HistoryList).highlighted
        if index is None or not 0 <= index < len(self._rows):
            return None
        return self._rows[index]

    def request(self, action: str) -> None:
        row = self.highlighted_row()
        if row is None:
            self.app.notify("no conversation selected", severity="warning")
            return
        self.post_message(self.Request(action, row[0], row[1]))

    def focus_search(self) -> None:
        self.query_one("#history-search", Input).focus()

    def row_count(self) -> int:
        return len(self._rows)

    def rows(self) -> list[Any]:
        return list(self._rows)
