"""The one interface both front ends use to talk to any engine.

A backend implements `_generate()`, a plain iterator of per-token text pieces. Everything
that must behave the same for every engine lives here instead: UTF-8 decoding of raw token
bytes, stop sequences, cancellation, timing, the result record, and the check that a backend
honours the parameters it is given. Whatever the stream yields, joined, is the result's text.

A backend gets everything it needs through `_generate(messages, params, cancel)`: nothing is
passed on the side, so a plug-in sees exactly what the built-in engines see.
"""

from __future__ import annotations

import codecs
import inspect
import threading
import time
import warnings
from abc import ABC, abstractmethod
from collections.abc import Callable, Generator, Iterator, Mapping, Sequence
from dataclasses import dataclass
from functools import lru_cache
from typing import Any, ClassVar, Literal, NamedTuple, cast

# The records a stream takes and gives are the core's (a plug-in may still import them from here).
from aigc_chat.chat_types import BackendInfo, FinishReason, GenerationResult, Message, ProgressCallback, PromptProgress
from aigc_chat.errors import AigcError, ParamError, UsageError
from aigc_chat.params import PARAM_NAMES, GenerationParams
from aigc_chat.reasoning import KNOWN, Markers, Reasoning, ReasoningSplitter, markers_for, opens_inside
from aigc_chat.stopseq import StopFilter


@dataclass(frozen=True)
class EngineEnd:
    """Yielded last by `_generate()` when the engine itself ended the text."""

    finish_reason: Literal["stop", "length"]
    prompt_tokens: int | None = None
    completion_tokens: int | None = None


@dataclass(frozen=True)
class EngineStart:
    """Optionally yielded first by `_generate()` once the prompt size is known.
    `reasoning_open`: the rendered prompt ends inside a reasoning block (the chat template
    opened it for the model), so the reply starts as reasoning."""

    prompt_tokens: int
    reasoning_open: bool = False


@dataclass(frozen=True)
class Option:
    """One backend option in config.toml: its default, its type and a line of help."""

    default: Any
    kind: type | tuple[type, ...]
    help: str
    check: Callable[[Any], str | None] | None = None  # returns a reason when invalid


# Limits for numbers that reach native code. llama.cpp keeps at most 512 threads
# (GGML_MAX_N_THREADS) and segfaults past it; its counts are 32-bit. No real value comes near.
MAX_THREADS = 512
MAX_CONTEXT = 1 << 24  # 16M tokens: past the longest context any released model has


def int_range(low: int, high: int, *, zero_means: str = "") -> Callable[[Any], str | None]:
    """An Option check for an integer in [low, high] (or 0, when `zero_means` names what 0 is)."""
    def check(v: Any) -> str | None:
        if (zero_means and v == 0) or low <= v <= high:
            return None
        if zero_means:
            return f"must be 0 ({zero_means}) or from {low} to {high}"
        return f"must be from {low} to {high}"

    return check


class DoctorLine(NamedTuple):
    """One `aigc-chat doctor` row. `problem`, when set, says why this backend cannot run
    here; doctor reports it (and exits 1) only for the backend the config uses."""

    key: str
    value: str
    problem: str = ""


def fit_prompt(
    tokenize: Callable[[Sequence[Message]], list[int]], messages: Sequence[Message], n_ctx: int,
) -> list[int]:
    """The prompt's token ids, refused in one line when they leave no room for a reply, the
    same words from every local engine (llama.cpp would fail deep inside, torch would run
    past its KV cache)."""
    tokens = tokenize(messages)
    if len(tokens) >= n_ctx:
        raise UsageError(
            f"the conversation ({len(tokens)} tokens) does not fit the context ({n_ctx} tokens)"
        )
    return tokens


