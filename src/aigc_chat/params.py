"""Generation parameters shared by every backend, validated in one place.

Front ends build a `GenerationParams` from config, flags, slash commands or the settings
pane; all of them go through `validate()` so a bad value gets the same message everywhere.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass, field, replace
from typing import Any

from aigc_chat.errors import ParamError

# name -> (low, high, kind); None means unbounded on that side.
_NUMERIC: dict[str, tuple[float | None, float | None, type]] = {
    "temperature": (0.0, 2.0, float),
    "top_p": (0.0, 1.0, float),
    "top_k": (0, 1_000_000, int),  # passed to llama.cpp as a 32-bit int; no vocabulary is larger
    "min_p": (0.0, 1.0, float),
    "repeat_penalty": (0.0, 10.0, float),
    "max_tokens": (1, 1_000_000, int),
    "seed": (0, 2**32 - 1, int),
}

# Every stop sequence is looked for in each piece of streamed text (aigc_chat.stopseq): 10,000
# of them cost 5-17 s before the first token. A real list is a handful of short strings.
STOP_MAX_COUNT = 32
STOP_MAX_CHARS = 256

PARAM_NAMES: tuple[str, ...] = (
    "temperature", "top_p", "top_k", "min_p", "repeat_penalty", "max_tokens", "stop", "seed", "thinking",
)
_TRUE, _FALSE = ("on", "true", "yes", "1"), ("off", "false", "no", "0")


@dataclass(frozen=True)
class GenerationParams:
    """Sampling knobs. Defaults are those of llama.cpp's CLI, except a larger max_tokens."""

    temperature: float = 0.8
    top_p: float = 0.95
    top_k: int = 40
    min_p: float = 0.05
    repeat_penalty: float = 1.0
    max_tokens: int = 512
    stop: tuple[str, ...] = field(default_factory=tuple)
    seed: int | None = None
    # A reasoning model thinks before it answers; False asks it not to, where its chat template
    # can (Qwen3's enable_thinking) or the server can (chat_template_kwargs).
    thinking: bool = True

    def validate(self) -> GenerationParams:
        """Return a normalised copy, or raise ParamError naming the field and the range."""
        values: dict[str, Any] = {}
        for name in PARAM_NAMES:
            values[name] = coerce_param(name, getattr(self, name))
        return GenerationParams(**values)

    def with_updates(self, **changes: Any) -> GenerationParams:
        """Copy with some fields changed and validated (used by /temp, the settings pane...)."""
        return replace(self, **changes).validate()

    def to_dict(self) -> dict[str, Any]:
        d = asdict(self)
        d["stop"] = list(self.stop)
        return d


def coerce_param(name: str, value: Any) -> Any:
    """Check one parameter value; strings are parsed so flags and slash commands can share it."""
    if name == "stop":
        if value is None:
            return ()
        if isinstance(value, str):
            value = (value,)
        if not isinstance(value, (list, tuple)):
            raise ParamError("stop: must be a list of strings")
        out: dict[str, None] = {}  # ordered, and a repeat costs nothing to find
        for s in value:
            if not isinstance(s, str):
                raise ParamError("stop: must be a list of strings")
            if s == "":
                raise ParamError("stop: a stop sequence cannot be empty")
            if len(s) > STOP_MAX_CHARS:
                raise ParamError(f"stop: a stop sequence is at most {STOP_MAX_CHARS} characters, got one of {len(s):,}")
            out[s] = None
        if len(out) > STOP_MAX_COUNT:
            raise ParamError(f"stop: at most {STOP_MAX_COUNT} stop sequences, got {len(out):,}")
        return tuple(out)
    if name == "thinking":
        if isinstance(value, bool):
            return value
        text = str(value).strip().lower()
        if text in _TRUE or text in _FALSE:
            return text in _TRUE
        raise ParamError(f"thinking: expected on or off, got {value!r}")
    if name not in _NUMERIC:
        raise ParamError(f"unknown generation parameter: {name}")
    low, high, kind = _NUMERIC[name]
    if name == "seed" and (value is None or value == ""):
        return None
    if isinstance(value, bool):
        raise ParamError(f"{name}: expected a number, got {value!r}")
    if isinstance(value, str):
        text = value.strip()
        try:
            value = int(text) if kind is int else float(text)
        except ValueError:
            what = "an integer" if kind is int else "a number"
            raise ParamError(f"{name}: expected {what}, got {text!r}") from None
    if kind is int:
        if isinstance(value, float):
            if not value.is_integer():
                raise ParamError(f"{name}: expected an integer, got {value!r}")
            value = int(value)
        if not isinstance(value, int):
            raise ParamError(f"{name}: expected an integer, got {value!r}")
    else:
        if not isinstance(value, (int, float)):
            raise ParamError(f"{name}: expected a number, got {value!r}")
        value = float(value)
        if math.isnan(value) or math.isinf(value):
            raise ParamError(f"{name}: expected a finite number, got {value!r}")
    if low is not None and value < low:
        raise ParamError(f"{name}: must be {_range(low, high)} (got {value})")
    if high is not None and value > high:
        raise ParamError(f"{name}: must be {_range(low, high)} (got {value})")
    return value


def _range(low: float | None, high: float | None) -> str:
    if high is None:
        return f">= {low}"
    return f"between {low} and {high}"
