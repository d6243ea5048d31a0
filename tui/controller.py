"""The chat's state without the screen: session, settings, the current conversation and
its rows in the history store.

Everything the TUI does to a conversation (send, regenerate, edit, open, switch model,
change a setting) goes through here, so the bookkeeping that keeps the store and the
session in step lives in one place. No store call happens on the UI thread: writes are
queued for the history's writer thread (tui/history_service.py), which hands back Futures
for the ids it has not made yet (a new conversation, a new message), and the next queued
write resolves them. So `conversation_ref`, `last_user_id` and `last_assistant_id` may be
Futures; `known_conversation_id` is the id without waiting. Backend calls happen on worker
threads only.
"""

from __future__ import annotations

import os
import threading
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

from aigc_chat.backends.base import Backend, Message
from aigc_chat.config import Config, load_config, save_config
from aigc_chat.errors import ParamError, UsageError
from aigc_chat.params import GenerationParams
from aigc_chat.session import ChatSession, TurnStream
from aigc_chat.tui.history_service import HistoryService
from aigc_chat.tui.text_utils import title_from

if TYPE_CHECKING:  # the store is optional at run time (--no-history)
    from concurrent.futures import Future

    from aigc_chat.history import Conversation, HistoryStore, ReplyRecorder


def ui_threads(cores: int | None = None) -> int | None:
    """llama.cpp threads that leave the UI a core, or None to keep the backend's default.

    llama.cpp's worker threads wait for each other at every step; when the screen's own
    thread takes one of their cores, they stall. On this 2-core machine, streaming into
    the TUI with 2 llama threads fell from ~70 to under 1 token/s; with 1 it kept ~70. The
    backend's automatic choice already leaves half the cores free past 4, so only small
    machines are changed.
    """
    if cores is None:
        try:
            cores = len(os.sched_getaffinity(0))
        except AttributeError:  # pragma: no cover - not Linux
            cores = os.cpu_count() or 1
    return max(1, cores - 1) if cores <= 4 else None


def tui_config(config: Config, backend: str) -> Config:
    """The config the TUI loads a backend with: an explicit n_threads is kept, "auto" (0)
    leaves a core for the UI on small machines."""
    if backend != "llama":
        return config
    opts = dict(config.backends.get("llama", {}))
    threads = ui_threads()
    if opts.get("n_threads", 0) or threads is None:
        return config
    opts["n_threads"] = threads
    return replace(config, backends={**config.backends, "llama": opts})


@dataclass
class ConversationSettings:
    """What a conversation remembers about how it is answered."""

    backend: str
    model: str
    system_prompt: str = ""
    params: GenerationParams = field(default_factory=GenerationParams)

    @classmethod
    def from_config(cls, config: Config) -> "ConversationSettings":
        return cls(config.backend, config.model, config.system_prompt, config.generation)

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "model": self.model,
            "system_prompt": self.system_prompt,
            "generation": self.params.to_dict(),
        }

    def merged(self, data: dict[str, Any]) -> "ConversationSettings":
        """These settings overlaid with a stored dict; unknown or invalid stored values are
        ignored (an old conversation must always open)."""
        out = replace(self)
        if isinstance(data.get("backend"), str) and data["backend"]:
            out.backend = data["backend"]
        if isinstance(data.get("model"), str):
            out.model = data["model"]
        if isinstance(data.get("system_prompt"), str):
            out.system_prompt = data["system_prompt"]
        gen = data.get("generation")
        if isinstance(gen, dict):
            params = out.params
            for key, value in gen.items():
                try:
                    params = params.with_updates(**{key: tuple(value) if key == "stop" and isinstance(value, list) else value})
                except (ParamError, TypeError):
                    continue
            out.params = params
        return out


