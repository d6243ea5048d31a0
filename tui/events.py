"""Messages the worker threads post to the app (Textual's post_message is thread-safe)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual.message import Message


@dataclass
class ModelProgress(Message):
    text: str


@dataclass
class ModelLoaded(Message):
    backend: Any
    models: list[str]


@dataclass
class ModelFailed(Message):
    reason: str


@dataclass
class ReplyStarted(Message):
    job: int
    plan: Any  # aigc_chat.session.PromptPlan


@dataclass
class ReplyDelta(Message):
    job: int
    shown: str  # sanitised text to append
    raw_so_far: str  # the model's text so far, as stored


@dataclass
class ReplyFinished(Message):
    job: int
    result: Any  # GenerationResult
    shown_tail: str


@dataclass
class ReplyFailed(Message):
    job: int
    reason: str
