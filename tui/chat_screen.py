"""The chat screen: history pane, chat view, message box, settings pane, status bar, and the
life of each turn on screen.

The screen is a view of a `Conversation` (aigc_chat.conversation), given to it by the app:
a send, regenerate or edit asks the conversation to begin a turn (which queues the history
writes and never waits), shows the widgets for it, and runs the turn in a thread worker
(tui/reply_worker.py) whose typed events update the reply. Loading a model runs in a worker
too; the conversation's engine lock keeps a load and a turn from using an engine at once.
Opening, renaming, deleting and exporting stored conversations are in tui/history_actions.py;
slash commands in tui/commands.py.
"""

from __future__ import annotations

import asyncio
import threading
from collections.abc import Callable
from typing import TYPE_CHECKING

from textual import events, on, work
from textual.app import ComposeResult
from textual.containers import Horizontal, Vertical
from textual.css.query import NoMatches
from textual.screen import Screen
from textual.timer import Timer
from textual.widget import Widget
from textual.widgets import Footer

from aigc_chat.chat_state import Action, ChatState, EngineFacts, status_facts
from aigc_chat.config import Config
from aigc_chat.conversation import Conversation, TurnAction
from aigc_chat.drafts import NEW, Drafts
from aigc_chat.errors import AigcError, ParamError, UsageError
from aigc_chat.tui import commands, layout, slash
from aigc_chat.tui.chat_view import AssistantMessage, ChatMessage, ChatView, NoticeMessage, message_widget
from aigc_chat.tui.compact_step import CompactionMixin
from aigc_chat.tui.events import (
    BranchRequest,
    ConversationDeleted,
    HistoryActionDone,
    HistoryFailed,
    ModelFailed,
    ModelLoaded,
    ModelProgress,
    ReplyDelta,
    ReplyFailed,
    ReplyFinished,
    ReplyProgress,
    ReplyStarted,
)
from aigc_chat.tui.files_bar import FilesBar
from aigc_chat.tui.follow import Follower
from aigc_chat.tui.history_actions import HistoryActions, open_failure
from aigc_chat.tui.history_pane import HistoryPane
from aigc_chat.tui.prompt_input import PromptInput
from aigc_chat.tui.repaint import repaint_all
from aigc_chat.tui.reply_worker import stream_reply
from aigc_chat.tui.status_bar import StatusBar

if TYPE_CHECKING:
    from aigc_chat.attachments import Attachment
    from aigc_chat.backends.base import Backend
    from aigc_chat.tree import Node
    from aigc_chat.tui.settings_pane import SettingsPane