class ChatController:
    """Owns the ChatSession, the settings and the link to the history store."""

    def __init__(self, config: Config, store: "HistoryStore | None" = None,
                 on_history_failure: Any = None) -> None:
        self.config = config
        self.store = store  # owned by the history's writer thread from now on
        self.history = HistoryService(store, on_failure=on_history_failure)
        self.settings = ConversationSettings.from_config(config)
        self.backend: Backend | None = None
        self.session = ChatSession(backend=None, params=self.settings.params,  # type: ignore[arg-type]
                                   system_prompt=self.settings.system_prompt)
        self.conversation_ref: "int | Future | None" = None
        self.last_user_id: "int | Future | None" = None
        self.last_assistant_id: "int | Future | None" = None
        self.backend_lock = threading.Lock()  # one engine call at a time (load or generate)
        self.external_backend: Backend | None = None  # given by the caller: theirs to close

    # -- backend ------------------------------------------------------------------------
    def load_backend(self, progress: Any = None) -> Backend:
        """Build and load the backend the settings name. Runs on a worker thread."""
        from aigc_chat.loader import load_backend

        with self.backend_lock:
            backend = load_backend(tui_config(self.config, self.settings.backend), progress,
                                   backend=self.settings.backend, model=self.settings.model or None)
        return backend

    def attach_backend(self, backend: Backend) -> None:
        old, self.backend = self.backend, backend
        self.session.backend = backend
        if old is not None and old is not backend and old is not self.external_backend:
            try:
                old.close()
            except Exception:  # noqa: BLE001 - a failing close must not block the new model
                pass

    # -- settings -------------------------------------------------------------------------
    def set_params(self, **changes: Any) -> GenerationParams:
        """Validate and apply generation parameters; raises ParamError with the reason."""
        params = self.settings.params.with_updates(**changes)
        self.settings.params = params
        self.session.params = params
        self._save_settings()
        return params

    def set_system_prompt(self, text: str) -> None:
        self.settings.system_prompt = text
        self.session.system_prompt = text
        self._save_settings()

    def set_model(self, backend: str | None = None, model: str | None = None) -> None:
        """Record which backend/model the conversation uses (the app reloads it)."""
        if backend is not None:
            from aigc_chat.backends import registry

            if not registry.is_known(backend):
                raise UsageError(f"unknown backend {backend!r} (available: {', '.join(registry.available())})")
            self.settings.backend = registry.canonical(backend)
        if model is not None:
            self.settings.model = model
        self._save_settings()

    def save_as_default(self, settings: ConversationSettings | None = None) -> str:
        """Write the conversation's settings (or `settings`, a copy taken earlier: the app
        runs this off the UI thread) to config.toml as the new defaults.

        The file is re-read first so command-line flags of this run are not written, and
        nothing but backend, model, system prompt and generation changes in it (an API key
        is never added; whatever the file holds stays as it was)."""
        s = settings if settings is not None else self.settings
        base = load_config(self.config.path, environ={})
        base.backend = s.backend
        base.model = s.model
        base.system_prompt = s.system_prompt
        base.generation = s.params
        path = save_config(base)
        return str(path)

    def _save_settings(self) -> None:
        if self.history.saving and self.conversation_ref is not None:
            self.history.queued.update_settings(self.conversation_ref, self.settings.to_dict(),
                                                model=self.settings.model, backend=self.settings.backend)

    # -- the conversation's id --------------------------------------------------------------
    @property
    def known_conversation_id(self) -> int | None:
        """The stored id, if the writer has made it already (never waits)."""
        from aigc_chat.history_writer import known

        return known(self.conversation_ref)

    @property
    def conversation_id(self) -> int | None:
        """The stored id, waiting for the writer if it is still creating it. Not for the UI
        thread (it uses `conversation_ref` / `known_conversation_id`): for tests and scripts."""
        ref = self.conversation_ref
        if ref is None or isinstance(ref, int):
            return ref
        try:
            return int(ref.result(timeout=30))
        except Exception:  # noqa: BLE001 - not saved (the history failed): no id
            return None

    def is_current(self, conversation_id: int) -> bool:
        return self.known_conversation_id == conversation_id

    # -- conversations --------------------------------------------------------------------
    def new_conversation(self) -> None:
        """Start afresh: defaults from the config, but the loaded backend and model stay."""
        self.conversation_ref = None
        self.last_user_id = self.last_assistant_id = None
        self.session.messages.clear()
        self.session.last_plan = None
        self.settings = replace(ConversationSettings.from_config(self.config),
                                backend=self.settings.backend, model=self.settings.model)
        self.session.params = self.settings.params
        self.session.system_prompt = self.settings.system_prompt

    def load_conversation(self, conv: "Conversation", *, keep_model: bool = False) -> "Conversation":
        """Put a stored conversation (read on the reader thread) into the session.

        `keep_model` keeps the current backend/model (the user named one on the command line)."""
        settings = self.settings.merged(conv.settings or {})
        if keep_model:
            settings.backend, settings.model = self.settings.backend, self.settings.model
        self.settings = settings
        self.conversation_ref = conv.summary.id
        self.session.params = settings.params
        self.session.system_prompt = settings.system_prompt
        self.session.last_plan = None
        self.session.messages[:] = [
            Message(m.role, m.content)  # type: ignore[arg-type]
            for m in conv.messages
            if m.kind == "text" and m.role in ("user", "assistant")
            and not (m.role == "assistant" and not m.content and m.finish_reason == "error")
        ]
        self.last_user_id = self.last_assistant_id = None
        for m in conv.messages:
            if m.kind != "text":
                continue
            if m.role == "user":
                self.last_user_id, self.last_assistant_id = m.id, None
            elif m.role == "assistant":
                self.last_assistant_id = m.id
        return conv

    def _ensure_conversation(self, first_text: str) -> "int | Future | None":
        if not self.history.saving:
            return None
        if self.conversation_ref is None:
            self.conversation_ref = self.history.queued.create_conversation(
                title_from(first_text), model=self.settings.model, backend=self.settings.backend,
                settings=self.settings.to_dict(),
            )
        return self.conversation_ref

    # -- turns: the UI thread queues the writes, the worker drives the session -------------
    def store_user_message(self, text: str) -> "int | Future | None":
        """Queue the user's message before generation starts (so nothing typed is lost: the
        writer writes it before any row of the reply). Never waits, never raises."""
        conv = self._ensure_conversation(text)
        if conv is None:
            return None
        self.last_user_id = self.history.queued.add_message(conv, "user", text)
        self.last_assistant_id = None
        return self.last_user_id

    def store_extra(self, role: str, content: str, kind: str, meta: dict[str, Any]) -> "int | Future | None":
        """Queue an inline item that is not part of the chat sent to the model (GAN samples)."""
        conv = self._ensure_conversation(content)
        if conv is None:
            return None
        return self.history.queued.add_message(conv, role, content, kind=kind, meta=meta)

    def check_regenerate(self) -> None:
        msgs = self.session.messages
        if not msgs or not any(m.role == "user" for m in msgs[-2:]):
            raise UsageError("nothing to regenerate")

    def prepare_regenerate(self) -> None:
        """Forget the stored last reply; the worker then calls `session.regenerate`."""
        self.check_regenerate()
        if self.history.saving and self.last_assistant_id is not None:
            self.history.queued.delete_message(self.last_assistant_id)
        self.last_assistant_id = None

    def last_user_text(self) -> str | None:
        for m in reversed(self.session.messages):
            if m.role == "user":
                return m.content
        return None

    def prepare_edit(self, text: str) -> None:
        """Replace the stored last user message (and drop its reply) before resending."""
        if not text.strip():
            raise UsageError("empty message")
        if self.last_user_text() is None:
            raise UsageError("there is no message to edit")
        if self.history.saving:
            for row in (self.last_assistant_id, self.last_user_id):
                if row is not None:
                    self.history.queued.delete_message(row)
            if self.conversation_ref is not None:
                self.last_user_id = self.history.queued.add_message(self.conversation_ref, "user", text)
        self.last_assistant_id = None

    def recorder(self) -> "ReplyRecorder | None":
        """A recorder for the reply about to stream (None when nothing is being saved); its
        writes are queued for the writer thread, at most about one a second."""
        if not self.history.saving or self.conversation_ref is None:
            return None
        from aigc_chat.history import ReplyRecorder

        rec = ReplyRecorder(self.history.queued, self.conversation_ref)
        self.last_assistant_id = rec.start()
        return rec

    # -- the user's own changes to stored conversations (errors reported to them) -----------
    def rename(self, conversation_id: int, title: str) -> "Future":
        return self._action("rename", conversation_id, title)

    def delete_conversation(self, conversation_id: int) -> "Future":
        return self._action("delete_conversation", conversation_id)

    def _action(self, method: str, *args: Any) -> "Future":
        if not self.history.available:
            raise UsageError("history is off (--no-history)")
        if self.history.writer is None:
            raise UsageError(f"the history is read-only: cannot change it ({self.store.path})")
        from aigc_chat.history import HistoryStore

        return self.history.submit_action(getattr(HistoryStore, method), *args)

    # -- worker side ------------------------------------------------------------------------
    def start_turn(self, action: str, text: str, cancel: threading.Event) -> TurnStream:
        """Begin a reply on the worker thread: 'send', 'regenerate' or 'edit'."""
        if self.backend is None:
            raise UsageError("no model is loaded")
        if action == "send":
            return self.session.send(text, cancel)
        if action == "regenerate":
            return self.session.regenerate(cancel)
        if action == "edit":
            return self.session.edit_last_user(text, cancel)
        raise ValueError(action)

    def close(self) -> None:
        if self.backend is not None and self.backend is not self.external_backend:
            try:
                self.backend.close()
            except Exception:  # noqa: BLE001
                pass
        self.backend = None
        self.history.close()
