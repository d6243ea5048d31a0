"""The messages worker threads post to the screen (Textual's post_message is thread-safe).

Each carries the job number it belongs to, so a reply that was replaced (regenerate, a new
conversation) cannot touch the screen after it."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message
from textual.notifications import SeverityLevel

from aigc_chat.backends.base import Backend
from aigc_chat.config import Config
from aigc_chat.conversation import PromptPlan
from aigc_chat.tree import Node


@dataclass
class ModelProgress(Message):
    text: str


@dataclass
class ModelLoaded(Message):
    backend: Backend
    models: list[str]


@dataclass
class ModelFailed(Message):
    reason: str


@dataclass
class ReplyStarted(Message):
    job: int
    plan: PromptPlan


@dataclass
class ReplyProgress(Message):
    """The engine is still reading the prompt: what it has read, its rate, the time left."""

    job: int
    text: str  # "reading 3,000 / 7,218 tokens · 410 tok/s · ~10 s left" (no model text in it)


@dataclass
class ReplyDelta(Message):
    job: int
    shown: str  # sanitised answer text to append
    raw_so_far: str  # the model's answer text so far, as stored
    thinking: str = ""  # sanitised reasoning text to append (reasoning models, before the answer)


@dataclass
class ReplyFinished(Message):
    """The reply `node` has ended: the screen redraws it from the node, the core's record of
    its text, stats, finish reason and reasoning (nothing of them is copied in here). A reply
    that failed before saying anything is no longer in the tree (`MessageTree.contains`).
    `warnings` are the engine's notes on the way (shown once, never stored)."""

    job: int
    node: Node
    warnings: tuple[str, ...] = ()


@dataclass
class ReasoningShown(Message):
    """The user expanded (True) or collapsed (False) a reply's reasoning: the new default,
    remembered as `[tui] show_reasoning` (posted by AssistantMessage, bubbles to the app)."""

    shown: bool


@dataclass
class ReplyFailed(Message):
    job: int
    reason: str


@dataclass
class HistoryFailed(Message):
    """Posted (from the writer thread) the first time saving fails; nothing more is saved."""

    reason: str
    path: str


@dataclass
class ConversationDeleted(Message):
    """Posted (from the writer thread) when the conversation shown was deleted elsewhere (another
    window, `aigc-chat history delete`); saving goes on, the screen offers to keep the chat."""

    conversation_id: int


@dataclass
class HistoryActionDone(Message):
    """A rename, delete or export the user asked for has run; `error` says why not."""

    action: str
    conversation_id: int
    error: str = ""
    detail: str = ""


@dataclass
class Notice(Message):
    """A notification for the UI thread from another thread (config writes)."""

    text: str
    severity: SeverityLevel = "information"


@dataclass
class DefaultsSaved(Message):
    """"Save as default" wrote config.toml (on the config-writer thread): the running config
    with the new defaults, for the UI thread to adopt."""

    config: Config
    path: str


@dataclass
class BranchRequest(Message):
    """A focused message asked to move to an alternative ("switch", by `step`), to edit it
    ("edit") or to fork the conversation there ("fork"); the chat screen does it."""

    widget: Any  # the ChatMessage (typed loosely: chat_view imports this module)
    action: str
    step: int = 0
