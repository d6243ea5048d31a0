"""A chat session: the conversation, its settings, and the backend that answers it.

Both front ends (TUI and one-shot CLI) talk to a ChatSession, never to a backend directly:
this is where the system prompt is attached, where old turns are left out when the
conversation outgrows the model's context, and where a finished reply joins the history.
"""

from __future__ import annotations

import threading
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field

from aigc_chat.backends.base import Backend, ChatStream, GenerationResult, Message
from aigc_chat.errors import UsageError
from aigc_chat.params import GenerationParams


@dataclass
class PromptPlan:
    """What will be sent: the messages, and how many old messages were left out to fit."""

    messages: list[Message]
    dropped: int = 0
    prompt_tokens: int | None = None


@dataclass
class ChatSession:
    backend: Backend
    params: GenerationParams = field(default_factory=GenerationParams)
    system_prompt: str = ""
    messages: list[Message] = field(default_factory=list)
    # Called with (user or assistant Message, GenerationResult | None) as turns complete.
    listeners: list[Callable[[Message, GenerationResult | None], None]] = field(default_factory=list)
    last_plan: PromptPlan | None = None

    def plan(self) -> PromptPlan:
        """The messages to send, oldest turns left out until the prompt leaves room to answer."""
        system = [Message("system", self.system_prompt)] if self.system_prompt else []
        turns = list(self.messages)
        try:
            ctx = self.backend.info().context_length
        except Exception:
            ctx = 0
        count = self.backend.count_tokens(system + turns) if ctx else None
        if count is None:
            return PromptPlan(system + turns, 0, None)
        reserve = min(self.params.max_tokens, max(ctx // 4, 1))
        dropped = 0
        # Drop whole exchanges from the front; the last message (the new question) stays.
        while count > ctx - reserve and len(turns) > 1:
            cut = 2 if len(turns) > 2 and turns[0].role == "user" and turns[1].role == "assistant" else 1
            turns = turns[cut:]
            dropped += cut
            count = self.backend.count_tokens(system + turns) or 0
        return PromptPlan(system + turns, dropped, count)

    def send(self, text: str, cancel: threading.Event | None = None) -> "TurnStream":
        """Add a user message and start the reply."""
        if not text.strip():
            raise UsageError("empty message")
        msg = Message("user", text)
        self.messages.append(msg)
        self._notify(msg, None)
        return self._reply(cancel)

    def regenerate(self, cancel: threading.Event | None = None) -> "TurnStream":
        """Throw away the last reply and answer the last user message again."""
        if self.messages and self.messages[-1].role == "assistant":
            self.messages.pop()
        if not self.messages or self.messages[-1].role != "user":
            raise UsageError("nothing to regenerate")
        return self._reply(cancel)

    def edit_last_user(self, text: str, cancel: threading.Event | None = None) -> "TurnStream":
        """Replace the last user message (dropping the reply to it) and answer again."""
        while self.messages and self.messages[-1].role == "assistant":
            self.messages.pop()
        if not self.messages:
            raise UsageError("there is no message to edit")
        self.messages.pop()
        return self.send(text, cancel)

    def _reply(self, cancel: threading.Event | None) -> "TurnStream":
        plan = self.plan()
        self.last_plan = plan
        stream = self.backend.stream_chat(plan.messages, self.params, cancel)
        return TurnStream(self, stream, plan)

    def _finish(self, result: GenerationResult) -> None:
        msg = Message("assistant", result.text)
        if result.text or result.finish_reason != "error":
            self.messages.append(msg)
        self._notify(msg, result)

    def _notify(self, msg: Message, result: GenerationResult | None) -> None:
        for listener in self.listeners:
            listener(msg, result)


class TurnStream:
    """A reply in progress: iterate for deltas; the reply joins the session when it ends
    (also when cancelled or failed, so nothing the user saw is lost)."""

    def __init__(self, session: ChatSession, stream: ChatStream, plan: PromptPlan) -> None:
        self.session = session
        self.stream = stream
        self.plan = plan
        self._done = False

    @property
    def result(self) -> GenerationResult | None:
        return self.stream.result

    def cancel(self) -> None:
        self.stream.cancel()

    def __iter__(self) -> Iterator[str]:
        try:
            yield from self.stream
        finally:
            self._close()

    def consume(self) -> GenerationResult:
        for _ in self:
            pass
        assert self.stream.result is not None
        return self.stream.result

    def _close(self) -> None:
        if self._done:
            return
        self._done = True
        if self.stream.result is None:  # never iterated, or closed before it started
            self.stream._iter.close()
        if self.stream.result is not None:
            self.session._finish(self.stream.result)