class ChatScreen(CompactionMixin, Screen[None]):
    """The one screen of the chat (module notes)."""

    def __init__(self, conversation: Conversation, config: Config, *, batch_interval: float,
                 backend: Backend | None = None, history_note: str = "", start_note: str = "",
                 off_reason: str = "") -> None:
        super().__init__(id="chat-screen")
        self.conversation = conversation
        self.config = config
        self.batch_interval = batch_interval  # seconds between screen batches of a reply
        self.given_backend = backend
        self.history_note = history_note
        self.start_note = start_note
        self.off_reason = off_reason
        # the phase, the queue, the running reply's job and cancel event (aigc_chat.chat_state);
        # every change redraws the status bar
        self.chat_state = ChatState()
        self.chat_state.watch(lambda _state: self.redraw_status())
        self.editing: Node | None = None  # the question being edited (the input holds its text)
        self.models: list[str] = []
        self.status_note = ""  # "history off │ " while nothing is being saved
        self._reply: AssistantMessage | None = None
        self._history_told = False
        self.stored = HistoryActions(self)
        self.history_wanted = True  # F2's choice (start: [tui] show_history)
        self.history_asked = False  # F2 opened it where it does not fit beside the chat: laid over it
        self.settings_wanted = False  # F3's choice
        self.fit = layout.fit(100, history=True, settings=False)
        self.drafts: Drafts | None = None  # half-typed messages per conversation (history on only)
        self._draft_timer: Timer | None = None
        self.follow = Follower(self)  # another process's reply in this conversation, shown live

    # -- layout ---------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            yield HistoryPane(self.conversation.history, off_reason=self.off_reason, id="history")
            with Vertical(id="chat-column"):
                yield ChatView(id="chat")
                yield FilesBar(id="files")
                yield PromptInput(id="prompt")
            # the settings pane is mounted on first use: a faster first paint
        yield StatusBar(id="status")
        yield Footer()

    @property
    def chat(self) -> ChatView:
        return self.query_one("#chat", ChatView)

    @property
    def status(self) -> StatusBar:
        return self.query_one("#status", StatusBar)

    @property
    def history(self) -> HistoryPane:
        return self.query_one("#history", HistoryPane)

    @property
    def prompt(self) -> PromptInput:
        return self.query_one(PromptInput)

    @property
    def settings_pane(self) -> SettingsPane | None:
        panes = self.query("#settings")
        return panes.first() if panes else None  # type: ignore[return-value]  # only a SettingsPane has this id

    async def on_mount(self) -> None:
        # --inline (tui/inline.py): the pane starts hidden, the chat takes the width
        self.history_wanted = bool(self.config.tui.get("show_history", True)) and not self.app.is_inline
        self.fit_panes()
        if self.history_note or (not self.conversation.saving and self.conversation.history.available):
            self._mark_not_saving(self.conversation.history.problem)
        self.refresh_settings()
        if self.conversation.saving:
            self.drafts = Drafts()
        self.prompt.focus()
        self.redraw_status()  # "loading" from the first frame on, though the load starts after it
        if self.app_initial_conversation is not None:
            # read in on the reader thread; the model it names is loaded once it is open
            self.chat_state.open_started()
            self.run_worker(self._open_initial(self.app_initial_conversation), group="open",
                            exit_on_error=False)
        else:
            self.restore_draft()
            await self._show_start_notes()
            self.call_after_refresh(self._begin_model)  # the load's thread starts after the first paint

    @property
    def app_initial_conversation(self) -> int | None:
        return getattr(self.app, "initial_conversation", None)

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        # Only a focused field shows a cursor; [tui] cursor_blink decides whether it blinks
        # (off by default: every blink is a repaint sent over the wire, forever).
        if hasattr(event.widget, "cursor_blink"):
            event.widget.cursor_blink = bool(self.config.tui.get("cursor_blink", False))

    async def _show_start_notes(self) -> None:
        """The start-up notices: a line in the chat that stays, and a toast."""
        for text, severity, title in ((self.history_note, "warning", "History"),
                                      (self.start_note, "information", "")):
            if not text:
                continue
            await self.chat.add(NoticeMessage(text[0].upper() + text[1:],
                                              severity="warning" if severity == "warning" else "info"))
            # after the first refresh, so the toast rack is there to show it
            self.call_after_refresh(self.app.notify, text, title=title, severity=severity, timeout=15)

    def _begin_model(self) -> None:
        if self.given_backend is not None:
            self.post_message(ModelLoaded(self.given_backend, []))
        else:
            self.start_load()

    async def _open_initial(self, conversation_id: int) -> None:
        try:
            await self.stored.open_conversation(conversation_id, keep=getattr(self.app, "keep", frozenset()))
        except Exception as exc:  # noqa: BLE001 - the app must start with or without it
            self.app.notify(open_failure(exc), severity="error")
        finally:
            self.chat_state.open_ended()
        await self._show_start_notes()
        self._begin_model()

    # -- the status bar: one snapshot of the chat state and the core (aigc_chat.chat_state) ------
    def busy(self, action: Action) -> bool:
        """Whether `action` must wait (ChatState.why_busy); says why when it must."""
        why = self.chat_state.why_busy(action)
        if why is not None:
            self.app.notify(why, severity="warning")
        return why is not None

    def redraw_status(self) -> None:
        note = self.follow.note()
        facts = status_facts(self.chat_state, self.conversation,
                             self.status_note + (f"{note} │ " if note else ""))
        try:
            self.status.facts = facts
        except NoMatches:  # not composed yet, or quitting
            pass

    def refresh_settings(self, models: list[str] | None = None) -> None:
        s = self.conversation.settings
        if models is not None:
            self.models = models
        pane = self.settings_pane
        if pane is not None:
            pane.load(s, self.models, self.conversation.config)
        self.redraw_status()

    # -- history trouble: told once, marked in the status bar and the pane --------------------
    async def on_history_failed(self, event: HistoryFailed) -> None:
        if self._history_told:
            return
        self._history_told = True
        text = (f"history not saved: {event.reason}. This conversation goes on in memory only; "
                f"nothing more from this session is saved to {event.path}.")
        self.app.notify(text, title="History", severity="warning", timeout=15)
        self._mark_not_saving(event.reason)
        await self.chat.add(NoticeMessage(text[0].upper() + text[1:], severity="warning"))

    async def on_conversation_deleted(self, event: ConversationDeleted) -> None:
        await self.stored.conversation_deleted(event.conversation_id)

    def _mark_not_saving(self, reason: str) -> None:
        self.status_note = "history off │ "
        self.redraw_status()
        if reason:
            self.history.show_not_saving(reason)

    # -- model loading --------------------------------------------------------------------
    def start_load(self) -> None:
        self.chat_state.loading()
        self._load_worker()

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load_worker(self) -> None:
        conv = self.conversation

        def progress(msg: str) -> None:
            self.post_message(ModelProgress(msg))

        try:
            backend = conv.load_backend(progress, conv.config)
        except AigcError as exc:
            self.post_message(ModelFailed(str(exc)))
            return
        except Exception as exc:  # noqa: BLE001 - a failed load is shown, never a crash
            self.post_message(ModelFailed(f"{type(exc).__name__}: {exc}"))
            return
        try:
            models = list(backend.list_models())
        except Exception:  # noqa: BLE001 - the list is a convenience
            models = []
        self.post_message(ModelLoaded(backend, models))

    def on_model_progress(self, event: ModelProgress) -> None:
        self.chat_state.progress(event.text)

    def on_model_loaded(self, event: ModelLoaded) -> None:
        repaint_all(self.app)  # frames drawn while it loaded may not have reached the terminal
        self.conversation.attach_backend(event.backend, external=event.backend is self.given_backend)
        try:
            info = event.backend.info()
            engine = EngineFacts(info.device, info.context_length)
        except Exception:  # noqa: BLE001 - the status bar is a convenience
            engine = EngineFacts()
        for note in getattr(event.backend, "notices", ()):
            self.app.notify(note, severity="warning")
        if event.models:
            self.models = list(event.models)
            if self.settings_pane is not None:
                self.settings_pane.set_models(self.models)
        self.chat_state.loaded(engine)
        if self.chat_state.queue:
            self.call_later(self.send_next_queued)

    async def on_model_failed(self, event: ModelFailed) -> None:
        repaint_all(self.app)
        self.give_back(self.chat_state.load_failed(event.reason))
        await self.chat.add(NoticeMessage(
            f"Could not load the model: {event.reason}\nPick another with /model PATH, "
            "/backend NAME or the settings pane (F3).", severity="error"))
        self.app.notify(event.reason, title="Model load failed", severity="error", timeout=8)

    # -- drafts: what is typed is kept per conversation (aigc_chat.drafts) ------------------------
    def _draft_key(self) -> str | None:
        """The conversation's key in the drafts; None while a new one's id is being made."""
        ref = self.conversation.conversation_ref
        if ref is None:
            return NEW
        cid = self.conversation.known_id
        return None if cid is None else str(cid)

    @on(PromptInput.Changed, "#prompt")
    def _typed(self) -> None:
        if self.drafts is None or self.editing is not None:
            return  # an edit's text is the message's, not a draft
        key = self._draft_key()
        if key is not None and self.drafts.put(key, self.prompt.text):
            if self._draft_timer is not None:
                self._draft_timer.stop()
            self._draft_timer = self.set_timer(2.0, self.save_drafts)  # kept even if killed later

    def save_drafts(self) -> None:
        """Write the drafts on the app's config-writer thread (a slow disk holds up no key)."""
        drafts = self.drafts
        if drafts is None:
            return

        def save() -> None:
            try:
                drafts.save()
            except OSError as exc:
                self.app._post_notice(f"the draft was not kept: {exc}", "warning")  # type: ignore[attr-defined]

        self.app._io.submit(save)  # type: ignore[attr-defined]

    def keep_draft(self) -> None:
        """Leaving this conversation (another opens, a new one starts, the app quits)."""
        if self.drafts is None:
            return
        key = self._draft_key()
        if key is not None and self.editing is None:
            try:
                self.drafts.put(key, self.prompt.text)
            except NoMatches:  # quitting, the screen already gone: the last change is kept
                pass
        self.save_drafts()

    def restore_draft(self) -> None:
        """This conversation's draft into the message box (empty when it has none)."""
        if self.drafts is None or self.editing is not None:
            return
        key = self._draft_key()
        text = self.drafts.get(key) if key is not None else ""
        if text != self.prompt.text:
            self.prompt.load_text(text)
            self.prompt.move_cursor(self.prompt.document.end)

    # -- sending ----------------------------------------------------------------------------
    @on(PromptInput.Submitted)
    async def _submitted(self, event: PromptInput.Submitted) -> None:
        self.chat_state.submitted += 1
        with self.chat_state.handling():
            await self._handle_submitted(event.text)

    async def _handle_submitted(self, text: str) -> None:
        if not text.strip():
            return
        if self.drafts is not None and (key := self._draft_key()) is not None and self.editing is None:
            self.drafts.forget(key)  # sent (or queued): no longer a draft
        prompt = self.prompt
        if slash.is_slash(text) and self.editing is None:
            prompt.remember(text)
            prompt.load_text("")
            await commands.run_slash(self, text)
            return
        text = slash.unescape(text)
        if self.editing is not None:
            if self.busy("edit"):
                return
            prompt.remember(text)
            prompt.load_text("")
            await self._resend_edited(text)
            return
        prompt.remember(text)
        prompt.load_text("")
        when = self.chat_state.why_busy("send")
        if when is not None:
            self.chat_state.queue_message(text)
            self.app.notify(f"queued: sends when {when}")
            return
        await self.send(text)

    async def send(self, text: str) -> None:
        """Begin the turn (its question is queued for the history first), show it, reply."""
        if self.conversation.backend is None:
            self.give_back([text])
            self.app.notify(f"no model is loaded: {self.chat_state.load_error or 'still loading'}", severity="error")
            return
        if (getattr(self.conversation.config, "on_overflow", "drop_oldest") != "drop_oldest"
                and self.conversation.path()):
            # checked (and compacted, with "compact") on a worker first: tui/compact_step.py
            await self.start_compaction(then_send=text, files=self.files_bar.take())
            return
        await self._run_turn("send", text)

    def give_back(self, unsent: list[str]) -> None:
        """Messages that cannot be sent go back into the prompt box, after what is typed there,
        so nothing the user wrote is lost (the input history keeps them too)."""
        texts = [t for t in unsent if t.strip()]
        if not texts:
            return
        typed = self.prompt.text
        self.prompt.load_text("\n\n".join([typed, *texts] if typed.strip() else texts))
        self.prompt.move_cursor(self.prompt.document.end)

    async def send_now(self, text: str, files: list[Attachment]) -> None:
        """Send without the on_overflow check (it has just been made), with these files."""
        await self._run_turn("send", text, files=files)

    async def send_next_queued(self) -> None:
        with self.chat_state.handling():
            text = self.chat_state.next_queued()
            if text is not None:
                await self.send(text)

    async def _run_turn(self, action: TurnAction, text: str = "", target: Node | None = None,
                        files: list[Attachment] | None = None) -> None:
        with self.chat_state.handling():  # the phase reads idle until begin_turn, below
            await self._start_turn(action, text, target, files)

    async def _start_turn(self, action: TurnAction, text: str, target: Node | None,
                          files: list[Attachment] | None) -> None:
        if self.follow.active:  # another process owns the running turn: never fork under it
            if text.strip() and not self.prompt.text.strip():
                self.prompt.load_text(text)
            self.app.notify(self.follow.refusal(), severity="warning")
            return
        if files is None:
            files = self.files_bar.take() if action != "regenerate" else []
        try:
            turn = self.conversation.begin(action, text, files, target)
        except UsageError as exc:
            for f in files:  # not sent: they stay attached for the next try
                self.files_bar.add(f)
            if text.strip() and not self.prompt.text.strip():
                self.prompt.load_text(text)  # and what was typed stays typed
            if files:
                self.refused(str(exc))
            else:
                self.app.notify(str(exc), severity="warning")
            return
        await self.show_path()
        self.chat.anchor()
        self.history.current_id = self.conversation.conversation_ref
        reply = self.chat.widget_for(turn.reply_node)
        assert isinstance(reply, AssistantMessage)
        self._reply = reply
        reply.start_stream()
        job, cancel, done = self.chat_state.begin_turn()
        lock = self.conversation.backend_lock

        def stream() -> None:
            try:
                stream_reply(self.post_message, job, turn, cancel, lock, self.batch_interval)
            finally:
                done.set()

        self.run_worker(stream, thread=True, exclusive=True, group="generate", exit_on_error=False)
        self.history.reload()

    # -- the path shown, and its branches --------------------------------------------------------
    async def show_path(self) -> None:
        """Make the chat show the conversation's current path: the widgets of the messages it
        shares with what is on screen stay; from the first that differs on, everything (notices
        included) is replaced. Each message's header says where it stands among its
        alternatives, and the status bar how many branches there are."""
        conv = self.conversation
        path = conv.path()
        shown = self.chat.messages()
        keep = 0
        while keep < len(shown) and keep < len(path) and shown[keep].node is path[keep]:
            keep += 1
        if keep < len(shown):
            children = list(self.chat.children)
            await self.chat.remove_children(children[children.index(shown[keep]):])
        if keep < len(path):
            await self.chat.mount_all([message_widget(n) for n in path[keep:]])
        for widget in self.chat.messages():
            if widget.node is not None:
                widget.set_position(conv.tree.position(widget.node))
        self.redraw_status()
        if self.editing is not None and self.editing not in path:
            self.stop_editing()  # its question is not shown any more; the text typed stays
            self.app.notify("not editing any more: that question is on another branch now "
                            "(Enter sends the text as a new message)")

    async def on_branch_request(self, event: BranchRequest) -> None:
        event.stop()
        widget: ChatMessage = event.widget
        node = widget.node
        if node is None or self.busy("branch"):
            return
        if node not in self.conversation.path():  # a reply that failed before a word: not kept
            self.app.notify("this reply was not kept: it failed before its first word", severity="warning")
            return
        if event.action == "switch":
            await self.switch_branch(node, event.step)
        elif event.action == "edit":
            self.start_editing(node)
        elif event.action == "fork":
            await self.fork_at(node)

    async def switch_branch(self, node: Node, step: int, *, follow: bool = True) -> None:
        """Show the previous (-1) or next (1) alternative of `node`; the focus follows it
        (unless not `follow`: moved from the message box, the focus stays there)."""
        other = self.conversation.switch(node, step)
        if other is None:
            count = self.conversation.tree.position(node)[1]
            self.app.notify(f"this is the {'first' if step < 0 else 'last'} of {count}" if count > 1
                            else "this message has no alternatives")
            return
        await self.show_path()
        widget = self.chat.widget_for(other)
        if widget is not None:
            if follow:
                widget.focus()
            widget.scroll_visible(animate=False)

    async def fork_at(self, node: Node) -> None:
        """A new conversation with the path up to `node`, opened here."""
        try:
            fut = self.conversation.fork(node)
        except AigcError as exc:
            self.app.notify(str(exc), severity="error")
            return
        if fut is None:  # nothing saved: the copy is this conversation now, in memory
            await self.show_path()
            self.history.current_id = None
            self.app.notify("forked (not saved: the history is off)")
            return
        try:
            new_id = await asyncio.wrap_future(fut)
        except Exception as exc:  # noqa: BLE001 - a failed fork is a line, never a crash
            self.app.notify(f"could not fork: {exc}", severity="error")
            return
        self.app.notify(f"forked into conversation {new_id}")
        self.stored.open_in_background(int(new_id))
        self.history.reload()

    async def action_branch_prev(self) -> None:
        await self._step_deepest(-1)

    async def action_branch_next(self) -> None:
        await self._step_deepest(1)

    async def _step_deepest(self, step: int) -> None:
        """From anywhere (the message box too): move the last message of the path that has
        alternatives, which right after a regenerate or an edit is the one just made."""
        node = next((n for n in reversed(self.conversation.path())
                     if self.conversation.tree.position(n)[1] > 1), None)
        if node is None:
            self.app.notify("this conversation has no branches")
            return
        if not self.busy("branch"):
            await self.switch_branch(node, step, follow=False)

    async def on_reply_started(self, event: ReplyStarted) -> None:
        if event.job != self.chat_state.job:
            return
        plan = event.plan
        self.redraw_status()  # the context: what this reply was sent
        if plan.dropped:
            n = plan.dropped
            note = NoticeMessage(
                f"{n} earlier message{'s are' if n != 1 else ' is'} left out of what is sent: "
                f"the conversation no longer fits the model's context "
                f"({self.chat_state.engine.context_size or '?'} tokens). The system prompt is always kept.",
                severity="warning")
            note.add_class("-context")
            await self.chat.mount(note, before=self._reply)

    def on_reply_progress(self, event: ReplyProgress) -> None:
        if event.job == self.chat_state.job and self._reply is not None:
            self._reply.show_reading(event.text)

    async def on_reply_delta(self, event: ReplyDelta) -> None:
        if event.job == self.chat_state.job and self._reply is not None:
            await self._reply.append(event.shown, event.raw_so_far, event.thinking)

    async def on_reply_finished(self, event: ReplyFinished) -> None:
        if event.job != self.chat_state.job or self._reply is None:
            return
        reply, self._reply = self._reply, None
        await reply.finish()  # redrawn from the node, the core's record of the reply
        await self._show_replaced(event.node)
        for warning in event.warnings:
            self.app.notify(warning, severity="warning")
        if event.node.finish_reason == "error":
            self.app.notify(event.node.stats.get("error") or "generation failed", title="Generation failed",
                            severity="error")
        self.chat_state.turn_ended()  # the status reads the context from the finished reply
        self.history.reload()
        self.stored.keep_as_new()  # a "keep the chat" that waited for this reply
        await self.send_next_queued()

    async def on_reply_failed(self, event: ReplyFailed) -> None:
        if event.job != self.chat_state.job:
            return
        reply, self._reply = self._reply, None
        if reply is not None and reply.node is not None:
            await reply.finish()  # the turn has ended: its node says "error" and why
            await self._show_replaced(reply.node)
        self.app.notify(event.reason, title="Cannot answer", severity="error")
        self.chat_state.turn_ended()
        self.stored.keep_as_new()

    async def _show_replaced(self, node: Node) -> None:
        """A regenerate that failed before saying anything left no reply (the core took its
        node out of the tree): the path shows the one it was to replace again (a failed first
        answer stays on screen, marked: the path then ends at its question)."""
        tree = self.conversation.tree
        if not tree.contains(node) and tree.leaf is not None and tree.leaf is not node.parent:
            await self.show_path()

    # -- generation control ---------------------------------------------------------------
    def action_cancel(self) -> None:
        if self.cancel_compaction():
            return
        if self.follow.active and not self.chat_state.generating:
            self.follow.ask_stop()
            return
        unsent = self.chat_state.stop_turn()
        if unsent is not None:
            self.give_back(unsent)
            return
        if self.editing is not None:
            self.stop_editing()
            self.prompt.load_text("")

    def stop_now(self) -> None:
        """Quitting: a streaming reply ends now (the core records it as cancelled), a
        compaction stops (nothing of it is stored)."""
        if self.chat_state.cancel is not None:
            self.chat_state.cancel.set()
        if self._compact_cancel is not None:
            self._compact_cancel.set()

    async def action_compact(self) -> None:
        """F7: /compact without instructions (tui/compact_step.py)."""
        await self.start_compaction()

    def hand_over(self) -> tuple[threading.Event | None, threading.Event | None, list[str]] | None:
        """The terminal has gone (tui/headless.py): what is left to finish without the screen,
        as (the running reply's done event, its cancel event, the queued questions), or None
        when nothing is. The screen lets go of them: quitting no longer stops the reply."""
        return self.chat_state.hand_over(self.conversation.backend is not None)

    async def action_regenerate(self) -> None:
        if self.busy("regenerate"):
            return
        if self.conversation.backend is None:
            self.app.notify("no model is loaded", severity="error")
            return
        await self._run_turn("regenerate")

    def action_edit_last(self) -> None:
        node = self.conversation.last_user()
        if node is None:
            self.app.notify("there is no message to edit", severity="warning")
            return
        self.start_editing(node)

    def start_editing(self, node: Node) -> None:
        """The input takes the question's text; sending makes the edit a new branch there."""
        prompt = self.prompt
        prompt.load_text(node.content)
        prompt.move_cursor(prompt.document.end)
        last = node is self.conversation.last_user()
        what = "your last message" if last else "an earlier message (a new branch)"
        prompt.border_title = f"Editing {what}: Enter resends, Esc cancels"
        prompt.add_class("-editing")
        self.editing = node
        prompt.focus()

    def stop_editing(self) -> None:
        self.editing = None
        self.prompt.border_title = None
        self.prompt.remove_class("-editing")

    async def _resend_edited(self, text: str) -> None:
        target = self.editing
        self.stop_editing()
        if self.conversation.backend is None:
            self.app.notify("no model is loaded", severity="error")
            return
        await self._run_turn("edit", text, target)

    # -- settings ---------------------------------------------------------------------------
    # (handlers by name, not @on(SettingsPane...): the pane's module is imported on first use,
    # off the first paint)
    def on_settings_pane_param_changed(self, event: SettingsPane.ParamChanged) -> None:
        try:
            self.conversation.set_params(**{event.name: event.value})
        except ParamError as exc:
            self.app.notify(str(exc), severity="error")

    def on_settings_pane_system_prompt_changed(self, event: SettingsPane.SystemPromptChanged) -> None:
        self.conversation.set_system_prompt(event.text)
        self.app.notify("system prompt applied")

    async def on_settings_pane_model_chosen(self, event: SettingsPane.ModelChosen) -> None:
        try:
            self.switch_model(event.backend, event.model)
        except AigcError as exc:
            self.app.notify(str(exc), severity="error")

    async def on_settings_pane_save_default(self) -> None:
        await self.app.run_action("save_default")

    def switch_model(self, backend: str | None, model: str) -> None:
        """/model, /backend and the settings pane: switch (Conversation.switch_model: the
        sampling follows the new model), then load it."""
        why = self.chat_state.why_busy("switch_model")
        if why is not None:
            raise UsageError(why)
        self.conversation.switch_model(backend, model)
        self.refresh_settings()
        self.start_load()

    # -- stored conversations (tui/history_actions.py) ----------------------------------------
    async def action_new_conversation(self) -> None:
        await self.stored.new_conversation()

    async def show_conversation(self, change: Callable[[], object], *, fresh: bool = False,
                                at: int | None = None, focus: bool = False) -> None:
        """Show another conversation: `change` makes the core's conversation a new one
        (`fresh`: an edit in progress ends too) or an opened one. The one left keeps its
        draft and the one shown gets its own; the chat is redrawn from the tree (scrolled to
        message `at`), the pane, settings and status bar read the core, the model it names is
        loaded if another is, and a reply another process is writing in it is followed.
        `focus`: the message box, unless a dialog opened meanwhile."""
        conv = self.conversation
        old = (conv.settings.backend, conv.settings.model)
        self.keep_draft()
        self.follow.end()
        change()
        if fresh:
            self.stop_editing()
        self.restore_draft()
        await self.chat.clear()
        await self.show_path()
        self.chat.anchor()
        self.call_after_refresh(self.chat.relayout)  # never an empty box for a message (ChatView.relayout)
        if at is not None:
            hit = conv.tree.find(at)
            widget = self.chat.widget_for(hit) if hit is not None else None
            if widget is not None:
                self.call_after_refresh(widget.scroll_visible, animate=False)
        self.history.current_id = conv.conversation_ref
        self.refresh_settings()  # and the status bar: its branches, the context its last reply used
        if (conv.settings.backend, conv.settings.model) != old and (conv.backend is not None
                                                                    or self.chat_state.load_error):
            self.start_load()
        self.follow.check()  # its last reply still being written by another process: follow it
        if fresh or (focus and len(self.app.screen_stack) == 1):
            self.prompt.focus()

    @on(HistoryPane.Open)
    def _open_from_pane(self, event: HistoryPane.Open) -> None:
        if not self.busy("open"):
            self.close_history_over()
            self.stored.open_in_background(event.conversation_id, event.message_id or None)

    @on(HistoryPane.Request)
    def _pane_request(self, event: HistoryPane.Request) -> None:
        self.stored.pane_request(event)

    def on_history_action_done(self, event: HistoryActionDone) -> None:
        self.stored.action_done(event)

    # -- panes: sized by the terminal (tui/layout.py) ----------------------------------------
    def on_resize(self, event: events.Resize) -> None:
        self.fit_panes(event.size.width)

    def fit_panes(self, width: int | None = None) -> None:
        """Size and place the panes for the terminal's width: beside the chat while it keeps
        layout.MIN_CHAT columns, else over it (asked for) or hidden."""
        width = width or self.app.size.width
        fit = self.fit = layout.fit(width, history=self.history_wanted, settings=self.settings_wanted,
                                    history_asked=self.history_asked)
        history = self.history
        self._place(history, fit.history, fit.history_width)
        history.set_text_width(fit.history_width)
        pane = self.settings_pane
        if pane is not None:
            self._place(pane, fit.settings, fit.settings_width)
        for widget in (history, pane):
            if widget is not None and not widget.display and widget.has_focus_within:
                self.prompt.focus()

    @staticmethod
    def _place(pane: Widget, place: str, width: int) -> None:
        pane.display = place != "hidden"
        pane.set_class(place == "over", "-over")
        pane.styles.width = width

    def action_toggle_history(self) -> None:
        shown = self.history.display
        self.history_wanted = not shown
        self.history_asked = not shown
        self.fit_panes()
        if self.history.display and self.fit.history == "over":
            self.history.query_one("#history-list").focus()

    def action_search(self) -> None:
        if not self.history.display:
            self.history_wanted = self.history_asked = True
            self.fit_panes()
        self.history.focus_search()

    def close_history_over(self) -> None:
        """A conversation was opened from the history laid over the chat: it steps aside."""
        if self.fit.history == "over":
            self.history_asked = False
            self.fit_panes()

    async def action_toggle_settings(self) -> None:
        pane = self.settings_pane
        if pane is None:
            from aigc_chat.backends import registry
            from aigc_chat.tui.settings_pane import SettingsPane

            pane = SettingsPane(registry.available(), id="settings")
            pane.display = False
            await self.query_one("#main").mount(pane)
            pane.load(self.conversation.settings, self.models, self.conversation.config)
        self.settings_wanted = not pane.display
        self.fit_panes()
        if pane.display:
            self._focus_settings(pane)
        else:
            self.prompt.focus()

    def _focus_settings(self, pane: SettingsPane) -> None:
        """Focus the pane's first field with the pane at its top. Textual's own scroll into
        view on focus is deferred and, under load, ran before the freshly shown pane had its
        final layout: from that geometry it left the pane ~9 rows down. So: no scroll on focus,
        and once the layout is done the pane goes to its top and the field is brought into
        sight from there (at a size where it is already in sight, nothing moves)."""
        field = pane.query_one("#set-temperature")
        field.focus(scroll_visible=False)

        def to_top() -> None:
            pane.scroll_home(animate=False, immediate=True)
            if self.focused is field:
                field.scroll_visible(animate=False, immediate=True)

        self.call_after_refresh(to_top)

    def on_history_pane_leave(self) -> None:
        """Esc in the history pane: back to the message box (laid over the chat, it steps aside);
        while a reply streams, Esc stops it, as it does everywhere."""
        if self.chat_state.generating:
            self.action_cancel()
            return
        self.close_history_over()
        self.prompt.focus()

    def on_settings_pane_leave(self) -> None:
        """Esc in a settings field: back to the message box (a pane laid over the chat closes);
        while a reply streams, Esc stops it, as it does everywhere."""
        if self.chat_state.generating:
            self.action_cancel()
            return
        if self.fit.settings == "over":
            self.settings_wanted = False
            self.fit_panes()
        self.prompt.focus()

    def action_copy_reply(self) -> None:
        last = self.chat.last("assistant")
        if last is None or not last.text:
            self.app.notify("no reply to copy", severity="warning")
            return
        last.action_copy_message()

    def action_copy_code(self) -> None:
        last = self.chat.last("assistant")
        if last is None:
            self.app.notify("no reply to copy", severity="warning")
            return
        last.action_copy_code()

    # -- files for the next message (tui/files_bar.py) -------------------------------------------
    @property
    def files_bar(self) -> FilesBar:
        return self.query_one("#files", FilesBar)

    def attach(self, path: str) -> None:
        """Read and count the file off the UI thread; a chip appears, or one line says why not."""
        if self.conversation.backend is None:
            self.app.notify("no model is loaded: files are counted against its context", severity="warning")
            return
        self.run_worker(lambda: self._attach_worker(path), thread=True, group="attach", exit_on_error=False)

    def _attach_worker(self, path: str) -> None:
        from aigc_chat.attachments import read_file

        try:
            with self.conversation.backend_lock:  # counting tokens is an engine call
                counted = self.conversation.count_file(read_file(path))
        except AigcError as exc:
            self.app.call_from_thread(self.refused, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - a file that cannot be read is a line, never a crash
            self.app.call_from_thread(self.refused, f"{path}: {type(exc).__name__}: {exc}")
            return
        self.app.call_from_thread(self.files_bar.add, counted)

    def refused(self, reason: str) -> None:
        """A file not attached (or files not sent): said in the chat, just above the message
        box where the user is looking, and in a toast; a toast alone is gone in seconds."""
        self.app.notify(reason, title="Not attached", severity="error")
        note = NoticeMessage(f"Not attached: {reason}", severity="error")
        note.add_class("-refused")
        self.chat.mount(note)
        self.call_after_refresh(self.chat.scroll_end, animate=False)

    def on_prompt_input_path_pasted(self, event: PromptInput.PathPasted) -> None:
        self.attach(event.path)

    def on_files_bar_preview(self, event: FilesBar.Preview) -> None:
        from aigc_chat.tui.dialogs import FileScreen

        self.app.push_screen(FileScreen(event.file.name, event.file.text))

    def action_pick_model(self) -> None:
        from aigc_chat.tui.model_picker import open_picker

        open_picker(self)

    def action_pick_role(self) -> None:
        from aigc_chat.tui.role_picker import open_role_picker

        open_role_picker(self)
