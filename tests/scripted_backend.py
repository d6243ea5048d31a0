"""A backend that replays scripted pieces.

For what a real model cannot be made to produce on demand (escape sequences and markup in
its output, engine failures mid-stream, exact token boundaries, a reply held mid-stream
while the test looks at the screen), and for the TUI tests that are about the UI, not the
model (keys, slash commands, scrolling, the history pane): a real model there only costs
seconds per reply and makes the screen depend on its words.
"""

from __future__ import annotations

import threading
from collections.abc import Iterator, Sequence
from typing import Any

from aigc_chat.backends.base import Backend, EngineEnd, EngineStart
from aigc_chat.chat_types import BackendInfo, Message
from aigc_chat.params import GenerationParams


class ScriptedBackend(Backend):
    name = "scripted"

    def __init__(self, pieces: Sequence[str], fail_after: int | None = None,
                 context_length: int = 4096, supported: frozenset[str] | None = None,
                 model: str = "scripted-model") -> None:
        super().__init__(model)
        self.pieces = list(pieces)
        self.fail_after = fail_after
        self.context_length = context_length
        self.seen: list[list[Message]] = []
        self.closed_early = False
        if supported is not None:
            self.supported_params = supported

    def load(self, progress=None) -> None:
        pass

    def info(self) -> BackendInfo:
        return BackendInfo("scripted", self.model or "", self.context_length, "CPU", False)

    def count_tokens(self, messages: Sequence[Message]) -> int:
        return sum(len(m.content.split()) + 4 for m in messages)

    def _generate(self, messages: Sequence[Message], params: GenerationParams,
                  cancel: threading.Event) -> Iterator[object]:
        self.seen.append(list(messages))
        yield EngineStart(self.count_tokens(messages))
        try:
            for i, piece in enumerate(self.pieces):
                if self.fail_after is not None and i == self.fail_after:
                    raise RuntimeError("engine exploded")
                yield piece
        except GeneratorExit:
            self.closed_early = True
            raise
        yield EngineEnd("stop")


class GatedBackend(ScriptedBackend):
    """Scripted pieces, holding before each index in `gates` until its Event is set (or the
    reply is cancelled): the test decides when the reply grows, instead of racing a model."""

    def __init__(self, pieces: Sequence[str], gates: Sequence[int], **kw: Any) -> None:
        super().__init__(pieces, **kw)
        self.gates = {i: threading.Event() for i in gates}

    def release(self, index: int) -> None:
        self.gates[index].set()

    def _generate(self, messages: Sequence[Message], params: GenerationParams,
                  cancel: threading.Event) -> Iterator[object]:
        n = 0
        for item in super()._generate(messages, params, cancel):
            if isinstance(item, str):
                gate = self.gates.get(n)
                n += 1
                while gate is not None and not gate.wait(0.05):
                    if cancel.is_set():
                        return
            yield item