class Backend(ABC):
    """Base class for engines. Subclasses set `name`, `OPTIONS` and implement the abstract methods.

    Instances are used from one thread at a time (the front end's worker); `cancel` may be
    set from any thread and takes effect before the next token is shown.
    """

    name: ClassVar[str] = ""
    # Parameters this engine can honour. Others with a non-default value produce a warning.
    # A class default; an instance may narrow it from its options (the OpenAI backend does).
    supported_params: frozenset[str] = frozenset(PARAM_NAMES)
    OPTIONS: ClassVar[dict[str, Option]] = {}

    def __init__(self, model: str | None, options: dict[str, Any] | None = None) -> None:
        self.model = model
        self.options: dict[str, Any] = {k: o.default for k, o in self.OPTIONS.items()}
        self.options.update(options or {})
        # One-line notes from loading that the user should see once (a model file's context
        # length set aside as implausible): the front ends print or show them after load().
        self.notices: list[str] = []

    # -- what a backend must provide -------------------------------------------------
    @abstractmethod
    def load(self, progress: ProgressCallback | None = None) -> None:
        """Load the model; raise an AigcError subclass with one clear line on failure."""

    @abstractmethod
    def info(self) -> BackendInfo:
        """Describe the loaded backend."""

    @abstractmethod
    def _generate(
        self, messages: Sequence[Message], params: GenerationParams, cancel: threading.Event
    ) -> Iterator[str | bytes | EngineStart | EngineEnd | PromptProgress]:
        """Yield one piece per generated token (may be empty), optionally EngineStart
        first, PromptProgress while the prompt is read, and EngineEnd last. Closing the
        iterator must stop the engine.

        A piece is text (str) or the token's raw bytes, one kind for the whole reply: a
        token may end inside a UTF-8 sequence, so local engines yield bytes and ChatStream
        decodes them incrementally, flushing at every end (stop, length, cancel, error), so
        that an incomplete sequence left at the end shows as U+FFFD rather than vanishing.

        `cancel` is the stream's own event, set from any thread. ChatStream already looks at
        it between pieces; an engine that can wait a long time for its next piece (a server
        that has gone quiet) watches it too and returns at once when it is set."""

    # -- optional ---------------------------------------------------------------------
    def count_tokens(self, messages: Sequence[Message]) -> int | None:
        """Prompt size in tokens for these messages, or None if the engine cannot tell."""
        return None

    def reasoning_markers(self) -> tuple[Markers, ...]:
        """The markers this model puts around its reasoning: a backend that knows the model's
        template narrows them (aigc_chat.reasoning.markers_for); the default is every known
        family. A backend that hands reasoning over apart (`Reasoning` items) needs none."""
        return KNOWN

    def format_stops(self) -> tuple[str, ...]:
        """Stop strings the prompt format needs besides the model's end-of-generation token,
        added to every turn's stops by ChatStream. A backend that renders one of our built-in
        templates (aigc_chat.templates.BUILTIN_STOPS) names them: `plain` and `llama-2` have
        no end-of-turn token, so a model would go on to write the next "\\nUser:" itself. The
        default is none (a server, or a model file's own template, ends its turns)."""
        return ()

    def list_models(self) -> list[str]:
        """Models this backend can offer, so a front end may ask any backend without knowing
        which it is. [] means it cannot list any: a server lists its own (openai), while
        local model files are found by aigc_chat.discovery, which needs the config."""
        return []

    @classmethod
    def doctor_lines(cls, options: Mapping[str, Any]) -> list[DoctorLine]:
        """What `aigc-chat doctor` shows about this engine on this machine, without loading
        a model. Each backend answers for its own dependencies, so doctor needs none of
        their internals and a plug-in can add its own lines. `options` are this backend's
        configured options (its defaults when the config cannot be read)."""
        return []

    def close(self) -> None:  # noqa: B027 - optional: a backend with nothing to free skips it
        """Free the model."""

    # -- shared behaviour -------------------------------------------------------------
    def unsupported(self, params: GenerationParams) -> list[str]:
        """Names of parameters set away from their defaults that this engine would ignore."""
        default = GenerationParams()
        return [
            n for n in PARAM_NAMES
            if n not in self.supported_params and getattr(params, n) != getattr(default, n)
        ]

    def stream_chat(
        self,
        messages: Sequence[Message],
        params: GenerationParams,
        cancel: threading.Event | None = None,
        on_progress: Callable[[PromptProgress], None] | None = None,
    ) -> ChatStream:
        """Start a generation; iterate the returned stream for text deltas. `on_progress`
        hears how prompt reading goes (on the consuming thread, between batches)."""
        return ChatStream(self, list(messages), params.validate(), cancel or threading.Event(), on_progress)


