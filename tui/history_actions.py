"""What the chat screen does with stored conversations: open one, start a new one, rename,
delete and export from the history pane. The chat screen routes them here, kept apart because
it is one job: the pane's requests and the conversation core's history calls.

It sees the screen through `HistoryHost`, the few things it needs (Textual's way: attributes
down, messages up): the core's conversation, the chat's lifecycle, the history pane it keeps
current, the app (notifications, dialogs), and the screen's own jobs it asks for, chiefly
`show_conversation` (the screen redraws itself from the core after a new or opened one).

Every read or write runs on the history's threads (the core hands back Futures); the screen
awaits reads, and learns the outcome of a rename, delete or export from a HistoryActionDone,
so a slow or locked history never holds up a key."""

from __future__ import annotations

import asyncio
from collections.abc import Callable, Coroutine
from concurrent.futures import Future
from pathlib import Path
from typing import Any, Protocol

from textual.app import App
from textual.message import Message

from aigc_chat.chat_state import Action, ChatState
from aigc_chat.conversation import Conversation
from aigc_chat.errors import AigcError
from aigc_chat.ids import Ref, known
from aigc_chat.tui.chat_view import ChatView, NoticeMessage
from aigc_chat.tui.dialogs import ConfirmDialog, TextDialog
from aigc_chat.tui.events import HistoryActionDone
from aigc_chat.tui.history_pane import HistoryPane


class HistoryHost(Protocol):
    """What HistoryActions needs of the chat screen (ChatScreen is one), and nothing more."""

    conversation: Conversation  # the core: reads, writes, new, load
    chat_state: ChatState  # the lifecycle: an open in progress, why an action must wait

    @property
    def history(self) -> HistoryPane: ...  # the list: which conversation is current, reload

    @property
    def chat(self) -> ChatView: ...  # where a notice about the conversation shown goes

    @property
    def app(self) -> App[object]: ...  # notify, push_screen

    def busy(self, action: Action) -> bool: ...

    async def show_conversation(self, change: Callable[[], object], *, fresh: bool = False,
                                at: int | None = None, focus: bool = False) -> None: ...

    async def send_next_queued(self) -> None: ...

    def post_message(self, message: Message) -> bool: ...

    def run_worker(self, work: Coroutine[Any, Any, None], name: str | None = "", group: str = "default",
                   description: str = "", exit_on_error: bool = True) -> object: ...


def open_failure(exc: BaseException) -> str:
    if isinstance(exc, AigcError):
        return str(exc)
    return f"cannot open the conversation: {type(exc).__name__}: {exc}"


