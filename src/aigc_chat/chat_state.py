"""The life of one chat on screen, without Textual: what it is doing (its phase), the
messages typed while it was busy, the running reply's job number and cancel event, and the
one rule every key, command and picker asks before it acts (`why_busy`).

The screen (tui/chat_screen.py) owns one `ChatState` and never writes the phase itself: it
calls the transitions here (`loading`, `loaded`, `begin_turn`, `open_started` ...), and a
watcher it registered redraws the status bar from `status_facts`, which reads this state and
the conversation core only (never copies carried in widgets or events), so the branch count,
the context, the model's one name and the role are current after every change.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from enum import StrEnum
from typing import TYPE_CHECKING, Literal

if TYPE_CHECKING:
    from aigc_chat.conversation import Conversation


class Phase(StrEnum):
    """What the chat is doing; a str, so it reads as the word the status bar shows."""

    LOADING = "loading"  # a model is being loaded (at start, /model, F4, a role, an open)
    IDLE = "idle"
    GENERATING = "generating"  # a reply streams
    OPENING = "opening"  # a stored conversation is being read in
    COMPACTING = "compacting"  # a summary is being written (tui/compact_step.py)
    LOAD_FAILED = "load failed"  # no model: pick another


# What a key, command or picker is about to do (each has its own wording when refused).
Action = Literal["send", "edit", "regenerate", "branch", "new", "open", "delete_current", "keep",
                 "switch_model", "pick_model", "role", "compact", "gan"]

ENGINE_BUSY = (Phase.GENERATING, Phase.COMPACTING)
WAIT = "wait for the reply to end (Esc stops it)"
# "send" is never refused while busy: the message is queued and sent when this happens
_SENDS_WHEN = {Phase.GENERATING: "the reply ends", Phase.OPENING: "the conversation is open",
               Phase.COMPACTING: "the compaction ends", Phase.LOADING: "the model is loaded"}


@dataclass(frozen=True)
class EngineFacts:
    """What the loaded engine says about itself (read once, when it is attached)."""

    device: str = ""
    context_size: int | None = None


@dataclass(frozen=True)
class StatusFacts:
    """Everything the status bar shows, in one snapshot (equal snapshots: no redraw)."""

    role: str = ""
    backend: str = ""
    model: str = ""
    device: str = ""
    context_used: int | None = None
    context_size: int | None = None
    branches: int = 0
    doing: str = Phase.LOADING.value


class ChatState:
    """One chat on screen (module notes). The only writer of `phase`."""

    def __init__(self) -> None:
        self.phase = Phase.LOADING
        self.detail = ""  # a shown-only form of the phase: "loading: reading the file", "stopping"
        self.opening = 0  # conversations being read in; a message sent meanwhile is queued
        self.queue: list[str] = []  # messages typed while busy, sent in order once idle
        self.job = 0  # the running reply's number: events of an older one are ignored
        self.cancel: threading.Event | None = None  # set to stop the running reply
        self.turn_done: threading.Event | None = None  # set when the running reply's worker ends
        self.engine = EngineFacts()
        self.load_error: str | None = None
        # Messages the user submitted (Enter in the message box, slash commands included), and
        # the submissions, queued sends and turns being handled right now: between Enter and
        # `begin_turn` the phase is still idle, so "idle" alone does not mean "done" (`settled`).
        self.submitted = 0
        self.in_hand = 0
        self._watchers: list[Callable[[ChatState], None]] = []

    # -- watching ------------------------------------------------------------------------------
    def watch(self, callback: Callable[[ChatState], None]) -> None:
        """Call `callback(self)` after every change (the screen redraws its status from it)."""
        self._watchers.append(callback)

    def _changed(self) -> None:
        for callback in self._watchers:
            callback(self)

    def _set(self, phase: Phase, detail: str = "") -> None:
        self.phase, self.detail = phase, detail
        self._changed()

    @property
    def shown(self) -> str:
        """The words for the status bar."""
        return self.detail or self.phase.value

    @property
    def engine_busy(self) -> bool:
        """A reply streams or a compaction runs: the model is in use and the path must not
        change under it (no edit, new conversation, model switch)."""
        return self.phase in ENGINE_BUSY

    @property
    def generating(self) -> bool:
        return self.phase is Phase.GENERATING

    @contextmanager
    def handling(self) -> Iterator[None]:
        """Around the handling of a submission, a queued send or a turn's start: while it
        runs, the chat is not `settled` even though the phase may still read idle."""
        self.in_hand += 1
        try:
            yield
        finally:
            self.in_hand -= 1

    @property
    def settled(self) -> bool:
        """Nothing running and nothing waiting: idle (or without a model), no message queued,
        none being handled, no conversation being read in. What a test or a script waits for
        after sending, instead of a pause."""
        return (self.phase in (Phase.IDLE, Phase.LOAD_FAILED) and not self.queue and not self.in_hand
                and not self.opening)

    # -- the one rule ----------------------------------------------------------------------------
    def why_busy(self, action: Action) -> str | None:
        """Why `action` cannot be done now (a line to show), or None when it can. For "send"
        the answer says when a message typed now will be sent (it is queued, never refused)."""
        p = self.phase
        if action == "send":
            return _SENDS_WHEN.get(p)
        if action == "keep":
            return "a reply is streaming" if p is Phase.GENERATING else None
        if action == "regenerate":
            if p is Phase.IDLE:
                return None
            return {Phase.GENERATING: "wait for the current reply (Esc stops it)",
                    Phase.OPENING: "wait: the conversation is still opening"}.get(p, "no model is ready")
        if action == "branch":
            return None if p in (Phase.IDLE, Phase.LOAD_FAILED) else WAIT
        if action == "compact":
            if p is Phase.GENERATING:
                return "a reply is streaming: compact once it has finished (Esc stops it)"
            return None if p is Phase.IDLE else "no model is ready to write the summary"
        if action in ("pick_model", "switch_model", "role") and p is Phase.LOADING and not self.engine_busy:
            # one load at a time, whatever the route: two would race for the engine
            what = {"pick_model": "pick again", "switch_model": "switch"}.get(action, "pick a role")
            return f"a model is loading; {what} when it is ready"
        if not self.engine_busy:
            return None
        return {"edit": "a reply is still streaming: Esc stops it",
                "delete_current": "wait for the reply to end before deleting it",
                "switch_model": f"{WAIT} before switching model",
                "pick_model": f"{WAIT} before switching model",
                "role": f"{WAIT} before starting another conversation",
                "gan": f"{WAIT}, then /gan"}.get(action, WAIT)

    # -- loading a model -----------------------------------------------------------------------
    def loading(self, detail: str = "", *, engine_stays: bool = False) -> Phase:
        """A load starts (the previous phase is returned, for a switch that may fail and
        keep the old model); `engine_stays`: the old model answers until the new one is in."""
        previous = self.phase
        if not engine_stays:
            self.load_error = None
            self.engine = EngineFacts()
        self._set(Phase.LOADING, detail)
        return previous

    def progress(self, text: str) -> None:
        """How the load goes, shown while it is loading."""
        if self.phase is Phase.LOADING:
            self._set(Phase.LOADING, f"loading: {text}")

    def loaded(self, engine: EngineFacts | None = None) -> None:
        if engine is not None:
            self.engine = engine
        self._set(Phase.OPENING if self.opening else Phase.IDLE)

    def load_failed(self, reason: str) -> list[str]:
        """No model: the messages queued for it are handed back (unsent, never dropped)."""
        self.load_error = reason
        unsent, self.queue = self.queue, []
        self._set(Phase.LOAD_FAILED)
        return unsent

    def restore(self, phase: Phase) -> None:
        """Back to `phase` after a switch that failed (the old model still answers)."""
        if phase is Phase.OPENING and not self.opening:
            phase = Phase.IDLE
        self._set(phase)

    # -- a reply -------------------------------------------------------------------------------
    def begin_turn(self) -> tuple[int, threading.Event, threading.Event]:
        """A reply starts: its job number, cancel event and done event."""
        self.job += 1
        self.cancel = threading.Event()
        self.turn_done = threading.Event()
        self._set(Phase.GENERATING)
        return self.job, self.cancel, self.turn_done

    def turn_ended(self) -> None:
        self._set(Phase.IDLE)

    def stop_turn(self) -> list[str] | None:
        """Esc while a reply streams: it stops, and what was queued behind it is not sent but
        handed back (for the prompt box); None when no reply was streaming."""
        if self.phase is not Phase.GENERATING or self.cancel is None:
            return None
        self.cancel.set()
        unsent, self.queue = self.queue, []
        self._set(Phase.GENERATING, "stopping")
        return unsent

    def hand_over(self, has_model: bool) -> tuple[threading.Event | None, threading.Event | None, list[str]] | None:
        """The terminal has gone: the running reply's (done, cancel) events and the queued
        messages, let go of here (None when there is nothing to finish)."""
        running = self.phase is Phase.GENERATING and self.turn_done is not None and not self.turn_done.is_set()
        queued = list(self.queue) if has_model else []
        if not running and not queued:
            return None
        self.queue.clear()
        done, cancel = (self.turn_done, self.cancel) if running else (None, None)
        self.cancel = None
        return done, cancel, queued

    # -- compaction ------------------------------------------------------------------------------
    def begin_compaction(self) -> None:
        self._set(Phase.COMPACTING)

    def compaction_ended(self, *, failed: bool = False) -> None:
        if failed:
            self.queue.clear()
        self._set(Phase.IDLE)

    # -- opening a stored conversation -----------------------------------------------------------
    def open_started(self) -> None:
        self.opening += 1
        if self.phase is Phase.IDLE:
            self._set(Phase.OPENING)

    def open_ended(self) -> None:
        self.opening -= 1
        if not self.opening and self.phase is Phase.OPENING:
            self._set(Phase.IDLE)

    # -- the queue -------------------------------------------------------------------------------
    def queue_message(self, text: str) -> None:
        self.queue.append(text)

    def next_queued(self) -> str | None:
        """The next queued message, taken off the queue, once nothing is busy."""
        if self.queue and self.phase is Phase.IDLE and not self.opening:
            return self.queue.pop(0)
        return None

    def redraw(self) -> None:
        """Something the status shows changed outside this state (the conversation core)."""
        self._changed()


def model_label(conversation: Conversation) -> str:
    """The model as the status bar names it: the one the history lists the conversation under
    (the loaded model, else the one set), by the label every other place uses."""
    from aigc_chat.labels import model_label as label
    from aigc_chat.loader import LOCAL_BACKENDS

    if conversation.settings.backend in LOCAL_BACKENDS:
        from aigc_chat.default_model import DEFAULT_NAME

        unset = DEFAULT_NAME
    else:
        unset = "server default"
    return label(conversation.shown_model(), unset=unset)


def context_used(state: ChatState, conversation: Conversation) -> int | None:
    """Tokens of the context in use, from the core's nodes: the last reply on the path
    (its prompt and its own tokens), or, while one streams, the prompt it was sent."""
    plan = conversation.last_plan
    if state.generating and plan is not None and plan.prompt_tokens is not None:
        return plan.prompt_tokens
    for node in reversed(conversation.path()):
        prompt = node.stats.get("prompt_tokens") if node.role == "assistant" else None
        if isinstance(prompt, int) and prompt:
            done = node.stats.get("completion_tokens")
            return prompt + (done if isinstance(done, int) else 0)
    return None


def status_facts(state: ChatState, conversation: Conversation, note: str = "") -> StatusFacts:
    """The status bar's snapshot; `note` goes before what the chat is doing ("history off")."""
    return StatusFacts(role=conversation.settings.role, backend=conversation.settings.backend,
                       model=model_label(conversation), device=state.engine.device,
                       context_used=context_used(state, conversation),
                       context_size=state.engine.context_size,
                       branches=conversation.tree.branch_count(), doing=note + state.shown)
