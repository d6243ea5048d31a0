"""Reasoning split from the answer, while the reply streams, once for every backend.

Reasoning models write their thinking first, between markers (`<think>` … `</think>` and its
relatives), then the answer. Engines hand us text in arbitrary pieces, so a marker can be
split anywhere, and often only the closing marker comes, because the chat template already
wrote the opening one into the prompt. `ReasoningSplitter` has the stop filter's discipline
(aigc_chat.stopseq): it holds back exactly the tail that could still become a marker, so what
it releases is final, and everything it is fed comes out once, as reasoning or as answer.

The rules, chosen so an answer is never cut:
- Only a block at the very start of the reply is reasoning (after whitespace at most). Once
  the answer has begun, a marker is text: a reply that explains `<think>` in prose or in a
  code block keeps it.
- `inside=True` starts in the block: the prompt ended with an opening marker (the template
  opened it), and the reply's first closing marker ends it.
- An opening marker inside the block is text (no nesting); the first closing marker ends it.
- A block that never closes (the reply ended, was cancelled, hit max tokens) stays reasoning:
  `flush()` says so (`unterminated`), and the answer is empty.
- The whitespace between the closing marker and the answer is dropped, as the models' own
  templates do. Whitespace before an opening marker is released at once as answer text (a
  reply's first token is often a newline: it is not held back waiting for what follows).
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass


@dataclass(frozen=True)
class Markers:
    open: str
    close: str


#: The marker pairs the common reasoning families use, tried in this order when a model's
#: template does not say (DeepSeek-R1 and its distills, Qwen3, QwQ, SmolLM3, Phi-4-reasoning
#: and most others: <think>; some fine-tunes: <thinking>; Magistral: [THINK]; the OpenThoughts
#: and Sky-T1 style: <|begin_of_thought|>).
KNOWN: tuple[Markers, ...] = (
    Markers("<think>", "</think>"),
    Markers("<thinking>", "</thinking>"),
    Markers("[THINK]", "[/THINK]"),
    Markers("<|begin_of_thought|>", "<|end_of_thought|>"),
)


class Reasoning(str):
    """A piece of the reply that is reasoning, not answer (a str, so code that only shows
    text still works; code that cares checks `isinstance(piece, Reasoning)`)."""

    __slots__ = ()


def markers_for(template: str | None) -> tuple[Markers, ...]:
    """The markers a model uses, from its chat template where it names them, else all known."""
    if template:
        named = tuple(m for m in KNOWN if m.open in template or m.close in template)
        if named:
            return named
    return KNOWN


def opens_inside(prompt_tail: str, markers: Iterable[Markers]) -> bool:
    """Whether the rendered prompt leaves the reply inside a block: it ends with an opening
    marker (the template wrote it for the model)."""
    tail = prompt_tail.rstrip()
    return any(tail.endswith(m.open) for m in markers)


_START, _THINK, _AFTER, _ANSWER = range(4)


class ReasoningSplitter:
    def __init__(self, markers: Sequence[Markers] = KNOWN, *, inside: bool = False) -> None:
        self.markers = tuple(m for m in markers if m.open and m.close)
        self._state = _THINK if inside and self.markers else _START
        self._close = self.markers[0].close if inside and self.markers else ""
        if inside and len(self.markers) > 1:
            self._close = ""  # any of them may close it: decided when one arrives
        self._held = ""
        self.unterminated = False

    @property
    def thinking(self) -> bool:
        """Inside the reasoning block now (nothing of the answer has come yet)."""
        return self._state == _THINK

    def feed(self, text: str) -> list[str]:
        """Take new model text; return the pieces now final: `Reasoning` ones and plain
        answer strings, in order."""
        out: list[str] = []
        text = self._held + text
        self._held = ""
        while text:
            if self._state == _ANSWER:
                out.append(text)
                break
            if self._state == _START:
                text = self._start(text, out)
            elif self._state == _THINK:
                text = self._think(text, out)
            else:  # _AFTER: whitespace between the block and the answer is dropped
                stripped = text.lstrip()
                if stripped:
                    self._state = _ANSWER
                text = stripped
        return [p for p in out if p]

    def flush(self) -> list[str]:
        """The reply ended: what was held back is final now."""
        held, self._held = self._held, ""
        if self._state == _THINK:
            self.unterminated = True
            return [Reasoning(held)] if held else []
        if self._state == _START:  # the start of a marker that never came
            self._state = _ANSWER
            return [held] if held else []
        return []  # _AFTER holds nothing; _ANSWER never holds

    # -- states ------------------------------------------------------------------------------
    def _start(self, text: str, out: list[str]) -> str:
        body = text.lstrip()
        lead = text[: len(text) - len(body)]
        if lead:
            out.append(lead)  # whitespace is shown at once (it is never part of a marker)
        if not body:
            return ""  # still at the start: a block may open after it
        for m in self.markers:
            if body.startswith(m.open):
                self._state, self._close = _THINK, m.close
                return body[len(m.open):]
        if any(m.open.startswith(body) for m in self.markers):
            self._held = body  # could still become an opening marker
            return ""
        self._state = _ANSWER
        out.append(body)
        return ""

    def _think(self, text: str, out: list[str]) -> str:
        closes = (self._close,) if self._close else tuple(m.close for m in self.markers)
        first, close = -1, ""
        for c in closes:
            i = text.find(c)
            if i != -1 and (first == -1 or i < first):
                first, close = i, c
        if first != -1:
            out.append(Reasoning(text[:first]))
            self._state = _AFTER
            return text[first + len(close):]
        keep = _partial_suffix(text, closes)
        out.append(Reasoning(text[: len(text) - keep]))
        self._held = text[len(text) - keep:]
        return ""


def _partial_suffix(text: str, marks: Iterable[str]) -> int:
    """Length of the longest tail of `text` that is a proper prefix of one of `marks`."""
    best = 0
    for mark in marks:
        for k in range(min(len(mark) - 1, len(text)), best, -1):
            if text.endswith(mark[:k]):
                best = k
                break
    return best