class HistoryActions:
    """ChatScreen's history side (module notes): the screen routes the pane's messages and
    its keys here."""

    def __init__(self, screen: HistoryHost) -> None:
        self.screen = screen
        self.keep_pending = False  # "keep as a new conversation" waits for the reply streaming

    # -- new and open ---------------------------------------------------------------------
    async def new_conversation(self) -> None:
        s = self.screen
        if s.busy("new"):
            return
        await s.show_conversation(s.conversation.new, fresh=True)  # no branches, no context used

    def open_in_background(self, conversation_id: int, at: int | None = None) -> None:
        """Read a conversation in and show it; messages sent meanwhile wait for it."""
        s = self.screen
        s.chat_state.open_started()
        s.run_worker(self._open_job(conversation_id, at), group="open", exit_on_error=False)

    async def _open_job(self, conversation_id: int, at: int | None = None) -> None:
        s = self.screen
        try:
            await self.open_conversation(conversation_id, at=at, focus=True)
        except Exception as exc:  # noqa: BLE001 - shown, never a crash
            s.app.notify(open_failure(exc), severity="error")
            s.history.reload()
        finally:
            s.chat_state.open_ended()
        await s.send_next_queued()

    async def open_conversation(self, conversation_id: int, keep: frozenset[str] = frozenset(),
                                at: int | None = None, focus: bool = False) -> None:
        """Read the conversation on the history's reader thread, then show it: the path it
        was left on, or, given `at` (a search hit), the branch holding that message. The model
        it names is loaded if it is not the one loaded (ChatScreen.show_conversation)."""
        conv = self.screen.conversation
        stored = await asyncio.wrap_future(conv.read(conversation_id, at=at))

        def load() -> None:
            conv.load(stored, keep=keep)
            if at is not None and stored.leaf_id is not None:
                node = conv.tree.find(stored.leaf_id)
                if node is not None:
                    conv.show(node)  # remembered: the next message follows the branch opened

        await self.screen.show_conversation(load, at=at, focus=focus)

    # -- the conversation shown, deleted elsewhere ------------------------------------------
    async def conversation_deleted(self, conversation_id: int) -> None:
        """Another window or `aigc-chat history delete` removed the conversation shown. Say so
        in the chat, and offer to store the chat again as a new conversation (after the reply
        that is streaming, if one is); saving itself never stopped."""
        s = self.screen
        text = (f"Conversation {conversation_id} was deleted outside this window (another aigc-chat, "
                "or `aigc-chat history delete`). What it shows here is not saved any more.")
        await s.chat.add(NoticeMessage(text, severity="warning"))
        s.history.current_id = None
        s.history.reload()

        def chosen(keep: bool | None) -> None:
            if keep:
                self.keep_pending = True
                self.keep_as_new()
            else:
                s.app.notify("not kept: a new conversation (ctrl+n) is saved as usual", timeout=8)

        s.app.push_screen(ConfirmDialog(f"Conversation {conversation_id} was deleted elsewhere. "
                                        "Keep this chat as a new conversation?", default_yes=True), chosen)

    def keep_as_new(self) -> None:
        """Store the chat as a new conversation now, or once the reply streaming has ended."""
        s = self.screen
        if not self.keep_pending or s.chat_state.why_busy("keep") is not None:
            return
        self.keep_pending = False
        try:
            s.conversation.keep_as_new()
        except AigcError as exc:
            s.app.notify(f"could not keep the chat: {exc}", severity="error")
            return
        s.app.notify("kept as a new conversation")
        ref = s.conversation.conversation_ref

        def made(f: Future[Any]) -> None:  # on the writer thread, or here if already made
            exc = None if f.cancelled() else f.exception()
            cid = f.result() if exc is None else 0
            s.post_message(HistoryActionDone("keep", cid, "" if exc is None else str(exc), ""))

        if isinstance(ref, Future):
            ref.add_done_callback(made)

    # -- rename, delete, export -------------------------------------------------------------
    def pane_request(self, event: HistoryPane.Request) -> None:
        s = self.screen
        if not s.conversation.history.available:
            return
        cid = event.conversation_id
        if event.action == "rename":
            def renamed(title: str | None) -> None:
                if title and title.strip():
                    self.history_action("rename", cid, lambda: s.conversation.rename(cid, title.strip()))
            s.app.push_screen(TextDialog("Rename conversation", event.title), renamed)
        elif event.action == "delete":
            async def confirmed(ok: bool | None) -> None:
                if not ok:
                    return
                if s.conversation.known_id == cid:
                    if s.busy("delete_current"):
                        return
                    await self.new_conversation()
                self.history_action("delete", cid, lambda: s.conversation.delete(cid))
            s.app.push_screen(ConfirmDialog(f"Delete “{event.title}” and all its messages?"), confirmed)
        elif event.action == "export":
            def chosen(path: str | None) -> None:
                if path and path.strip():
                    self.export(cid, path.strip())
            default = str(Path.cwd() / f"conversation-{cid}.md")
            s.app.push_screen(TextDialog("Export to (.json: JSON, anything else: Markdown)", default), chosen)

    def export(self, conversation_id: Ref, path_text: str) -> None:
        """Export a stored conversation (an id, or the writer's Future of one) to a file."""
        s = self.screen
        path = Path(path_text).expanduser()
        self.history_action("export", conversation_id,
                            lambda: s.conversation.export(conversation_id, path), detail=str(path))

    def history_action(self, action: str, cid: Ref, submit: Callable[[], Future[Any]], detail: str = "") -> None:
        """Start a rename, delete or export; its outcome comes back as a HistoryActionDone."""
        s = self.screen
        try:
            fut: Future[Any] = submit()
        except AigcError as exc:
            s.app.notify(str(exc), severity="error")
            return

        def done(f: Future[Any]) -> None:  # on a history thread
            exc = None if f.cancelled() else f.exception()
            error = "" if exc is None else str(exc)
            what = f"{detail} ({f.result()})" if exc is None and action == "export" else detail
            s.post_message(HistoryActionDone(action, known(cid) or 0, error, what))

        fut.add_done_callback(done)

    def action_done(self, event: HistoryActionDone) -> None:
        s = self.screen
        if event.error:
            what = "export" if event.action == "export" else f"{event.action} the conversation"
            s.app.notify(f"could not {what}: {event.error}", severity="error")
        elif event.action == "delete":
            s.app.notify("conversation deleted")
        elif event.action == "keep":
            s.history.current_id = event.conversation_id
        elif event.action == "export":
            s.app.notify(f"exported to {event.detail}")
        if event.action != "export":
            s.history.reload()