class ChatStream:
    """Iterator of text deltas; `result` holds the GenerationResult once iteration ends.

    Errors from the engine end the stream with finish_reason 'error' (the text so far is
    kept); Ctrl-C ends it as 'cancelled' and is re-raised for the front end to handle.
    """

    def __init__(
        self,
        backend: Backend,
        messages: list[Message],
        params: GenerationParams,
        cancel: threading.Event,
        on_progress: Callable[[PromptProgress], None] | None = None,
    ) -> None:
        if not messages:
            raise ParamError("nothing to send: the conversation is empty")
        self.backend = backend
        self.messages = messages
        self.params = params
        self.cancel_event = cancel
        self.on_progress = on_progress
        self.prompt_progress: PromptProgress | None = None  # the latest, for the result
        self.result: GenerationResult | None = None
        self._iter = self._run()

    def __iter__(self) -> Iterator[str]:
        return self._iter

    def __next__(self) -> str:
        return next(self._iter)

    def cancel(self) -> None:
        """Ask the stream to stop; safe from any thread (the worker sees it at its next piece)."""
        self.cancel_event.set()

    def close(self) -> None:
        """End the stream now, from the thread that consumes it, so no caller reaches into
        the generator. A running stream stops its engine and `result` is final, 'cancelled',
        with the text shown so far; an ended stream is left as it is. A stream never started
        stays unstarted: no engine ran, `result` stays None and iterating yields nothing."""
        self._iter.close()

    def consume(self) -> GenerationResult:
        """Run to the end and return the result (for callers that do not stream)."""
        for _ in self._iter:
            pass
        assert self.result is not None
        return self.result

    def _run(self) -> Generator[str, None, None]:
        warnings = [
            f"the {self.backend.name} backend cannot honour {n}; it is ignored"
            for n in self.backend.unsupported(self.params)
        ]
        stops = StopFilter(dict.fromkeys((*self.params.stop, *self.backend.format_stops())))
        splitter = ReasoningSplitter(self.backend.reasoning_markers())
        thought: list[str] = []
        n_reasoning = 0
        t_think: float | None = None  # the first reasoning
        t_answer: float | None = None  # the first answer text
        t_start = time.perf_counter()
        t_first: float | None = None
        t_last: float | None = None
        pieces: list[str] = []
        n_tokens = 0
        prompt_tokens = 0
        finish: FinishReason = "stop"
        error: str | None = None
        interrupted = False
        decoder = codecs.getincrementaldecoder("utf-8")(errors="replace")
        decode = decoder.decode
        gen = _start_engine(self.backend, self.messages, self.params, self.cancel_event)
        try:
            for item in gen:
                if isinstance(item, PromptProgress):
                    self.prompt_progress = item
                    if self.cancel_event.is_set():
                        finish = "cancelled"
                        break
                    if self.on_progress is not None:
                        self.on_progress(item)
                    continue
                if isinstance(item, EngineStart):
                    prompt_tokens = item.prompt_tokens
                    if item.reasoning_open:
                        splitter = ReasoningSplitter(self.backend.reasoning_markers(), inside=True)
                    continue
                if isinstance(item, EngineEnd):
                    finish = item.finish_reason
                    if item.prompt_tokens is not None:
                        prompt_tokens = item.prompt_tokens
                    if item.completion_tokens is not None:  # a server's usage record may
                        n_tokens = item.completion_tokens  # count tokens merged into one chunk
                    break
                now = time.perf_counter()
                if t_first is None:
                    t_first = now
                t_last = now
                n_tokens += 1
                if self.cancel_event.is_set():
                    finish = "cancelled"
                    break
                if item.__class__ is bytes:  # `is`, not isinstance: this runs once per token
                    item = decode(item)
                parts = [item] if isinstance(item, Reasoning) else splitter.feed(cast(str, item))
                if isinstance(item, Reasoning) or splitter.thinking:
                    n_reasoning += 1
                for part in parts:
                    if isinstance(part, Reasoning):
                        if t_think is None:
                            t_think = now
                        thought.append(part)
                        yield part
                        continue
                    out = stops.feed(part)
                    if out:
                        if t_answer is None:
                            t_answer = now
                        pieces.append(out)
                        yield out
                    if stops.stopped:
                        break
                if stops.stopped:
                    finish = "stop"
                    break
                if n_tokens >= self.params.max_tokens:
                    finish = "length"
                    break
            if self.cancel_event.is_set() and not stops.stopped:
                finish = "cancelled"
        except KeyboardInterrupt:
            finish, interrupted = "cancelled", True
        except GeneratorExit:
            finish = "cancelled"
            raise
        except AigcError as exc:
            finish, error = "error", str(exc)
        except Exception as exc:  # noqa: BLE001 - an engine failure must not kill the front end
            finish, error = "error", f"{type(exc).__name__}: {exc}"
        finally:
            # Runs on normal ends and when the consumer closes us (GeneratorExit): either way
            # the engine stops now, and a result exists.
            close = getattr(gen, "close", None)  # a plain iterator has nothing to stop
            if close is not None:
                close()
            if self.result is None:
                self.result = self._make_result(
                    pieces, finish, prompt_tokens, n_tokens, t_start, t_first, t_last, error, stops, warnings,
                )
                self.result.reasoning, self.result.reasoning_tokens = "".join(thought), n_reasoning
                if self.prompt_progress is not None:
                    p = self.prompt_progress
                    self.result.cached_tokens = p.cached
                    self.result.prompt_read = p.read
                    self.result.prompt_time = p.elapsed
                    self.result.prompt_tokens_per_s = p.rate
                if t_think is not None:
                    self.result.thinking_time = (t_answer or t_last or t_think) - t_think
                    self.result.time_to_first_token = None if t_answer is None else t_answer - t_start
        # Bytes of an unfinished UTF-8 sequence (U+FFFD now), and text held back because it
        # looked like the start of a stop string and turned out not to be one: release them now
        # that the stream is over (after a stop, feed() drops them).
        tail = ""
        for part in splitter.feed(decode(b"", True)) + splitter.flush():
            if isinstance(part, Reasoning):  # an unterminated block's held tail: still reasoning
                self.result.reasoning += part
                yield part
            else:
                tail += stops.feed(part)
        tail += stops.flush()
        if stops.stopped and self.result.stop_sequence is None:
            # a stop completed while a longer one was still possible, then the engine ended
            self.result.stop_sequence = stops.matched
            if self.result.finish_reason == "length":
                self.result.finish_reason = "stop"
        if tail:
            pieces.append(tail)
            self.result.text += tail
            yield tail  # also after Ctrl-C: what is stored must have been shown
        if interrupted:
            raise KeyboardInterrupt

    def _make_result(
        self,
        pieces: list[str],
        finish: FinishReason,
        prompt_tokens: int,
        n_tokens: int,
        t_start: float,
        t_first: float | None,
        t_last: float | None,
        error: str | None,
        stops: StopFilter,
        warnings: list[str],
    ) -> GenerationResult:
        rate = None
        if t_first is not None and t_last is not None and n_tokens > 1 and t_last > t_first:
            rate = (n_tokens - 1) / (t_last - t_first)
        return GenerationResult(
            text="".join(pieces),
            finish_reason=finish,
            prompt_tokens=prompt_tokens,
            completion_tokens=n_tokens,
            time_to_first_token=None if t_first is None else t_first - t_start,
            decode_tokens_per_s=rate,
            total_time=time.perf_counter() - t_start,
            error=error,
            stop_sequence=stops.matched if stops.stopped else None,
            warnings=warnings,
        )


