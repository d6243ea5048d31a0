"""The conversation core: one conversation, end to end, for both front ends.

A `Conversation` owns everything a chat is besides its screen: the settings it is answered
with, the messages sent to the model, the backend, and its rows in the history store. The TUI
and the one-shot mode both drive it and nothing else, so each rule lives here once:

- **A turn** (`begin("send" | "regenerate" | "edit", text)`) grows the conversation's tree
  (aigc_chat.tree: a regenerate or an edit is a new branch, nothing is removed) and queues the
  history writes at once, on the caller's thread, without waiting: the question is queued
  before any row of its reply, so nothing typed is lost. The returned `Turn` is then run where
  the front end likes (the TUI: a worker thread; the one-shot mode: its main thread): it plans
  the prompt, streams the reply's text pieces, saves the reply while it streams (about once a
  second) and finishes it (stats and finish reason) at every end: stop, length, cancel, error.
- **Saving never waits and never stops the answer.** Writes go to the history's writer thread
  (`history_service.HistoryService`); the first failure is reported once through
  `on_history_failure` and the conversation goes on in memory.
- **Opening, renaming, deleting and exporting** run on the history's threads too and hand back
  `concurrent.futures.Future`s; the front end decides whether to await them.

Nothing here imports a UI toolkit; backend calls happen only inside `Turn.run` and
`load_backend`, which the front end runs off its event loop.
"""

from __future__ import annotations

import os
import threading
import time
from collections.abc import Callable, Collection, Generator, Sequence
from concurrent.futures import Future
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Literal

from aigc_chat import ids
from aigc_chat.attachments import Attachment, too_big
from aigc_chat.attachments import render as render_files
from aigc_chat.backends.base import Backend, ChatStream
from aigc_chat.chat_types import GenerationResult, Message, PromptProgress
from aigc_chat.config import Config, load_config, save_config
from aigc_chat.errors import ParamError, UsageError
from aigc_chat.history_service import HistoryService
from aigc_chat.ids import Ref, known
from aigc_chat.params import PARAM_NAMES, GenerationParams
from aigc_chat.reasoning import Reasoning
from aigc_chat.safe_open import write_private
from aigc_chat.tree import MessageTree, Node

if TYPE_CHECKING:
    from aigc_chat.compaction import Compacted
    from aigc_chat.history import StoredConversation
    from aigc_chat.history_recorder import ReplyRecorder
    from aigc_chat.history_store import HistoryStore

TurnAction = Literal["send", "regenerate", "edit"]
SPARE_RESERVE = 1 << 30  # memory left free for everything else when a spare model is kept


def memory_available() -> int | None:
    """Bytes the system can still give (Linux MemAvailable), or None where it cannot say:
    then no spare model is kept."""
    try:
        with open("/proc/meminfo", encoding="ascii") as fh:
            for line in fh:
                if line.startswith("MemAvailable:"):
                    return int(line.split()[1]) * 1024
    except (OSError, ValueError, IndexError):
        return None
    return None
SAVE_INTERVAL = 1.0  # seconds between writes of a streaming reply: what a kill -9 can lose


@dataclass
class ConversationSettings:
    """What a conversation remembers about how it is answered."""

    backend: str
    model: str
    system_prompt: str = ""
    params: GenerationParams = field(default_factory=GenerationParams)
    # The role it was started under (aigc_chat.roles), for display only: its values are the
    # ones above, copied when the conversation began, so editing the role changes nothing here.
    role: str = ""

    @classmethod
    def from_config(cls, config: Config) -> ConversationSettings:
        return cls(config.backend, config.model, config.system_prompt, config.generation,
                   getattr(config, "role", ""))

    def to_dict(self) -> dict[str, Any]:
        return {
            "backend": self.backend,
            "model": self.model,
            "system_prompt": self.system_prompt,
            "generation": self.params.to_dict(),
            "role": self.role,
        }

    def merged(self, data: dict[str, Any]) -> ConversationSettings:
        """These settings overlaid with a stored dict; unknown or invalid stored values are
        ignored (an old conversation must always open)."""
        out = replace(self)
        if isinstance(data.get("backend"), str) and data["backend"]:
            out.backend = data["backend"]
        if isinstance(data.get("model"), str):
            out.model = data["model"]
        if isinstance(data.get("system_prompt"), str):
            out.system_prompt = data["system_prompt"]
        if data:  # a conversation saved without a role had none, whatever this run's is
            out.role = data["role"] if isinstance(data.get("role"), str) else ""
        gen = data.get("generation")
        if isinstance(gen, dict):
            params = out.params
            for key, value in gen.items():
                if key == "stop" and isinstance(value, list):
                    value = tuple(value)
                try:
                    params = params.with_updates(**{key: value})
                except (ParamError, TypeError):
                    continue
            out.params = params
        return out


@dataclass
class PromptPlan:
    """What will be sent: the messages, and how many old messages were left out to fit."""

    messages: list[Message]
    dropped: int = 0
    prompt_tokens: int | None = None


