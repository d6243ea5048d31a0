"""The plain records that pass between the conversation core, the front ends and the engines.

They live in the core rather than beside the Backend interface (backends/base.py): a
message, a result, a backend's description and prompt-reading progress are data that every
part shares, and with them here the core needs nothing from backends/ but the interface it
drives (`Backend`, `ChatStream`) and the registry that finds an engine by name
(tests/test_import_contracts.py holds it to that). backends/base.py re-exports them, so a
plug-in written against `aigc_chat.backends.base.Message` keeps working.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any, Literal

Role = Literal["system", "user", "assistant"]
FinishReason = Literal["stop", "length", "cancelled", "error"]
ProgressCallback = Callable[[str], None]


@dataclass(frozen=True)
class Message:
    role: Role
    content: str

    def to_dict(self) -> dict[str, str]:
        return {"role": self.role, "content": self.content}


@dataclass(frozen=True)
class BackendInfo:
    """What a backend tells the status bar, `doctor` and `--verbose` about itself."""

    name: str
    model: str
    context_length: int
    device: str
    gpu_offload: bool
    details: dict[str, Any] = field(default_factory=dict)


@dataclass
class GenerationResult:
    """The record that closes every stream, whatever happened."""

    text: str
    finish_reason: FinishReason
    prompt_tokens: int = 0
    completion_tokens: int = 0
    time_to_first_token: float | None = None
    decode_tokens_per_s: float | None = None
    total_time: float = 0.0
    error: str | None = None
    stop_sequence: str | None = None
    warnings: list[str] = field(default_factory=list)
    # A reasoning model's thinking, kept apart from `text` (the answer, which alone is shown,
    # stored as the reply and sent back in later turns); its tokens count in completion_tokens
    # and max_tokens too. time_to_first_token is the answer's; thinking_time the block's.
    reasoning: str = ""
    reasoning_tokens: int = 0
    thinking_time: float | None = None
    # How the prompt was read, for engines that say (PromptProgress): of prompt_tokens,
    # cached_tokens came from the cache (an earlier turn, a kept branch) and the rest were
    # read at prompt_tokens_per_s. None: the engine did not say.
    cached_tokens: int | None = None
    prompt_read: int | None = None  # tokens read (fewer than prompt - cached when cancelled while reading)
    prompt_time: float | None = None
    prompt_tokens_per_s: float | None = None

    def usage(self) -> dict[str, int | None]:
        return {
            "prompt_tokens": self.prompt_tokens,
            "cached_tokens": self.cached_tokens,
            "completion_tokens": self.completion_tokens,
            "total_tokens": self.prompt_tokens + self.completion_tokens,
            "reasoning_tokens": self.reasoning_tokens,
        }

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)



@dataclass(frozen=True)
class PromptProgress:
    """Optionally yielded by `_generate()` while the prompt is read, before the first token:
    first at once (nothing read yet), then after each batch. A long prompt takes minutes on a
    CPU; this is what lets a front end say so, and lets a cancel stop between batches (what
    was read stays cached for the next try)."""

    done: int  # prompt tokens in the cache now, the reused ones included
    total: int
    cached: int  # tokens that were already in the cache when reading began
    elapsed: float  # seconds spent reading so far

    @property
    def read(self) -> int:
        return self.done - self.cached

    @property
    def rate(self) -> float | None:
        return self.read / self.elapsed if self.read > 0 and self.elapsed > 0 else None

    @property
    def seconds_left(self) -> float | None:
        rate = self.rate
        return (self.total - self.done) / rate if rate else None

    def text(self) -> str:
        """'reading 3,000 / 7,218 tokens · 410 tok/s · ~10 s left' (cached ones said apart)."""
        parts = [f"reading {self.done:,} / {self.total:,} tokens"]
        if self.cached:
            parts[0] += f" ({self.cached:,} cached)"
        rate, left = self.rate, self.seconds_left
        if rate:
            parts.append(f"{rate:,.0f} tok/s")
        if left is not None:
            parts.append(f"~{left:,.0f} s left" if left >= 1 else "<1 s left")
        return " · ".join(parts)