def template_params(template: Any) -> frozenset[str]:
    """What a backend that renders `template` itself honours: every parameter, but `thinking`
    only where the template can turn it off (it reads `enable_thinking`)."""
    names = frozenset(PARAM_NAMES)
    return names if getattr(template, "can_switch_thinking", False) else names - {"thinking"}


def template_stops(template: Any) -> tuple[str, ...]:
    """The stop strings a chat template (aigc_chat.templates.ChatTemplate) needs, for the
    backends that render templates themselves (their `format_stops`)."""
    return tuple(getattr(template, "extra_stops", ()))


def template_markers(template: Any) -> tuple[Markers, ...]:
    """The reasoning markers a chat template (aigc_chat.templates.ChatTemplate) names, else
    every known family: for the backends that render templates themselves."""
    return markers_for(getattr(template, "source", None))


def opens_reasoning(template: Any, segments: Sequence[Any]) -> bool:
    """Whether a rendered prompt (its merged segments) ends with an opening marker that the
    template wrote for the model: the reply then starts inside the reasoning block."""
    tail = segments[-1].text[-64:] if segments and segments[-1].special else ""
    return opens_inside(tail, template_markers(template))


def _start_engine(
    backend: Backend, messages: list[Message], params: GenerationParams, cancel: threading.Event,
) -> Iterator[str | bytes | EngineStart | EngineEnd | PromptProgress]:
    """Call `_generate`, with the cancel event unless the backend predates it: plug-ins
    written for `_generate(messages, params)` keep working, with a deprecation warning."""
    if _takes_cancel(type(backend)._generate):
        return backend._generate(messages, params, cancel)
    warnings.warn(
        f"{type(backend).__name__}._generate(messages, params) is deprecated: "
        "take the cancel event as a third argument, _generate(messages, params, cancel)",
        DeprecationWarning, stacklevel=3,
    )
    return backend._generate(messages, params)  # type: ignore[call-arg]  # the legacy signature, checked above


@lru_cache(maxsize=64)
def _takes_cancel(fn: Callable[..., Any]) -> bool:
    try:
        parameters = list(inspect.signature(fn).parameters.values())[1:]  # after self
    except (TypeError, ValueError):  # a builtin or an odd callable: assume the current contract
        return True
    if any(p.kind is p.VAR_POSITIONAL for p in parameters):
        return True
    positional = [p for p in parameters if p.kind in (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD)]
    return len(positional) >= 3