def plan_prompt(backend: Backend, system_prompt: str, turns: list[Message],
                params: GenerationParams) -> PromptPlan:
    """The messages to send: the oldest exchanges are left out until the prompt leaves room to
    answer. The system prompt and the newest message always stay; a compaction's summary at
    the top of the path (a system message) joins the system prompt, so it stays too."""
    folded = with_system(system_prompt, turns)
    system, turns = ([folded[0]], folded[1:]) if folded and folded[0].role == "system" else ([], folded)
    try:
        ctx = backend.info().context_length
    except Exception:  # noqa: BLE001 - no context size known: send everything, the engine says if it is too long
        ctx = 0
    count = backend.count_tokens(system + turns) if ctx else None
    if count is None:
        return PromptPlan(system + turns, 0, None)
    reserve = min(params.max_tokens, max(ctx // 4, 1))
    dropped = 0
    while count > ctx - reserve and len(turns) > 1:
        pair = len(turns) > 2 and turns[0].role == "user" and turns[1].role == "assistant"
        cut = 2 if pair else 1
        turns = turns[cut:]
        dropped += cut
        count = backend.count_tokens(system + turns) or 0
    return PromptPlan(system + turns, dropped, count)


def with_system(system_prompt: str, turns: Sequence[Message]) -> list[Message]:
    """The system prompt and the path's messages as they are sent: a compaction's summary at
    the top of the path (a system message, aigc_chat.compaction) joins the system prompt, so
    there is one system message, first, whatever the template."""
    lead = 0
    while lead < len(turns) and turns[lead].role == "system":
        lead += 1
    text = "\n\n".join(t for t in [system_prompt, *(m.content for m in turns[:lead])] if t)
    return ([Message("system", text)] if text else []) + list(turns[lead:])


def _start_conversation(store: HistoryStore, title: str, text: str, files: Sequence[tuple[str, str]] = (),
                        **kwargs: Any) -> tuple[int, int]:
    """The first message and the conversation made for it, as one write: whatever stops the
    message (a locked file, text SQLite cannot encode) leaves no empty "(untitled)" behind."""
    cid = store.create_conversation(title, **kwargs)
    try:
        mid = store.add_message(cid, "user", text, attachments=files)
    except BaseException:
        try:
            store.delete_conversation(cid)
        except Exception:  # noqa: BLE001 - the first error is the one to report
            pass
        raise
    return cid, mid


def _parent_ref(parent: Node | None) -> Ref:
    """What the store is told a new message follows: the parent's id (or the writer's Future
    of it), None at the top; a parent that was never saved: after the stored leaf."""
    from aigc_chat.history import CURRENT

    if parent is None:
        return None
    return parent.ref if parent.ref is not None else CURRENT


class Conversation:
    """One conversation: settings, messages, backend and its history rows (module notes)."""

    def __init__(self, config: Config, history: HistoryService | None = None, *,
                 on_history_failure: Callable[[Exception], None] | None = None,
                 on_conversation_gone: Callable[[int], None] | None = None,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.config = config
        self.keep: frozenset[str] = frozenset()  # what this run's flags set: a switch never changes it
        self.history = history if history is not None else HistoryService(None)
        self.history.on_failure = self._history_failed
        self.history.on_gone = self._history_gone
        self.on_history_failure = on_history_failure
        # Called (on the history's writer thread) with the id of the conversation shown here
        # when another process deleted it; `keep_as_new` stores the chat again.
        self.on_conversation_gone = on_conversation_gone
        self.gone_id: int | None = None
        self.clock = clock
        self.settings = ConversationSettings.from_config(config)
        self.tree = MessageTree()  # every message, every branch; `messages` is the current path
        self.backend: Backend | None = None
        self.external_backend: Backend | None = None  # the caller's: never closed here
        self.backend_lock = threading.Lock()  # one engine call at a time (a load or a turn)
        self.spare: Backend | None = None  # the model answered with before, kept loaded (see attach)
        self._loaded_as: dict[int, tuple[str, str]] = {}  # id(backend) -> (backend, model) asked for
        self.memory_available = memory_available  # a function, so tests can say "no room"
        self.conversation_ref: Ref = None
        self.last_plan: PromptPlan | None = None

    # -- the backend -------------------------------------------------------------------------
    def load_backend(self, progress: Callable[[str], None] | None = None, config: Config | None = None,
                     backend: str | None = None, model: str | None = None) -> Backend:
        """Build and load the backend the settings name, or `backend`/`model` (slow: not on an
        event loop). The model answered with before is handed back as it is, without a load,
        when it is the one asked for. The front end may pass its own config (the TUI leaves
        a core for the screen)."""
        from aigc_chat.loader import load_backend

        name = backend or self.settings.backend
        ref = model if model is not None else (self.settings.model or "")
        spare = self.spare
        if spare is not None and self._loaded_as.get(id(spare)) == (name, ref):
            if progress is not None:
                progress("still loaded: switching back")
            return spare
        with self.backend_lock:
            loaded = load_backend(config or self.config, progress, backend=name, model=ref or None)
        self._loaded_as[id(loaded)] = (name, ref)
        return loaded

    def attach_backend(self, backend: Backend, *, external: bool = False) -> None:
        """Answer with `backend` from now on. The one it replaces stays loaded as the spare
        (switching back then costs nothing) when the memory left allows it: at least twice
        its file's size plus `SPARE_RESERVE`; otherwise, and whatever spare there was before,
        it is closed. The caller's own backend is never closed here."""
        if external:
            self.external_backend = backend
        old, self.backend = self.backend, backend
        if self.spare is backend:
            self.spare = None
        if old is None or old is backend:
            return
        if old is not self.external_backend and self._room_for(old):
            self._close(self.spare)
            self.spare = old
        elif old is not self.external_backend:
            self._close(old)

    def _room_for(self, backend: Backend) -> bool:
        try:
            size = os.path.getsize(backend.model) if backend.model and os.path.isfile(backend.model) else 0
        except OSError:
            size = 0
        available = self.memory_available()
        return available is not None and available >= 2 * size + SPARE_RESERVE

    def _close(self, backend: Backend | None) -> None:
        if backend is None or backend is self.external_backend:
            return
        self._loaded_as.pop(id(backend), None)
        try:
            backend.close()
        except Exception:  # noqa: BLE001 - a failing close must not block the new model
            pass

    # -- settings ----------------------------------------------------------------------------
    def set_params(self, **changes: Any) -> GenerationParams:
        """Validate and apply generation parameters; raises ParamError with the reason."""
        self.settings.params = self.settings.params.with_updates(**changes)
        self._save_settings()
        return self.settings.params

    def set_system_prompt(self, text: str) -> None:
        self.settings.system_prompt = text
        self._save_settings()

    def set_model(self, backend: str | None = None, model: str | None = None) -> None:
        """Record which backend and model answer this conversation (the caller loads it)."""
        if backend is not None:
            from aigc_chat.backends import registry

            if not registry.is_known(backend):
                names = ", ".join(registry.available())
                raise UsageError(f"unknown backend {backend!r} (available: {names})")
            self.settings.backend = registry.canonical(backend)
        if model is not None:
            self.settings.model = model
        self._save_settings()

    def switch_model(self, backend: str | None, model: str | None, role: str | None = None) -> bool:
        """Answer with `backend`/`model` (None: the one set now) and, given `role` ("" for
        none), under that role: the one way every front end switches (/model, the settings
        pane, the model picker, the role picker), so a switch gives the same sampling whatever
        the route. The caller loads the model; True when the model answering changes.

        The sampling is resolved once, through the whole chain (aigc_chat.model_settings):
        flags > this conversation > role > `[models."GLOB"]` > `[generation]` > the model file
        > the built-in table. A value changed in this conversation stays; one that came from
        the old model's layers becomes the new model's. A role starts afresh: its system prompt
        and sampling replace the conversation's (the front end begins a new conversation
        first), and a role that names a model switches to it unless a flag named one."""
        from aigc_chat import roles
        from aigc_chat.backends import registry
        from aigc_chat.loader import model_settings_for

        if backend is not None and not registry.is_known(backend):
            names = ", ".join(registry.available())
            raise UsageError(f"unknown backend {backend!r} (available: {names})")
        old_cfg, s = self.config, self.settings
        cfg = old_cfg if role is None else roles.apply(old_cfg, role, self.keep)
        to_backend = registry.canonical(backend) if backend is not None else s.backend
        to_model = model if model is not None else s.model
        chosen = roles.find(cfg, role) if role else None
        if chosen is not None and chosen.model and cfg.model == chosen.model and backend is None and model is None:
            to_backend, to_model = registry.canonical(cfg.backend), cfg.model
        resolved = model_settings_for(replace(cfg, backend=to_backend, model=to_model), to_backend, to_model)
        self.config = replace(resolved, backend=cfg.backend, model=cfg.model)
        changed = (to_backend, to_model) != (s.backend, s.model)
        if role is not None:
            fresh = ConversationSettings.from_config(self.config)
            s.system_prompt, s.role, s.params = fresh.system_prompt, fresh.role, fresh.params
        else:
            # the values the model answering now brings (the config was resolved for the model
            # it started with, which an opened conversation may not use)
            before = model_settings_for(replace(old_cfg, backend=s.backend, model=s.model), s.backend, s.model)
            params = {}
            for name in PARAM_NAMES:
                current = getattr(s.params, name)
                if old_cfg.source(name) != "flag" and current == getattr(before.generation, name):
                    params[name] = getattr(resolved.generation, name)  # not changed in this conversation
            s.params = s.params.with_updates(**params)
        s.backend, s.model = to_backend, to_model
        self._save_settings()
        return changed

    def save_as_default(self, settings: ConversationSettings | None = None) -> str:
        """Write these settings to config.toml as the new defaults, and use them from now on
        (a new conversation starts with them). Off the event loop, `write_defaults`."""
        path, running = self.write_defaults(settings)
        self.config = running
        return path

    def write_defaults(self, settings: ConversationSettings | None = None) -> tuple[str, Config]:
        """Write these settings (or a copy taken earlier, when this runs on another thread)
        to config.toml as the new defaults; returns the file and the running config with the
        new defaults in it, for the caller to adopt on its own thread.

        The file is read again first, so nothing but backend, model, system prompt and
        generation changes in it (an API key or another flag is never added); the generation
        values shown, a flag's included, are what the user saves."""
        s = settings if settings is not None else self.settings
        base = load_config(self.config.path, environ={})
        base.backend, base.model, base.system_prompt = s.backend, s.model, s.system_prompt
        written = {name: getattr(s.params, name) for name in PARAM_NAMES
                   if self._worth_writing(name, getattr(s.params, name), base)}
        base.generation = base.generation.with_updates(**written)
        base.file_generation = {**base.file_generation, **written}
        path = str(save_config(base))
        return path, self._with_defaults(s, written)

    def _with_defaults(self, s: ConversationSettings, written: dict[str, Any]) -> Config:
        """The running config with just-saved defaults in their layer: `[generation]`, under
        a flag, the role and `[models."GLOB"]` (aigc_chat.model_settings), so what those set
        stays in effect, as it would after a restart."""
        cfg = self.config
        above = [name for name in written if cfg.source(name) == "flag" or cfg.source(name).startswith(
            ("role ", "config [models."))]
        used = {k: v for k, v in written.items() if k not in above}
        running = replace(cfg, file_generation={**cfg.file_generation, **written},
                          generation=cfg.generation.with_updates(**used),
                          sources={**cfg.sources, **dict.fromkeys(used, "config [generation]")})
        chosen = {"backend": s.backend, "model": s.model, "system_prompt": s.system_prompt}
        chosen = {k: v for k, v in chosen.items() if k not in self.keep}  # a flag still wins in this run
        if running.role:  # the role keeps its own; what it replaced is the new default
            running.role_base = {**running.role_base, **chosen}
        else:
            for key, value in chosen.items():
                setattr(running, key, value)
        return running

    def _worth_writing(self, name: str, value: Any, base: Config) -> bool:
        """A value goes into [generation] if the file has it already, or this run chose it (a
        flag, or a change in this conversation). One that came from the model (its file, the
        built-in table, a [models."GLOB"] table) or is the default stays out: written there it
        would beat every other model's own sampling."""
        if name in base.file_generation:
            return True
        return self.config.source(name) == "flag" or value != getattr(self.config.generation, name)

    def _save_settings(self) -> None:
        if self.history.queued is not None and self.conversation_ref is not None:
            self.history.queued.update_settings(self.conversation_ref, self.settings.to_dict(),
                                                model=self.shown_model(), backend=self.settings.backend)

    # -- which stored conversation this is -----------------------------------------------------
    @property
    def known_id(self) -> int | None:
        """The stored id, if the writer has made it already (never waits)."""
        return known(self.conversation_ref)

    def wait_for_id(self, timeout: float = 30) -> int | None:
        """The stored id, waiting for the writer if it is still making it: for scripts and
        tests, never for an event loop (which uses `known_id`)."""
        return ids.wait(self.conversation_ref, timeout)

    @property
    def saving(self) -> bool:
        return self.history.saving

    # -- conversations ------------------------------------------------------------------------
    def new(self) -> None:
        """Start afresh with the config's defaults; the loaded backend and model stay."""
        self.conversation_ref = None
        self.tree = MessageTree()
        self.last_plan = None
        self.settings = replace(ConversationSettings.from_config(self.config),
                                backend=self.settings.backend, model=self.settings.model)

    def read(self, conversation_id: Ref, at: int | None = None) -> Future[StoredConversation]:
        """Read a stored conversation on the history's reader thread (the path shown: its
        current one, or the branch holding message `at`)."""
        if not self.history.available:
            raise UsageError("history is off (--no-history)")
        return self.history.read(lambda store, cid: store.get_conversation(cid, at=at), conversation_id)

    def load(self, stored: StoredConversation, *, keep: Collection[str] = ()) -> None:
        """Carry on a stored conversation: its messages and the settings it was answered with,
        except those named in `keep` ("backend", "model", "system_prompt" or a generation
        parameter), which stay as they are: what this run's flags set wins, in both front ends."""
        merged = self.settings.merged(stored.settings or {})
        for name in ("backend", "model", "system_prompt"):
            if name in keep:
                setattr(merged, name, getattr(self.settings, name))
        kept = {n: getattr(self.settings.params, n) for n in keep if hasattr(self.settings.params, n)}
        if kept:
            merged.params = merged.params.with_updates(**kept)
        if (merged.backend, merged.model) != (self.settings.backend, self.settings.model):
            # the defaults follow the model answering, as after switch_model: a new conversation
            # started from this one gets that model's own sampling
            from aigc_chat.loader import model_settings_for

            cfg = self.config
            resolved = model_settings_for(replace(cfg, backend=merged.backend, model=merged.model),
                                          merged.backend, merged.model)
            self.config = replace(resolved, backend=cfg.backend, model=cfg.model)
        self.settings = merged
        self.conversation_ref = stored.summary.id
        self.tree = stored.tree()
        self.last_plan = None

    def rename(self, conversation_id: int, title: str) -> Future[Any]:
        from aigc_chat.history_store import HistoryStore

        return self._user_write(HistoryStore.rename, conversation_id, title)

    def delete(self, conversation_id: int) -> Future[Any]:
        """Delete a stored conversation; deleting this one starts a new one here."""
        from aigc_chat.history_store import HistoryStore

        if self.known_id == conversation_id:
            self.new()
        return self._user_write(HistoryStore.delete_conversation, conversation_id)

    def export(self, conversation_id: Ref, path: Path) -> Future[str]:
        """Write a stored conversation to `path` (.json: JSON, anything else: Markdown, its
        text sanitised) on the reader thread, 0600; the Future gives the format."""
        if not self.history.available:
            raise UsageError("history is off (--no-history): nothing to export")
        if conversation_id is None:
            raise UsageError("nothing to export yet: send a message first")
        fmt = "json" if path.suffix.lower() == ".json" else "markdown"

        def job(store: HistoryStore, cid: int) -> str:
            from aigc_chat.history_export import render

            write_private(path, render(store.get_conversation(cid), fmt))
            return fmt

        return self.history.read(job, conversation_id)

    def _user_write(self, fn: Callable[..., Any], *args: Any) -> Future[Any]:
        if not self.history.available:
            raise UsageError("history is off (--no-history)")
        if self.history.writer is None:
            raise UsageError(f"the history is read-only: cannot change it ({self.history.store.path})")
        return self.history.submit_action(fn, *args)

    # -- compaction (aigc_chat.compaction) ------------------------------------------------------
    def compact(self, keep: int | None = None, instructions: str = "", cancel: threading.Event | None = None,
                progress: Callable[[int, int, int], None] | None = None) -> Compacted:
        """Summarise the current path's older part into a new branch at the root, keeping the
        last `keep` exchanges (2 by default) as they are; the original branch stays. Off the
        event loop, under `backend_lock`. Nothing is stored unless it succeeds."""
        from aigc_chat import compaction

        return compaction.run(self, compaction.DEFAULT_KEEP if keep is None else keep, instructions,
                              cancel, progress)

    def overflow(self, text: str = "", files: Sequence[Attachment] = ()) -> tuple[int, int, int] | None:
        """(tokens, room, context) when the current path plus this question would not leave the
        reply its room (so the oldest exchanges would be left out); None when it fits or the
        engine cannot count. Off the event loop: this counts tokens."""
        if self.backend is None:
            return None
        try:
            ctx = self.backend.info().context_length
        except Exception:  # noqa: BLE001 - no context size known: the engine says
            return None
        if not ctx:
            return None
        turns = [*self.messages, Message("user", render_files(text, files))]
        count = self.backend.count_tokens(with_system(self.settings.system_prompt, turns))
        if count is None:
            return None
        room = ctx - min(self.settings.params.max_tokens, max(ctx // 4, 1))
        return (count, room, ctx) if count > room else None

    def before_send(self, text: str = "", files: Sequence[Attachment] = (), cancel: threading.Event | None = None,
                    progress: Callable[[int, int, int], None] | None = None,
                    starting: Callable[[tuple[int, int, int]], None] | None = None) -> Compacted | None:
        """Apply `[generation] on_overflow` before a question is sent (off the event loop, under
        `backend_lock`): "drop_oldest" does nothing here (the planner leaves old exchanges
        out); "refuse" raises UsageError with the numbers, nothing stored; "compact" compacts
        first (`starting` is told why) and returns what it made."""
        policy = getattr(self.config, "on_overflow", "drop_oldest")
        if policy == "drop_oldest" or not self.tree.path():
            return None
        over = self.overflow(text, files)
        if over is None:
            return None
        count, room, ctx = over
        if policy == "refuse":
            raise UsageError(f"the conversation and this question need {count:,} tokens and the context leaves "
                             f"{room:,} ({ctx:,} less the room for the reply): nothing was sent "
                             f"(on_overflow = \"refuse\"; compact it, or start a new one)")
        if starting is not None:
            starting(over)
        return self.compact(cancel=cancel, progress=progress)

    def add_item(self, role: str, content: str, kind: str, meta: dict[str, Any]) -> Node:
        """An inline item that is stored and shown but never sent to the model (GAN samples);
        it follows the current leaf like any message."""
        parent = self.tree.leaf
        node = self.tree.add(Node(role, content, kind=kind, meta=dict(meta)), parent)
        conv = self._ensure_stored(content)
        if conv is not None:
            assert self.history.queued is not None
            node.ref = self.history.queued.add_message(conv, role, content, kind=kind, meta=meta,
                                                       parent=_parent_ref(parent))
        return node

    def _ensure_stored(self, first_text: str) -> Ref:
        if not self.history.saving:
            return None
        if self.conversation_ref is None:
            from aigc_chat.labels import title_from

            assert self.history.queued is not None
            self.conversation_ref = self.history.queued.create_conversation(
                title_from(first_text), model=self.shown_model(), backend=self.settings.backend,
                settings=self.settings.to_dict())
        return self.conversation_ref

    # -- the path and its branches --------------------------------------------------------------
    @property
    def messages(self) -> list[Message]:
        """What the model is sent: the current path's user and assistant text."""
        return self.sent_up_to(self.tree.leaf)

    def sent_up_to(self, node: Node | None) -> list[Message]:
        """What the model is sent of the path down to `node` (`Node.sent`: inline items and
        replies without text are shown, never sent)."""
        return [n.message() for n in self.tree.path(node) if n.sent] if node is not None else []

    def path(self) -> list[Node]:
        """The messages shown: the current path, inline items included."""
        return self.tree.path()

    def last_user(self) -> Node | None:
        return next((n for n in reversed(self.tree.path()) if n.role == "user" and n.kind == "text"), None)

    def switch(self, node: Node, step: int) -> Node | None:
        """Show the alternative `step` places from `node` (-1: the previous one), down to its
        newest message; the history remembers it. None past an end (nothing changes)."""
        other = self.tree.switch(node, step)
        if other is not None:
            self._save_leaf()
        return other

    def show(self, node: Node) -> None:
        """Show the branch that holds `node` (a search hit, say), down to its newest message."""
        self.tree.show(node)
        self._save_leaf()

    def _save_leaf(self) -> None:
        leaf = self.tree.leaf
        if (self.history.saving and self.conversation_ref is not None and leaf is not None
                and leaf.ref is not None):
            assert self.history.queued is not None
            self.history.queued.set_current_leaf(self.conversation_ref, leaf.ref)

    def fork(self, node: Node) -> Future[int] | None:
        """A new conversation holding the path up to `node`. Stored: the history makes the
        copy and the Future gives its id (open it to carry on); with nothing saved, the copy
        becomes this conversation in memory (None)."""
        if self.history.saving and self.conversation_ref is not None and node.ref is not None:
            from aigc_chat.history_store import HistoryStore

            return self._user_write(HistoryStore.fork, self.conversation_ref, node.ref)
        copy = MessageTree()
        parent: Node | None = None
        for n in self.tree.path(node):
            parent = copy.add(Node(n.role, n.content, files=n.files, kind=n.kind, meta=dict(n.meta),
                                   stats=dict(n.stats), finish_reason=n.finish_reason), parent)
        self.conversation_ref = None
        self.tree = copy
        return None

    # -- turns ---------------------------------------------------------------------------------
    def begin(self, action: TurnAction, text: str = "", files: Sequence[Attachment] = (),
              target: Node | None = None, *, title: str = "") -> Turn:
        """Start a turn: the tree grows and the history writes are queued now (never
        waiting); run the returned Turn to get the reply. Nothing is ever removed: a
        regenerated reply is a sibling of the last one, and an edit of any question of the
        path (`target`; the last one by default) is a sibling of it, answered anew. `files` go
        into the message (aigc_chat.attachments; counted with `count_file` first, they are
        checked against the context here, before anything is stored); an edit keeps the
        question's files unless it is given others. UsageError when there is nothing to do:
        an empty message, nothing to regenerate or edit, no model, files that do not fit.
        `title`: what a new conversation is titled from, when not the message's first line
        (a piped one-shot run: the question, not the first line of stdin)."""
        if self.backend is None:
            raise UsageError("no model is loaded")
        if files:
            self._check_room(files)
        parent: Node | None
        if action == "send":
            user = self._add_question(self.tree.leaf, text, files, title=title)
            parent = user
        elif action == "regenerate":
            # the new reply goes beside the last text reply of the path (inline items such as
            # GAN samples after it stay in its branch); with no reply after the last question,
            # it answers that question where the path ends
            last_text = next((n for n in reversed(self.tree.path()) if n.kind == "text"), None)
            parent = (last_text.parent if last_text is not None and last_text.role == "assistant"
                      else self.tree.leaf)
            found = (next((n for n in reversed(self.tree.path(parent)) if n.role == "user"), None)
                     if parent is not None else None)
            if found is None:
                raise UsageError("nothing to regenerate")
            user = found
        elif action == "edit":
            target = target if target is not None else self.last_user()
            if target is None:
                raise UsageError("there is no message to edit")
            if target.role != "user" or target not in self.tree.path():
                raise UsageError("only a question on the path shown can be edited")
            if not text.strip():
                raise UsageError("empty message")
            user = self._add_question(target.parent, text, files or target.files)
            parent = user
        else:
            raise ValueError(f"unknown turn action {action!r}")
        before = self.tree.leaf
        reply = self.tree.add(Node("assistant", "", live=True), parent)
        return Turn(self, action, user, reply, self._recorder(reply), leaf_before=before)

    def _add_question(self, parent: Node | None, text: str, files: Sequence[Attachment] = (),
                      title: str = "") -> Node:
        if not text.strip() and not files:
            raise UsageError("empty message")
        node = self.tree.add(Node("user", text, files=tuple(files)), parent)
        if not self.history.saving:
            return node
        assert self.history.queued is not None
        if self.conversation_ref is None:
            from aigc_chat.labels import title_from

            writer = self.history.writer
            assert writer is not None  # saving means there is a writer
            pair = writer.submit(
                _start_conversation, title_from(title or text) or (files[0].name if files else ""), text,
                [(f.name, f.text) for f in files], model=self.shown_model(),
                backend=self.settings.backend, settings=self.settings.to_dict())
            self.conversation_ref, node.ref = ids.part(pair, 0), ids.part(pair, 1)
        else:
            node.ref = self.history.queued.add_message(
                self.conversation_ref, "user", text, attachments=[(f.name, f.text) for f in files],
                parent=_parent_ref(parent))
        return node

    def count_file(self, file: Attachment) -> Attachment:
        """The file with its size in tokens as this model counts it (slow for big files: not
        on an event loop); refused at once, with one line, when it alone cannot fit."""
        if self.backend is None:
            raise UsageError("no model is loaded")
        counted = Attachment(file.name, file.text,
                             self.backend.count_tokens([Message("user", render_files("", [file]))]))
        self._check_room([counted])
        return counted

    def _check_room(self, files: Sequence[Attachment]) -> None:
        """Files are never cut to fit: the message is refused, before anything is stored,
        when they leave the model no room to answer (the newest message is never left out,
        so they must fit with the system prompt and the room kept for the reply)."""
        try:
            ctx = self.backend.info().context_length if self.backend is not None else 0
        except Exception:  # noqa: BLE001 - no context size known: the engine will say
            ctx = 0
        if not ctx:
            return
        reserve = min(self.settings.params.max_tokens, max(ctx // 4, 1))
        system = (self.backend.count_tokens([Message("system", self.settings.system_prompt)])
                  if self.settings.system_prompt and self.backend is not None else 0)
        why = too_big(files, ctx - reserve - (system or 0))
        if why:
            raise UsageError(why)

    def _recorder(self, reply: Node) -> ReplyRecorder | None:
        if not self.history.saving or self.conversation_ref is None:
            return None
        from aigc_chat.history_recorder import ReplyRecorder

        rec = ReplyRecorder(self.history.queued, self.conversation_ref, interval=SAVE_INTERVAL,
                            clock=self.clock, author=self.author(), parent=_parent_ref(reply.parent))
        reply.ref = rec.start()
        return rec

    def author(self) -> dict[str, str]:
        """Who answers now: the loaded backend's name and model (the history keeps it with each
        reply, so a conversation that switched models says which one wrote what)."""
        if self.backend is None:
            return {}
        try:
            info = self.backend.info()
            return {"backend": info.name, "model": info.model}
        except Exception:  # noqa: BLE001 - a backend that cannot say: the settings' names
            return {"backend": self.settings.backend, "model": self.settings.model}

    def shown_model(self) -> str:
        """The model the history lists a conversation under: the one loaded (the default
        model's file, say), where the settings may just say "the default" ("")."""
        return self.author().get("model") or self.settings.model

    def _history_gone(self, exc: Exception) -> None:
        """A write found its conversation deleted (writer thread). Told once per conversation,
        and only when it is this one (a late write of one already kept anew is not news)."""
        cid = self.known_id
        if cid is None or cid == self.gone_id:
            return
        store = self.history.store
        if store is not None and store.has_conversation(cid):
            return
        self.gone_id = cid
        if self.on_conversation_gone is not None:
            self.on_conversation_gone(cid)
        elif self.on_history_failure is not None:  # a front end that cannot offer to keep it (one-shot)
            self.on_history_failure(UsageError(f"conversation {cid} was deleted (aigc-chat history delete, "
                                               "or another window) while this ran"))

    def keep_as_new(self) -> None:
        """Store the chat shown here, every branch, as a new conversation (this one was
        deleted elsewhere); the writes are queued like any others and this becomes that
        conversation. UsageError while a reply is still coming (its rows belong to the old
        one) or when nothing can be saved."""
        if not self.history.saving:
            raise UsageError("the history is not being saved: nothing can be kept")
        nodes = sorted(self.tree.walk(), key=lambda n: n.seq)  # as they were made: parents first
        if any(n.live for n in nodes):
            raise UsageError("a reply is still coming: keep the chat once it has ended")
        self.conversation_ref = None
        for node in nodes:
            node.ref = None
        first = next((n for n in nodes if n.role == "user"), nodes[0] if nodes else None)
        if first is None:
            return
        from aigc_chat.labels import title_from

        queued = self.history.queued
        assert queued is not None
        self.conversation_ref = queued.create_conversation(
            title_from(first.content), model=self.shown_model(), backend=self.settings.backend,
            settings=self.settings.to_dict())
        for node in nodes:
            node.ref = queued.add_message(
                self.conversation_ref, node.role, node.content, finish_reason=node.finish_reason,
                stats=node.stats or None, kind=node.kind, meta=node.meta or None,
                attachments=[(f.name, f.text) for f in node.files],
                parent=node.parent.ref if node.parent is not None else None)
        self._save_leaf()

    def _history_failed(self, exc: Exception) -> None:
        if self.on_history_failure is not None:
            self.on_history_failure(exc)

    def close(self, timeout: float | None = None) -> bool:
        """Close the backend (unless it is the caller's) and write what the history still has
        queued (up to `timeout`; the service's own default when None). True when nothing
        queued was left unwritten."""
        for backend in (self.backend, self.spare):
            self._close(backend)
        self.backend = self.spare = None
        return self.history.close() if timeout is None else self.history.close(timeout)


class Turn:
    """One reply in progress. `run(cancel)` yields the model's text pieces as they come and
    keeps the history in step; `plan` and `result` are there once it has started / ended.
    The reply (`reply_node`, in the tree from the start) keeps its text at every end
    (cancelled or failed ones too, when they produced text), so nothing the user saw is lost;
    a failure that produced nothing leaves no reply."""

    def __init__(self, conversation: Conversation, action: TurnAction, user_node: Node,
                 reply_node: Node, recorder: ReplyRecorder | None, *, leaf_before: Node | None = None) -> None:
        self.conversation = conversation
        self.action = action
        self.recorder = recorder
        self.user_node = user_node  # the question answered (a new one, or the same for a regenerate)
        self.reply_node = reply_node
        self.leaf_before = leaf_before  # where the path ended before the turn (see _end)
        self.author = conversation.author()
        self.plan: PromptPlan | None = None
        self.result: GenerationResult | None = None
        self._stream: ChatStream | None = None

    def start(self, cancel: threading.Event | None = None,
              on_progress: Callable[[PromptProgress], None] | None = None) -> PromptPlan:
        """Plan the prompt and start the engine (off the event loop: this counts tokens).
        `on_progress` hears how the engine's prompt reading goes, between its batches."""
        conv = self.conversation
        if conv.backend is None:
            raise UsageError("no model is loaded")
        try:
            self.plan = plan_prompt(conv.backend, conv.settings.system_prompt,
                                    conv.sent_up_to(self.reply_node.parent), conv.settings.params)
            conv.last_plan = self.plan
            self._stream = conv.backend.stream_chat(self.plan.messages, conv.settings.params, cancel, on_progress)
        except BaseException as exc:
            self._end(GenerationResult("", "error", error=str(exc) or type(exc).__name__))
            raise
        return self.plan

    def run(self, cancel: threading.Event | None = None,
            on_progress: Callable[[PromptProgress], None] | None = None) -> Generator[str, None, None]:
        """The reply's text pieces (exactly the model's text: sanitise before showing); those
        of its reasoning are `aigc_chat.reasoning.Reasoning` strings. Ending the iteration
        early (close, Ctrl-C) ends the reply as cancelled and records it."""
        if self._stream is None:
            self.start(cancel, on_progress)
        assert self._stream is not None
        stream = self._stream
        pieces: list[str] = []
        clock = self.conversation.clock
        next_save = clock() + SAVE_INTERVAL
        try:
            for piece in stream:
                yield piece
                if isinstance(piece, Reasoning):
                    continue  # stored with the reply when it ends; never sent back to the model
                pieces.append(piece)
                if self.recorder is not None and clock() >= next_save:
                    next_save = clock() + SAVE_INTERVAL
                    self.recorder.feed("".join(pieces))
                    if self.recorder.check_stop():  # another window asked (aigc_chat.reply_owner)
                        if cancel is None:
                            break
                        cancel.set()
        finally:
            stream.close()
            result = stream.result
            if result is None:  # the engine never ran (closed before its first step)
                result = GenerationResult("".join(pieces), "cancelled")
            self._end(result)

    def stats(self) -> dict[str, Any]:
        """The reply's stats as the history keeps them: who wrote it, and how it went."""
        from aigc_chat.history_recorder import result_stats

        return {**self.author, **(result_stats(self.result) if self.result is not None else {})}

    def consume(self, cancel: threading.Event | None = None) -> GenerationResult:
        for _ in self.run(cancel):
            pass
        assert self.result is not None
        return self.result

    def _end(self, result: GenerationResult) -> None:
        if self.result is not None:
            return
        self.result = result
        reply = self.reply_node
        reply.content, reply.finish_reason, reply.stats = result.text, result.finish_reason, self.stats()
        reply.live = False
        if result.reasoning:
            reply.meta["reasoning"] = result.reasoning
        removed = not result.text and not result.reasoning and result.finish_reason == "error"
        tree = self.conversation.tree
        if removed and tree.contains(reply):
            tree.remove(reply)
        if self.recorder is not None:
            try:
                self.recorder.finish(result)  # queued: never waits (the row goes, when removed)
            except Exception:  # noqa: BLE001 - the writer reports its own failures once
                pass
        before = self.leaf_before
        if removed and self.action == "regenerate" and before is not None and tree.contains(before):
            tree.leaf = before  # the reply it was to replace, not just the newest of its siblings
            self.conversation._save_leaf()  # queued after the row's removal
