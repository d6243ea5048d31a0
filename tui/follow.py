"""Reattaching: showing a reply that another process is still writing (aigc_chat.reply_owner).

After a hang-up the old process may still be finishing its reply (tui/headless.py); another
window may be answering in the same conversation. When the chat screen opens a conversation
whose last reply is unfinished and its writer is alive, it follows that reply: the saved row
is read every `POLL` seconds (the writer saves about once a second) and what it gained is
appended to the reply on screen, sanitised like a stream. The status bar says "writing in
process PID"; sending is refused there (two writers would fork the conversation), Esc asks
the writer to stop. When the reply ends (or its writer is gone) the conversation is opened
again, now as a normal one."""

from __future__ import annotations

import asyncio
from typing import TYPE_CHECKING, Any

from aigc_chat.history_store import HistoryStore
from aigc_chat.reply_owner import live_writer
from aigc_chat.sanitize import StreamSanitizer
from aigc_chat.tui.chat_view import AssistantMessage

if TYPE_CHECKING:
    from textual.timer import Timer

    from aigc_chat.tui.chat_screen import ChatScreen

POLL = 0.5  # seconds between reads of the followed reply


class Follower:
    """The chat screen's follower of another process's reply (module notes)."""

    def __init__(self, screen: ChatScreen) -> None:
        self.screen = screen
        self.pid: int | None = None  # the writer followed (None: not following)
        self.message_id: int | None = None
        self.conversation_id: Any = None
        self._widget: AssistantMessage | None = None
        self._text = ""
        self._sanitizer = StreamSanitizer()
        self._timer: Timer | None = None
        self._busy = False
        self.stop_sent = False

    @property
    def active(self) -> bool:
        return self.pid is not None

    def note(self) -> str:
        """What the status bar says while following ("" when not)."""
        if self.pid is None:
            return ""
        return (f"asking process {self.pid} to stop" if self.stop_sent
                else f"writing in process {self.pid} · Esc stops it")

    def refusal(self) -> str:
        """Why this window cannot write to the conversation now ("" when it can)."""
        if self.pid is None:
            return ""
        return (f"process {self.pid} is writing this conversation: its reply shows here as it grows; "
                "wait for it, or Esc to stop it")

    def check(self) -> None:
        """After a conversation is opened: follow its last reply if another process writes it."""
        self.end()
        s = self.screen
        path = s.conversation.path()
        last = path[-1] if path else None
        if last is None or last.role != "assistant" or type(last.ref) is not int:
            return
        pid = live_writer(last.meta, last.finish_reason)
        widget = s.chat.widget_for(last)
        if pid is None or not isinstance(widget, AssistantMessage):
            return
        self.pid, self.message_id = pid, last.ref
        self.conversation_id = s.conversation.conversation_ref
        self._widget, self._text = widget, last.content
        self._sanitizer = StreamSanitizer()
        widget.start_stream()
        self._timer = s.set_interval(POLL, self._poll, name="follow")
        s.redraw_status()

    def end(self) -> None:
        if self._timer is not None:
            self._timer.stop()
        self._timer = None
        was = self.pid is not None
        self.pid = self.message_id = self._widget = None
        self.stop_sent = False
        if was:
            self.screen.redraw_status()

    def ask_stop(self) -> None:
        """Esc: ask the writer to stop (it ends its reply as cancelled at its next save)."""
        history = self.screen.conversation.history
        if self.message_id is None or history.writer is None:
            self.screen.app.notify("cannot ask it to stop: the history is read-only here", severity="warning")
            return
        history.submit_action(HistoryStore.request_stop, self.message_id)
        self.stop_sent = True
        self.screen.redraw_status()

    async def _poll(self) -> None:
        if self._busy or self.message_id is None:
            return
        self._busy = True
        try:
            mid, pid = self.message_id, self.pid
            try:
                state = await asyncio.wrap_future(
                    self.screen.conversation.history.read(lambda st: st.message_state(mid)))
            except Exception:  # noqa: BLE001 - try again at the next tick
                return
            if self.message_id != mid:  # ended or switched meanwhile
                return
            if state is None:
                await self._done()
                return
            text, finish_reason, meta = state
            widget = self._widget
            if widget is not None and text != self._text:
                if not text.startswith(self._text):
                    await self._done()  # rewritten, not grown: show it as stored
                    return
                safe = self._sanitizer.feed(text[len(self._text):])
                self._text = text
                if safe:
                    await widget.append(safe, text)
            if finish_reason is not None or (pid is not None and live_writer(meta, None) is None):
                await self._done()
        finally:
            self._busy = False

    async def _done(self) -> None:
        """The reply ended (or its writer is gone): show the conversation as it is stored."""
        cid = self.conversation_id
        self.end()
        if cid is not None and self.screen.conversation.conversation_ref == cid:
            self.screen.stored.open_in_background(cid)
