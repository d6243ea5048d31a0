"""The aigc-chat TUI: history pane, chat view, input, settings pane, status bar.

Long work runs in thread workers so the screen never freezes: loading a model (group
"load") and generating a reply (group "generate"). Backends are not thread-safe, so the
controller's lock keeps those two from touching an engine at once. Workers post messages;
widget changes happen on the UI thread.

The history never runs on the UI thread either (tui/history_service.py): writes are queued
for its writer thread, reads (the pane, opening and exporting a conversation) run on its
reader thread and are awaited. If saving fails (a lock held by another process, a full
disk), the user is told once, the status bar and the pane say "not saving", and the
conversation goes on in memory. Config writes (theme, "save as default") run on a thread
of their own too.
"""

from __future__ import annotations

import argparse
import os
import random
import sys
import threading
import time
from collections.abc import Iterable
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any

from textual import events, on, work
from textual.app import App, ComposeResult, SystemCommand
from textual.binding import Binding
from textual.containers import Horizontal, Vertical
from textual.message import Message
from textual.screen import Screen
from textual.notifications import SeverityLevel
from textual.widgets import Footer

from aigc_chat.backends.base import Backend
from aigc_chat.config import TUI_DEFAULTS, Config, load_config, save_config
from aigc_chat.errors import AigcError, ParamError, UsageError
from aigc_chat.history_writer import SerialThread, known
from aigc_chat.sanitize import StreamSanitizer, sanitize
from aigc_chat.tui import slash
from aigc_chat.tui.chat_view import AssistantMessage, ChatView, GanMessage, NoticeMessage, UserMessage
from aigc_chat.tui.clipboard import clipboard_sequences, clipboard_text
from aigc_chat.tui.controller import ChatController
from aigc_chat.tui.dialogs import ConfirmDialog, HelpScreen, TextDialog
from aigc_chat.tui.events import (
    ModelFailed, ModelLoaded, ModelProgress, ReplyDelta, ReplyFailed, ReplyFinished, ReplyStarted,
)
from aigc_chat.tui.help_text import help_markdown
from aigc_chat.tui.history_pane import HistoryPane
from aigc_chat.tui.history_service import HistoryActionDone, HistoryFailed
from aigc_chat.tui.prompt_input import PromptInput
from aigc_chat.tui.settings_pane import SettingsPane
from aigc_chat.tui.status_bar import StatusBar
from aigc_chat.tui.text_utils import result_stats, short_model


@dataclass
class Notice(Message):
    """A notification for the UI thread from another thread (config writes)."""

    text: str
    severity: str = "information"


class ChatApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "aigc-chat"
    ENABLE_COMMAND_PALETTE = True

    BINDINGS = [
        Binding("f1", "help", "Help"),
        Binding("escape", "cancel", "Stop", show=False),
        Binding("ctrl+n", "new_conversation", "New", priority=True),
        Binding("ctrl+r", "regenerate", "Regen", priority=True),
        Binding("ctrl+o", "edit_last", "Edit", priority=True),
        Binding("f2", "toggle_history", "History"),
        Binding("ctrl+f", "search", "Search", priority=True),
        Binding("f3", "toggle_settings", "Settings"),
        Binding("f5", "copy_reply", "Copy"),
        Binding("f6", "copy_code", "Code", show=False, priority=True),  # TextArea uses f6 too
        Binding("ctrl+g", "gan_screen", "GAN", priority=True, show=False),
        Binding("f4", "pick_model", "Model", show=False),
    ]

    def __init__(
        self,
        config: Config,
        *,
        store: Any = None,
        conversation_id: int | None = None,
        keep_model: bool = False,
        backend: Backend | None = None,
        history_note: str = "",
    ) -> None:
        super().__init__()
        self.config = config
        self.controller = ChatController(config, store, on_history_failure=self._history_failed_in_writer)
        self.initial_conversation = conversation_id
        self.keep_model = keep_model
        self._given_backend = backend
        self.controller.external_backend = backend
        self.history_note = history_note
        self.state = "loading"
        self.load_error: str | None = None
        self.editing = False
        self._queue: list[str] = []
        self._job = 0
        self._cancel: threading.Event | None = None
        self._reply: AssistantMessage | None = None
        self._recorder: Any = None
        self._theme_ready = False
        tui = {**TUI_DEFAULTS, **config.tui}
        self.batch_interval = tui["stream_interval_ms"] / 1000  # seconds between screen batches
        self.cursor_blink = bool(tui["cursor_blink"])
        self._models: list[str] = []
        self._worker_result: tuple[int, Any] | None = None
        self._opening = 0  # conversations being read in; a message sent meanwhile is queued
        self._status_note = ""  # "history off │ " while nothing is being saved
        self._history_told = False
        self._io = SerialThread("config-writer")  # config.toml writes: theme, save as default
        theme = str(config.tui.get("theme", "textual-dark"))
        if theme in self.available_themes:
            self.theme = theme

    # -- layout ---------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        with Horizontal(id="main"):
            yield HistoryPane(self.controller.history, off_reason=self._off_reason(), id="history")
            with Vertical(id="chat-column"):
                yield ChatView(id="chat")
                yield PromptInput(id="prompt")
            # the settings pane is mounted on first use: a faster first paint
        yield StatusBar(id="status")
        yield Footer()

    def on_descendant_focus(self, event: events.DescendantFocus) -> None:
        # Only a focused field shows a cursor; [tui] cursor_blink decides whether it blinks
        # (off by default: every blink is a repaint sent over the wire, forever).
        if hasattr(event.widget, "cursor_blink"):
            event.widget.cursor_blink = self.cursor_blink

    def _off_reason(self) -> str:
        if self.controller.store is None and self.history_note:
            return "history is off: it cannot be opened (see the notice)"
        return ""

    async def on_mount(self) -> None:
        if not self.is_headless:
            self._watch_terminal()
        self.query_one("#history").display = bool(self.config.tui.get("show_history", True))
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        self.call_after_refresh(self._enable_theme_saving)
        if self.history_note:
            if self.controller.store is not None or self.controller.history.problem:
                self._mark_not_saving(self.controller.history.problem or "read-only")
            else:
                self._mark_not_saving("")
        self._refresh_settings()
        self.query_one(PromptInput).focus()
        if self.initial_conversation is not None:
            # read in on the reader thread; the model it names is loaded once it is open
            self._opening += 1
            self.run_worker(self._open_initial(self.initial_conversation), group="open", exit_on_error=False)
        else:
            await self._show_history_note()
            self._begin_model()

    async def _show_history_note(self) -> None:
        """The start-up notice about the history: a toast, and a line in the chat that stays."""
        if not self.history_note:
            return
        await self.chat.add(NoticeMessage(self.history_note, severity="warning"))
        # after the first refresh, so the toast rack is there to show it
        self.call_after_refresh(self.notify, self.history_note, title="History", severity="warning",
                                timeout=15)

    def _begin_model(self) -> None:
        if self._given_backend is not None:
            self.post_message(ModelLoaded(self._given_backend, []))
        else:
            self.start_load()

    async def _open_initial(self, conversation_id: int) -> None:
        try:
            await self._open(conversation_id, keep_model=self.keep_model)
        except Exception as exc:  # noqa: BLE001 - the app must start with or without it
            self.notify(_open_failure(exc), severity="error")
        finally:
            self._opening -= 1
        await self._show_history_note()
        self._begin_model()

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
    def settings_pane(self) -> SettingsPane | None:
        panes = self.query("#settings")
        return panes.first(SettingsPane) if panes else None

    def set_state(self, state: str) -> None:
        self.state = state
        self._show_state(state)

    def _show_state(self, text: str) -> None:
        self.status.state = self._status_note + text

    # -- history trouble: told once, marked in the status bar and the pane ----------------------
    def _history_failed_in_writer(self, exc: Exception) -> None:
        """Called on the history's writer thread: hand the news to the UI thread."""
        path = getattr(exc, "path", None) or getattr(self.controller.store, "path", "")
        try:
            self.post_message(HistoryFailed(getattr(exc, "reason", "") or str(exc), str(path)))
        except RuntimeError:  # the app's loop is gone (quitting): nobody to tell
            pass

    async def on_history_failed(self, event: HistoryFailed) -> None:
        if self._history_told:
            return
        self._history_told = True
        text = (f"history not saved: {event.reason}. This conversation goes on in memory only; "
                f"nothing more from this session is saved to {event.path}.")
        self.notify(text, title="History", severity="warning", timeout=15)
        self._mark_not_saving(event.reason)
        await self.chat.add(NoticeMessage(text[0].upper() + text[1:], severity="warning"))

    def _mark_not_saving(self, reason: str) -> None:
        self._status_note = "history off │ "
        self._show_state(self.state)
        if reason:
            self.history.show_not_saving(reason)

    def _refresh_settings(self, models: list[str] | None = None) -> None:
        s = self.controller.settings
        if models is not None:
            self._models = models
        pane = self.settings_pane
        if pane is not None:
            pane.load(s, self._models)
        self.status.backend = s.backend
        self.status.model = short_model(s.model)

    # -- model loading ------------------------------------------------------------------------
    def start_load(self) -> None:
        self.load_error = None
        self.set_state("loading")
        self.status.device = ""
        self.status.context_size = None
        self._load_worker()

    @work(thread=True, exclusive=True, group="load", exit_on_error=False)
    def _load_worker(self) -> None:
        try:
            backend = self.controller.load_backend(lambda msg: self.post_message(ModelProgress(msg)))
        except AigcError as exc:
            self.post_message(ModelFailed(str(exc)))
            return
        except Exception as exc:  # noqa: BLE001 - a failed load is shown, never a crash
            self.post_message(ModelFailed(f"{type(exc).__name__}: {exc}"))
            return
        models: list[str] = []
        if backend.name == "openai":
            try:
                models = list(backend.list_models())
            except Exception:  # noqa: BLE001 - the list is a convenience
                models = []
        self.post_message(ModelLoaded(backend, models))

    def on_model_progress(self, event: ModelProgress) -> None:
        if self.state == "loading":
            self._show_state(f"loading: {event.text}")

    def on_model_loaded(self, event: ModelLoaded) -> None:
        self.controller.attach_backend(event.backend)
        try:
            info = event.backend.info()
            self.status.device = info.device
            self.status.context_size = info.context_length
            self.status.model = short_model(info.model)
        except Exception:  # noqa: BLE001
            pass
        self.status.backend = event.backend.name
        if event.models:
            self._models = list(event.models)
            if self.settings_pane is not None:
                self.settings_pane.set_models(self._models)
        self.set_state("opening" if self._opening else "idle")
        if self._queue:
            self.call_later(self._send_next_queued)

    async def on_model_failed(self, event: ModelFailed) -> None:
        self.load_error = event.reason
        self.set_state("load failed")
        await self.chat.add(NoticeMessage(
            f"Could not load the model: {event.reason}\nPick another with /model PATH, /backend NAME or the settings pane (F3).",
            severity="error"))
        self.notify(event.reason, title="Model load failed", severity="error", timeout=8)
        self._queue.clear()

    # -- sending ------------------------------------------------------------------------------
    @on(PromptInput.Submitted)
    async def _submitted(self, event: PromptInput.Submitted) -> None:
        text = event.text
        if not text.strip():
            return
        prompt = self.query_one(PromptInput)
        if slash.is_slash(text) and not self.editing:
            prompt.remember(text)
            prompt.load_text("")
            await self.run_slash(text)
            return
        text = slash.unescape(text)
        if self.editing:
            if self.state == "generating":
                self.notify("a reply is still streaming: Esc stops it", severity="warning")
                return
            prompt.remember(text)
            prompt.load_text("")
            await self._resend_edited(text)
            return
        prompt.remember(text)
        prompt.load_text("")
        if self.state in ("generating", "loading", "opening") or self.state.startswith("loading"):
            self._queue.append(text)
            what = {"generating": "the reply ends", "opening": "the conversation is open"}.get(
                self.state, "the model is loaded")
            self.notify(f"queued: sends when {what}")
            return
        await self.send(text)

    async def send(self, text: str) -> None:
        """Store the message, show it, and start the reply."""
        if self.controller.backend is None:
            self.notify(f"no model is loaded: {self.load_error or 'still loading'}", severity="error")
            return
        # queued for the history's writer thread, ahead of every row of the reply: never waits
        user_id = self.controller.store_user_message(text)
        await self.chat.add(UserMessage(text, message_id=known(user_id)))
        self.chat.anchor()
        self.history.current_id = self.controller.conversation_ref
        await self._start_job("send", text)
        self.history.reload()

    async def _send_next_queued(self) -> None:
        if self._queue and self.state == "idle" and not self._opening:
            await self.send(self._queue.pop(0))

    async def _start_job(self, action: str, text: str) -> None:
        self._job += 1
        self._cancel = threading.Event()
        self._recorder = self.controller.recorder()
        self._reply = AssistantMessage(message_id=known(self.controller.last_assistant_id))
        await self.chat.add(self._reply)
        self._reply.start_stream()
        self.set_state("generating")
        self._generate_worker(self._job, action, text, self._cancel)

    @work(thread=True, exclusive=True, group="generate", exit_on_error=False)
    def _generate_worker(self, job: int, action: str, text: str, cancel: threading.Event) -> None:
        try:
            with self.controller.backend_lock:
                turn = self.controller.start_turn(action, text, cancel)
                self.post_message(ReplyStarted(job, turn.plan))
                sanitizer = StreamSanitizer()
                raw: list[str] = []
                shown: list[str] = []
                last = time.monotonic()
                interval = self.batch_interval
                for delta in turn:
                    raw.append(delta)
                    piece = sanitizer.feed(delta)
                    if piece:
                        shown.append(piece)
                    now = time.monotonic()
                    if shown and now - last >= interval:
                        self.post_message(ReplyDelta(job, "".join(shown), "".join(raw)))
                        shown.clear()
                        last = now
                shown.append(sanitizer.flush())
                result = turn.result
                self._worker_result = (job, result)  # for on_unmount if the UI is gone
        except AigcError as exc:
            self.post_message(ReplyFailed(job, str(exc)))
            return
        except Exception as exc:  # noqa: BLE001 - shown in the UI, never a crash
            self.post_message(ReplyFailed(job, f"{type(exc).__name__}: {exc}"))
            return
        self.post_message(ReplyFinished(job, result, "".join(shown)))

    async def on_reply_started(self, event: ReplyStarted) -> None:
        if event.job != self._job:
            return
        plan = event.plan
        if plan.prompt_tokens is not None:
            self.status.context_used = plan.prompt_tokens
        if plan.dropped:
            n = plan.dropped
            note = NoticeMessage(
                f"{n} earlier message{'s are' if n != 1 else ' is'} left out of what is sent: "
                f"the conversation no longer fits the model's context "
                f"({self.status.context_size or '?'} tokens). The system prompt is always kept.",
                severity="warning")
            note.add_class("-context")
            await self.chat.mount(note, before=self._reply)

    async def on_reply_delta(self, event: ReplyDelta) -> None:
        if event.job != self._job or self._reply is None:
            return
        await self._reply.append(event.shown, event.raw_so_far)
        if self._recorder is not None:
            self._recorder.feed(event.raw_so_far)

    async def on_reply_finished(self, event: ReplyFinished) -> None:
        if event.job != self._job or self._reply is None:
            return
        result = event.result
        stats = result_stats(result)
        reply, self._reply = self._reply, None
        if self._recorder is not None:
            try:
                self._recorder.finish(result)
            except Exception as exc:  # noqa: BLE001 - the reply is on screen even if saving failed
                self.notify(f"could not save the reply: {exc}", severity="error")
            self._recorder = None
        await reply.finish(result.text, stats, result.finish_reason)
        if result.prompt_tokens:
            self.status.context_used = result.prompt_tokens + result.completion_tokens
        for warning in result.warnings:
            self.notify(warning, severity="warning")
        if result.finish_reason == "error":
            self.notify(result.error or "generation failed", title="Generation failed", severity="error")
        self.set_state("idle")
        self.history.reload()
        if self._queue:
            await self._send_next_queued()

    async def on_reply_failed(self, event: ReplyFailed) -> None:
        if event.job != self._job:
            return
        reply, self._reply = self._reply, None
        if self._recorder is not None:
            from aigc_chat.backends.base import GenerationResult

            self._recorder.finish(GenerationResult("", "error", error=event.reason))
            self._recorder = None
        if reply is not None:
            await reply.finish("", {"error": event.reason}, "error")
        self.notify(event.reason, title="Cannot answer", severity="error")
        self.set_state("idle")

    # -- generation control -----------------------------------------------------------------
    def action_cancel(self) -> None:
        if self.state == "generating" and self._cancel is not None:
            self._cancel.set()
            self._queue.clear()
            self._show_state("stopping")
            return
        if self.editing:
            self._stop_editing()
            self.query_one(PromptInput).load_text("")

    async def action_regenerate(self) -> None:
        if self.state != "idle":
            self.notify({"generating": "wait for the current reply (Esc stops it)",
                         "opening": "wait: the conversation is still opening"}.get(self.state, "no model is ready"),
                        severity="warning")
            return
        if self.controller.backend is None:
            self.notify("no model is loaded", severity="error")
            return
        try:
            self.controller.prepare_regenerate()
        except UsageError as exc:
            self.notify(str(exc), severity="warning")
            return
        # the reply being replaced: the last assistant message after the last user message
        # (inline GAN items may sit in between and stay)
        for widget in reversed(self.chat.messages()):
            if widget.role == "user":
                break
            if isinstance(widget, AssistantMessage):
                await widget.remove()
                break
        await self._start_job("regenerate", "")

    def action_edit_last(self) -> None:
        text = self.controller.last_user_text()
        if text is None:
            self.notify("there is no message to edit", severity="warning")
            return
        prompt = self.query_one(PromptInput)
        prompt.load_text(text)
        prompt.move_cursor(prompt.document.end)
        prompt.border_title = "Editing your last message: Enter resends, Esc cancels"
        prompt.add_class("-editing")
        self.editing = True
        prompt.focus()

    def _stop_editing(self) -> None:
        self.editing = False
        prompt = self.query_one(PromptInput)
        prompt.border_title = None
        prompt.remove_class("-editing")

    async def _resend_edited(self, text: str) -> None:
        self._stop_editing()
        if self.controller.backend is None:
            self.notify("no model is loaded", severity="error")
            return
        try:
            self.controller.prepare_edit(text)
        except UsageError as exc:
            self.notify(str(exc), severity="warning")
            return
        widgets = [w for w in self.chat.messages() if w.role in ("user", "assistant")]
        last_user = max((i for i, w in enumerate(widgets) if w.role == "user"), default=None)
        if last_user is not None:
            for w in widgets[last_user:]:
                await w.remove()
        await self.chat.add(UserMessage(text, message_id=self.controller.last_user_id))
        await self._start_job("edit", text)

    # -- slash commands -------------------------------------------------------------------------
    async def run_slash(self, text: str) -> None:
        try:
            cmd = slash.parse(text)
            await self._slash(cmd)
        except AigcError as exc:
            self.notify(str(exc), severity="error")

    async def _slash(self, cmd: slash.SlashCommand) -> None:
        c = self.controller
        if cmd.name == "new":
            await self.action_new_conversation()
        elif cmd.name == "help":
            self.action_help()
        elif cmd.name == "system":
            c.set_system_prompt(cmd.arg)
            self._refresh_settings()
            self.notify("system prompt cleared" if not cmd.arg else "system prompt set")
        elif cmd.name == "temp":
            p = c.set_params(temperature=cmd.arg)
            self._refresh_settings()
            self.notify(f"temperature {p.temperature}")
        elif cmd.name == "stop":
            if cmd.args[0] == "clear":
                c.set_params(stop=())
                self.notify("stop sequences cleared")
            else:
                p = c.set_params(stop=c.settings.params.stop + (cmd.arg,))
                self.notify(f"stop sequences: {', '.join(repr(s) for s in p.stop)}")
            self._refresh_settings()
        elif cmd.name == "model":
            await self.switch_model(None, cmd.arg)
        elif cmd.name == "backend":
            await self.switch_model(cmd.arg, "")
        elif cmd.name == "export":
            self.export_conversation(c.conversation_ref, cmd.arg)
        elif cmd.name == "gan":
            await self.add_gan(None if cmd.args[0] == "" else int(cmd.args[0]), int(cmd.args[1]))

    async def switch_model(self, backend: str | None, model: str) -> None:
        if self.state == "generating":
            raise UsageError("wait for the reply to end (Esc stops it) before switching model")
        self.controller.set_model(backend, model)
        self._refresh_settings()
        self.start_load()

    def export_conversation(self, conversation_id: Any, path_text: str) -> None:
        """Export a stored conversation (an id, or the writer's Future of one) to a file: the
        read and the file write run on the history's reader thread; the result is notified."""
        if not self.controller.history.available:
            raise UsageError("history is off (--no-history): nothing to export")
        if conversation_id is None:
            raise UsageError("nothing to export yet: send a message first")
        path = Path(path_text).expanduser()
        fmt = "json" if path.suffix.lower() == ".json" else "markdown"
        self._export(conversation_id, path, fmt)

    @work(group="export", exit_on_error=False)
    async def _export(self, conversation_id: Any, path: Path, fmt: str) -> None:
        def job(store: Any, cid: int) -> None:
            data = store.export(cid, fmt)
            try:
                path.write_text(data, encoding="utf-8")
            except OSError as exc:
                raise UsageError(f"cannot write {path}: {exc.strerror or exc}") from None

        try:
            await self.controller.history.read(job, conversation_id)
        except AigcError as exc:
            self.notify(str(exc), severity="error")
            return
        self.notify(f"exported to {path} ({fmt})")

    async def add_gan(self, label: int | None, n: int) -> None:
        try:
            from aigc_chat.gan import DEFAULT_CHECKPOINT
            checkpoint = str(DEFAULT_CHECKPOINT)
        except ImportError:
            checkpoint = ""
        meta = {"checkpoint": checkpoint, "seed": random.randrange(2**31), "label": label, "n": n}
        text = f"GAN samples: label {label if label is not None else 'any'}, n {n}, seed {meta['seed']}"
        row = self.controller.store_extra("assistant", text, "gan", meta)  # queued: never waits
        self.history.current_id = self.controller.conversation_ref
        await self.chat.add(GanMessage(meta, message_id=known(row), text=text))
        self.history.reload()

    # -- conversations --------------------------------------------------------------------------
    async def action_new_conversation(self) -> None:
        if self.state == "generating":
            self.notify("wait for the reply to end (Esc stops it)", severity="warning")
            return
        self.controller.new_conversation()
        self._stop_editing()
        await self.chat.clear()
        self.history.current_id = None
        self.status.context_used = None
        self._refresh_settings()
        self.query_one(PromptInput).focus()

    def _open_in_background(self, conversation_id: int, *, keep_model: bool = False) -> None:
        """Read a conversation in and show it; messages sent meanwhile wait for it."""
        self._opening += 1
        if self.state == "idle":
            self.set_state("opening")
        self.run_worker(self._open_job(conversation_id, keep_model), group="open", exit_on_error=False)

    async def _open_job(self, conversation_id: int, keep_model: bool) -> None:
        try:
            await self._open(conversation_id, keep_model=keep_model)
            ok = True
        except Exception as exc:  # noqa: BLE001 - shown, never a crash
            self.notify(_open_failure(exc), severity="error")
            self.history.reload()
            ok = False
        finally:
            self._opening -= 1
            if not self._opening and self.state == "opening":
                self.set_state("idle")
        if ok and len(self.screen_stack) == 1:  # no dialog opened meanwhile
            self.query_one(PromptInput).focus()
        if self._queue:
            await self._send_next_queued()

    async def _open(self, conversation_id: int, *, keep_model: bool = False) -> None:
        """Read the conversation on the history's reader thread, then show it."""
        if not self.controller.history.available:
            raise UsageError("history is off (--no-history)")
        conv = await self.controller.history.read(lambda s: s.get_conversation(conversation_id))
        old = (self.controller.settings.backend, self.controller.settings.model)
        self.controller.load_conversation(conv, keep_model=keep_model)
        widgets: list[Any] = []
        for m in conv.messages:
            if m.kind == "gan":
                widgets.append(GanMessage(dict(m.meta), message_id=m.id, text=m.content))
            elif m.role == "user":
                widgets.append(UserMessage(m.content, message_id=m.id))
            elif m.role == "assistant":
                widgets.append(AssistantMessage(m.content, message_id=m.id, stats=dict(m.stats or {}),
                                                finish_reason=m.finish_reason or "interrupted"))
        await self.chat.clear()
        if widgets:
            await self.chat.mount_all(widgets)
        self.chat.anchor()
        self.history.current_id = conv.summary.id
        self.status.context_used = None
        self._refresh_settings()
        new = (self.controller.settings.backend, self.controller.settings.model)
        if new != old and (self.controller.backend is not None or self.load_error):
            self.start_load()

    @on(HistoryPane.Open)
    def _open_from_pane(self, event: HistoryPane.Open) -> None:
        if self.state == "generating":
            self.notify("wait for the reply to end (Esc stops it)", severity="warning")
            return
        self._open_in_background(event.conversation_id)

    @on(HistoryPane.Request)
    def _pane_request(self, event: HistoryPane.Request) -> None:
        if not self.controller.history.available:
            return
        cid = event.conversation_id
        if event.action == "rename":
            def renamed(title: str | None) -> None:
                if title is None or not title.strip():
                    return
                self._history_action("rename", cid, lambda: self.controller.rename(cid, title.strip()))
            self.push_screen(TextDialog("Rename conversation", event.title), renamed)
        elif event.action == "delete":
            async def confirmed(ok: bool | None) -> None:
                if not ok:
                    return
                if self.controller.is_current(cid):
                    if self.state == "generating":
                        self.notify("wait for the reply to end before deleting it", severity="warning")
                        return
                    await self.action_new_conversation()
                self._history_action("delete", cid, lambda: self.controller.delete_conversation(cid))
            self.push_screen(ConfirmDialog(f"Delete “{event.title}” and all its messages?"), confirmed)
        elif event.action == "export":
            def chosen(path: str | None) -> None:
                if not path or not path.strip():
                    return
                try:
                    self.export_conversation(cid, path.strip())
                except AigcError as exc:
                    self.notify(str(exc), severity="error")
            default = str(Path.cwd() / f"conversation-{cid}.md")
            self.push_screen(TextDialog("Export to (.json: JSON, anything else: Markdown)", default), chosen)

    def _history_action(self, action: str, cid: int, submit: Any) -> None:
        """Queue a rename or delete; its outcome comes back as a HistoryActionDone."""
        try:
            fut = submit()
        except AigcError as exc:
            self.notify(str(exc), severity="error")
            return

        def done(f: Any) -> None:  # on the writer thread
            error = "" if f.cancelled() or f.exception() is None else str(f.exception())
            try:
                self.post_message(HistoryActionDone(action, cid, error))
            except RuntimeError:
                pass

        fut.add_done_callback(done)

    def on_history_action_done(self, event: HistoryActionDone) -> None:
        if event.error:
            self.notify(f"could not {event.action} the conversation: {event.error}", severity="error")
        elif event.action == "delete":
            self.notify("conversation deleted")
        self.history.reload()

    # -- settings -----------------------------------------------------------------------------
    @on(SettingsPane.ParamChanged)
    def _param_changed(self, event: SettingsPane.ParamChanged) -> None:
        try:
            self.controller.set_params(**{event.name: event.value})
        except ParamError as exc:
            self.notify(str(exc), severity="error")

    @on(SettingsPane.SystemPromptChanged)
    def _system_changed(self, event: SettingsPane.SystemPromptChanged) -> None:
        self.controller.set_system_prompt(event.text)
        self.notify("system prompt applied")

    @on(SettingsPane.ModelChosen)
    async def _model_chosen(self, event: SettingsPane.ModelChosen) -> None:
        try:
            await self.switch_model(event.backend, event.model)
        except AigcError as exc:
            self.notify(str(exc), severity="error")

    @on(SettingsPane.SaveDefault)
    def _save_default(self) -> None:
        settings = replace(self.controller.settings)  # what it is now, written off the UI thread

        def save() -> None:
            try:
                path = self.controller.save_as_default(settings)
            except (AigcError, OSError) as exc:
                self._post_notice(f"could not save: {exc}", "error")
                return
            self._post_notice(f"saved as default in {path}", "information")

        self._io.submit(save)

    def _post_notice(self, text: str, severity: str) -> None:
        """A notification from a thread (post_message is the thread-safe way in)."""
        try:
            self.post_message(Notice(text, severity))
        except RuntimeError:
            pass

    def on_notice(self, event: "Notice") -> None:
        self.notify(event.text, severity=event.severity)  # type: ignore[arg-type]

    # -- panes, help, clipboard, theme ----------------------------------------------------------
    def action_toggle_history(self) -> None:
        pane = self.history
        pane.display = not pane.display
        if not pane.display and pane.has_focus_within:
            self.query_one(PromptInput).focus()

    def action_search(self) -> None:
        self.history.display = True
        self.history.focus_search()

    async def action_toggle_settings(self) -> None:
        pane = self.settings_pane
        if pane is None:
            from aigc_chat.backends import registry

            pane = SettingsPane(registry.available(), id="settings")
            pane.display = False
            await self.query_one("#main").mount(pane)
            pane.load(self.controller.settings, self._models)
        pane.display = not pane.display
        if pane.display:
            pane.query_one("#set-temperature").focus()
        else:
            self.query_one(PromptInput).focus()

    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(help_markdown()))

    # -- the terminal going away (an SSH link dropped, the tmux pane killed) ---------------
    def _watch_terminal(self) -> None:
        """When the terminal hangs up, quit (saving what is queued) instead of running on.

        Textual's input thread treats end-of-file as "no input yet" and polls again at
        once, so a TUI whose terminal has gone spins a core forever. SIGHUP is the usual
        notice; a poll of the input once a second (no bytes are sent) catches a hang-up
        that comes without one."""
        import asyncio
        import select
        import signal

        try:
            asyncio.get_running_loop().add_signal_handler(signal.SIGHUP, self._hang_up)
        except (NotImplementedError, RuntimeError, ValueError):  # pragma: no cover - not Unix
            pass

        def check() -> None:
            try:
                poller = select.poll()
                poller.register(sys.__stdin__.fileno(), select.POLLIN)
                events = poller.poll(0)
            except (OSError, ValueError, AttributeError):
                self._hang_up()
                return
            if any(mask & (select.POLLHUP | select.POLLERR | select.POLLNVAL) for _fd, mask in events):
                self._hang_up()

        self.set_interval(1.0, check, name="terminal-watch")

    def _hang_up(self) -> None:
        self.exit(return_code=129)  # 128 + SIGHUP, as a shell reports it

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Notices often carry untrusted text (an error from a server, a file name, a model's
        metadata): never parsed as markup (a `[` must not restyle or crash the screen), and
        sanitised like everything else shown."""
        super().notify(sanitize(message), title=sanitize(title), severity=severity,
                       timeout=timeout, markup=markup)

    def copy_text(self, text: str, what: str = "text") -> None:
        """Copy with a notice; what lands on the clipboard is what the screen shows."""
        self.copy_to_clipboard(text)
        self.notify(f"copied {what} ({len(self._clipboard)} characters)")

    def copy_to_clipboard(self, text: str) -> None:
        """Every copy, Textual's own (a selection, a TextArea) included, goes through here:
        the text is sanitised exactly as the screen shows it, so a reply carrying `ESC[201~`
        and a carriage return cannot end a bracketed paste and run a command in the shell it
        is pasted into. OSC 52 to the terminal, wrapped for tmux when inside tmux."""
        safe = clipboard_text(text)
        self._clipboard = safe
        if self._driver is not None:
            self._driver.write(clipboard_sequences(safe))

    def action_copy_reply(self) -> None:
        last = self.chat.last("assistant")
        if last is None or not last.text:
            self.notify("no reply to copy", severity="warning")
            return
        last.action_copy_message()

    def action_copy_code(self) -> None:
        last = self.chat.last("assistant")
        if last is None:
            self.notify("no reply to copy", severity="warning")
            return
        last.action_copy_code()

    def action_pick_model(self) -> None:
        from aigc_chat.tui.model_picker import open_picker

        open_picker(self)

    def action_gan_screen(self) -> None:
        try:
            from aigc_chat.tui.gan_screen import GanScreen
        except ImportError as exc:
            self.notify(f"the GAN screen is not available in this build ({exc})", severity="warning")
            return
        self.push_screen(GanScreen())

    def _enable_theme_saving(self) -> None:
        self._theme_ready = True

    def _theme_changed(self, theme: Any) -> None:
        if not self._theme_ready:
            return
        name = getattr(theme, "name", str(theme))
        if self.config.tui.get("theme") == name:
            return
        self.config.tui["theme"] = name

        def save() -> None:  # on the config-writer thread: the file may be slow to write
            try:
                cfg = load_config(self.config.path, environ={})
                cfg.tui["theme"] = name
                save_config(cfg)
            except (AigcError, OSError) as exc:
                self._post_notice(f"theme not remembered: {exc}", "warning")

        self._io.submit(save)

    def get_system_commands(self, screen: Screen) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        yield SystemCommand("New conversation", "Start a new conversation (ctrl+n)", self.action_new_conversation)
        yield SystemCommand("Regenerate", "Answer the last message again (ctrl+r)", self.action_regenerate)
        yield SystemCommand("Edit last message", "Edit and resend your last message (ctrl+o)", self.action_edit_last)
        yield SystemCommand("Stop generating", "Cancel the reply now (Esc)", self.action_cancel)
        yield SystemCommand("Toggle history pane", "Show or hide the history (F2)", self.action_toggle_history)
        yield SystemCommand("Search history", "Full-text search over every message (ctrl+f)", self.action_search)
        yield SystemCommand("Toggle settings pane", "Model, sampling, stops, system prompt (F3)", self.action_toggle_settings)
        yield SystemCommand("Switch model", "Pick a model on this machine, loaded in the background (F4)", self.action_pick_model)
        yield SystemCommand("Copy last reply", "OSC 52 clipboard, works over SSH (F5)", self.action_copy_reply)
        yield SystemCommand("Copy last code block", "The last code block of the last reply (F6)", self.action_copy_code)
        yield SystemCommand("Save settings as default", "Write them to config.toml", self._save_default)
        yield SystemCommand("GAN screen", "Sample and browse the GAN (ctrl+g)", self.action_gan_screen)
        yield SystemCommand("Help", "Keys and slash commands (F1)", self.action_help)

    async def action_quit(self) -> None:
        if self._cancel is not None:
            self._cancel.set()
        self.exit(0)

    def on_unmount(self) -> None:
        # Let a streaming reply end (it is finalised as cancelled) before the engine goes.
        if self._cancel is not None:
            self._cancel.set()
        if self.controller.backend_lock.acquire(timeout=5):
            self.controller.backend_lock.release()
        # Quit while a reply was streaming: its ReplyFinished will never be handled, so the
        # partial reply is finalised here (kept, marked cancelled) instead of left half-saved.
        if self._recorder is not None and self._worker_result and self._worker_result[0] == self._job:
            try:
                self._recorder.finish(self._worker_result[1])
            except Exception:  # noqa: BLE001 - closing must not fail
                pass
            self._recorder = None
        self._io.close(timeout=5)  # a theme or default being written: let it land
        self.controller.close()  # writes what the history's writer still has queued (a few s at most)


def _open_failure(exc: BaseException) -> str:
    return str(exc) if isinstance(exc, AigcError) else f"cannot open the conversation: {type(exc).__name__}: {exc}"


def _open_store(args: argparse.Namespace) -> tuple[Any, str]:
    """The store and a notice for the user. A history that cannot be written is opened
    read-only (browse and search it, nothing is saved); one that cannot be opened at all
    (corrupt, unreadable) leaves the TUI running as with --no-history. Only --continue and
    --conversation need it: without it they fail, as in the one-shot mode."""
    if getattr(args, "no_history", False):
        return None, ""
    try:
        from aigc_chat.history import HistoryError, HistoryStore
    except ImportError:
        return None, "history is not available in this build: conversations are not saved"
    try:
        return HistoryStore(), ""
    except HistoryError as exc:
        problem = exc
    try:
        store = HistoryStore(problem.path, readonly=True)
    except HistoryError:
        if getattr(args, "conversation", None) or getattr(args, "continue_", False):
            raise problem from None
        return None, (f"History is off: {problem}. This session runs as with --no-history: "
                      "nothing is saved.")
    return store, (f"History is read-only: cannot write {store.path} ({problem.reason}). You can "
                   "browse and search it; nothing from this session is saved.")


def _conversation_to_open(store: Any, args: argparse.Namespace) -> int | None:
    wanted = getattr(args, "conversation", None)
    if not wanted and not getattr(args, "continue_", False):
        return None
    if store is None:
        raise UsageError("--continue/--conversation need the history (drop --no-history)")
    if wanted:
        try:
            cid = int(str(wanted).strip())
        except ValueError:
            raise UsageError(f"--conversation: expected a conversation id, got {wanted!r}") from None
        store.get_conversation(cid)  # raises UsageError("no conversation N")
        return cid
    cid = store.latest_conversation_id()
    if cid is None:
        raise UsageError("--continue: there is no saved conversation yet")
    return cid


def require_terminal(stdin: Any = None, stdout: Any = None) -> None:
    """The TUI reads keys from stdin and draws on stdout; without a terminal on both it
    would spin on end-of-file forever (`aigc-chat </dev/null`) or draw into a pipe."""
    stdin = sys.stdin if stdin is None else stdin
    stdout = sys.stdout if stdout is None else stdout
    for name, stream in (("stdin", stdin), ("stdout", stdout)):
        try:
            tty = bool(stream.isatty())
        except (AttributeError, ValueError, OSError):
            tty = False
        if not tty:
            raise UsageError(f"the TUI needs a terminal, and {name} is not one "
                             "(for scripts and pipes: --prompt TEXT, or --prompt - to read stdin)")


def _exit_when_stuck(code: int, grace: float = 3.0) -> None:
    """After the app has quit, a worker thread may still sit in a call that cannot be
    interrupted (a model load from a hung network mount). It must not keep the process
    alive: give the threads a moment to finish, then leave without waiting for them."""
    deadline = time.monotonic() + grace
    for thread in threading.enumerate():
        if thread is threading.main_thread() or thread.daemon:
            continue
        thread.join(max(0.0, deadline - time.monotonic()))
    if any(t.is_alive() and not t.daemon for t in threading.enumerate() if t is not threading.main_thread()):
        for stream in (sys.stdout, sys.stderr):
            try:
                stream.flush()
            except (OSError, ValueError, AttributeError):
                pass
        os._exit(code)


def run_tui(config: Config, args: argparse.Namespace) -> int:
    """Open the TUI; returns the exit code."""
    store, note = _open_store(args)
    try:
        cid = _conversation_to_open(store, args)  # a wrong flag is reported first
        require_terminal()
    except BaseException:
        if store is not None:
            store.close()
        raise
    keep = getattr(args, "model", None) is not None or getattr(args, "backend", None) is not None
    app = ChatApp(config, store=store, conversation_id=cid, keep_model=keep, history_note=note)
    result = app.run()
    code = int(result or 0) if app.return_code in (None, 0) else int(app.return_code or 1)
    _exit_when_stuck(code)
    return code
