"""The llama.cpp backend, through llama-cpp-python.

Why not `Llama.create_chat_completion`: we render the prompt ourselves (aigc_chat.templates)
so both local backends tokenise the same segments, and we drive `Llama.generate()` token by
token so stop strings, cancellation and timing are handled in one shared place (ChatStream).
`generate()` keeps the KV cache of the longest common token prefix, so a chat that re-sends
its history only evaluates the new turn.
"""

from __future__ import annotations

import collections
import ctypes
import os
import threading
import time
from collections.abc import Generator, Iterator, Mapping, Sequence
from contextlib import contextmanager
from pathlib import Path
from typing import Any

from aigc_chat.backends import extra_buffers
from aigc_chat.backends.base import (
    MAX_CONTEXT,
    MAX_THREADS,
    Backend,
    DoctorLine,
    EngineEnd,
    EngineStart,
    Option,
    fit_prompt,
    int_range,
    opens_reasoning,
    template_markers,
    template_params,
    template_stops,
)
from aigc_chat.backends.extra_buffers import cpu_has_amx
from aigc_chat.backends.kept_states import DEFAULT_BUDGET_MB, KeptStates, common_prefix
from aigc_chat.backends.llama_tokens import TooLong, tokenize_segments
from aigc_chat.backends.requantize import discard_copy, fast_copy, wants_copy
from aigc_chat.chat_types import BackendInfo, Message, ProgressCallback, PromptProgress
from aigc_chat.cpu import ThreadPolicy, engine_threads, usable_cores
from aigc_chat.errors import BackendError, ModelError, UsageError
from aigc_chat.gguf_info import GGUFInfo, read_gguf_info
from aigc_chat.params import GenerationParams
from aigc_chat.reasoning import Markers
from aigc_chat.templates import ChatTemplate, Segment, choose_template, merge_segments, warm_renderer

MAX_LAYERS = 100_000  # llama.cpp's count is 32-bit; no model has a thousand layers
# Prompt reading in batches (LlamaCppBackend._read_prompt): the first is smallish, so the first
# rate (and the first progress after the "reading 0 / N" said at once) comes soon; the rest are
# n_batch, as one eval() call would make them. Smaller batches cost far more than they look:
# each one attends over the whole cache, so at 7,000 tokens 128-token batches read at 0.73x
# and 64-token ones at 0.55x of 512-token ones here (docs/performance.md).
FIRST_BATCH = 128


def _check_gpu_layers(v: Any) -> str | None:
    if v == "auto" or (isinstance(v, int) and not isinstance(v, bool) and -1 <= v <= MAX_LAYERS):
        return None
    return f'must be "auto", -1 (all layers) or a number of layers from 0 to {MAX_LAYERS}'


def _check_tristate(v: Any) -> str | None:
    return None if v in ("auto", "on", "off") else 'must be "auto", "on" or "off"'


class LlamaCppBackend(Backend):
    name = "llama"
    OPTIONS = {
        "n_ctx": Option(8192, int, "context size in tokens; 0 = the model's training context",
                        int_range(256, MAX_CONTEXT, zero_means="the model's own")),
        "n_gpu_layers": Option("auto", (str, int),
                               '"auto" = all layers when llama.cpp was built with GPU offload, else 0',
                               _check_gpu_layers),
        "n_threads": Option(0, int, "CPU threads; 0 = one per core",
                            int_range(1, MAX_THREADS, zero_means="one per core")),
        "n_batch": Option(512, int, "prompt evaluation batch size", int_range(1, MAX_CONTEXT)),
        "flash_attn": Option("auto", str, '"auto" (on: it pays on GPUs and CPUs), "on" or "off"', _check_tristate),
        "chat_template": Option("", str,
                                'override: "gemma", "chatml", "llama-3", "llama-2", "plain" or a Jinja string'),
        "extra_buffers": Option("auto", str,
                                'CPU weight repacking; "auto": on, unless an AMX build on an AMX CPU fails a '
                                "one-time probe (llama.cpp issue 20824)", _check_tristate),
        "fast_copy": Option("auto", str,
                            '"auto": a Q4_1 model on the CPU is read through a Q8_0 copy made once in the cache '
                            '(prompts about 2x faster); "off"', lambda v: None if v in ("auto", "off")
                            else 'must be "auto" or "off"'),
        "swa_full": Option(True, bool,
                           "full-size sliding-window cache, so any prefix of the conversation can be reused"),
        "use_mmap": Option(True, bool, "memory-map the model file"),
        "kept_states_mb": Option(DEFAULT_BUDGET_MB, int,
                                 "memory for the KV states of other branches, so moving back to one does not "
                                 "re-read it (MB; 0 = off)", int_range(0, 1 << 20)),
    }

    def __init__(self, model: str | None, options: dict[str, Any] | None = None) -> None:
        super().__init__(model, options)
        self._llm: Any = None
        self._gguf: GGUFInfo | None = None
        self._template: ChatTemplate | None = None
        self._path: Path | None = None
        self._gpu_layers = 0
        self._extra_bufts = True
        self._extra_why = ""
        self._pieces: TokenPieces | None = None
        self._eos = ""
        self.kept = KeptStates(0)  # other branches' KV states (backends/kept_states.py)
        self.last_reused = 0  # tokens of the last prompt not evaluated: the cache had them
        self.threads = ThreadPolicy(0)  # re-chosen before each reply (aigc_chat.cpu)
        self._n_threads = 0  # what llama.cpp runs with now
        self.file_note = ""  # what was done to the file before loading (a requantised copy)

    # -- loading ------------------------------------------------------------------------
    def load(self, progress: ProgressCallback | None = None) -> None:
        report = progress or (lambda _msg: None)
        path = resolve_model_path(self.model, report)
        report(f"checking {path.name}")
        info = read_gguf_info(path)
        warm_renderer(self.options["chat_template"], info.chat_template)  # starts while the model loads
        llama_cpp = import_llama_cpp()
        install_quiet_logger(llama_cpp)
        gpu = bool(llama_cpp.llama_supports_gpu_offload())
        layers = self.options["n_gpu_layers"]
        if layers == "auto":
            layers = -1 if gpu else 0
        self.file_note, load_path = "", path
        if self.options["fast_copy"] == "auto" and wants_copy(info, layers if gpu else 0):
            load_path, self.file_note = fast_copy(path, llama_cpp, report)
        self._extra_bufts, self._extra_why = extra_buffers.decide(
            self.options["extra_buffers"], llama_cpp=llama_cpp, model=load_path, report=report)
        if info.context_note:
            self.notices.append(info.context_note)
        n_ctx = self.options["n_ctx"] or (info.context_length or 4096)
        if info.context_length:
            n_ctx = min(n_ctx, info.context_length)
        self.threads = ThreadPolicy(self.options["n_threads"])
        threads = self.threads.initial()
        report(f"loading {path.name}")

        def make(model_file: Path) -> Any:
            with _model_param_override(llama_cpp, self._extra_bufts), no_template_compile(llama_cpp):
                return llama_cpp.Llama(
                    model_path=str(model_file),
                    n_ctx=n_ctx,
                    n_batch=min(self.options["n_batch"], n_ctx),
                    n_gpu_layers=layers,
                    n_threads=threads,
                    n_threads_batch=threads,
                    use_mmap=self.options["use_mmap"],
                    swa_full=self.options["swa_full"],
                    # "auto": on. It pays on GPUs, and on the CPU too: prompts read faster and
                    # decode at long contexts is up to twice as fast (docs/performance.md).
                    flash_attn=self.options["flash_attn"] != "off",
                    verbose=False,
                )

        try:
            try:
                llm = make(load_path)
            except (ValueError, RuntimeError, OSError):
                if load_path == path:
                    raise
                # the copy would not load (damaged after its check?): drop it, use the original
                self.file_note = f"the Q8_0 copy did not load and was removed; {path.name} is read as it is"
                discard_copy(load_path)
                llm = make(path)
        except (ValueError, RuntimeError, OSError) as exc:
            self.threads.close()
            detail = last_log_error() or str(exc)
            raise ModelError(f"llama.cpp could not load {path}: {detail}") from None
        try:
            template = choose_template(self.options["chat_template"], info.chat_template, info.architecture)
        except BaseException:
            llm.close()
            raise
        self._llm, self._gguf, self._template, self._path = llm, info, template, path
        self._n_threads = threads
        self.supported_params = template_params(template)
        n_layers = info.block_count or 0
        self._gpu_layers = 0 if not gpu else (n_layers + 1 if layers == -1 else min(layers, n_layers + 1))
        self._pieces = TokenPieces(llama_cpp, llm._model.vocab)
        self._eos = self._pieces.special_text(llm.token_eos())
        self.kept = KeptStates(self.options["kept_states_mb"] << 20)
        report("ready")

    def close(self) -> None:
        self.kept.clear()
        self.threads.close()
        if self._llm is not None:
            self._llm.close()
            self._llm = None

    # -- the KV cache across branches (backends/kept_states.py) --------------------------------
    def _prepare_cache(self, llm: Any, llama_cpp: Any, prompt: Sequence[int]) -> None:
        """Before `prompt` runs: keep the live state if the prompt would drop much of it, and
        put back a kept one that shares more with the prompt. Any failure here only costs
        speed: the cache is emptied and the prompt evaluated whole."""
        cached = llm.input_ids[: llm.n_tokens].tolist()
        have = common_prefix(cached, prompt)
        try:
            best = self.kept.best(prompt, have)
            if self.kept.worth_keeping(cached, prompt):
                size = int(llama_cpp.llama_state_seq_get_size(llm._ctx.ctx, 0))
                if self.kept.fits(size):
                    buf = (ctypes.c_uint8 * size)()
                    got = int(llama_cpp.llama_state_seq_get_data(llm._ctx.ctx, buf, size, 0))
                    if 0 < got <= size:
                        self.kept.keep(cached, buf, got)
            if best is not None:
                llm._ctx.kv_cache_seq_rm(-1, 0, -1)
                llm.n_tokens = 0
                read = int(llama_cpp.llama_state_seq_set_data(llm._ctx.ctx, best.state, best.size, 0))
                if read != best.size:
                    raise RuntimeError("llama.cpp did not take the kept state back")
                n = len(best.tokens)
                llm.input_ids[:n] = best.tokens
                llm.n_tokens = n
                llm._requires_eval = True
                self.kept.restored += 1
                have = common_prefix(best.tokens, prompt)
        except Exception:  # noqa: BLE001 - a state that cannot be kept or restored: evaluate afresh
            self.kept.clear()
            llm.reset()
            llm._ctx.kv_cache_seq_rm(-1, 0, -1)
            have = 0
        self.last_reused = min(have, len(prompt) - 1)

    def info(self) -> BackendInfo:
        llm = self._require()
        device = f"GPU ({self._gpu_layers} layers offloaded)" if self._gpu_layers else "CPU"
        return BackendInfo(
            name=self.name,
            model=str(self._path),
            context_length=_n_ctx(llm),
            device=device,
            gpu_offload=self._gpu_layers > 0,
            details={
                "architecture": self._gguf.architecture if self._gguf else "",
                "model_name": self._gguf.name if self._gguf else "",
                "chat_template": self._template.name if self._template else "",
                "threads": self._n_threads,
                "extra_buffers": self._extra_bufts,
                "extra_buffers_why": self._extra_why,
                "file_note": self.file_note,
            },
        )

    @classmethod
    def doctor_lines(cls, options: Mapping[str, Any]) -> list[DoctorLine]:
        """Whether llama.cpp imports, whether this build offloads to a GPU, what it was
        built with, and whether the AMX workaround (extra buffers off) applies here."""
        lines = []
        try:
            import llama_cpp

            gpu = bool(llama_cpp.llama_supports_gpu_offload())
            lines.append(DoctorLine("llama.cpp GPU offload", "yes" if gpu else "no (CPU build)"))
            lines.append(DoctorLine("llama.cpp build", build_summary(llama_cpp.llama_print_system_info())))
        except Exception as exc:  # noqa: BLE001 - ImportError, OSError from its library, anything: a line
            lines.append(DoctorLine("llama.cpp", f"ERROR cannot import llama_cpp: {exc}",
                                    "llama-cpp-python is not importable: pip install 'aigc-chat[llama]'"))
        amx = cpu_has_amx()
        _on, why = extra_buffers.decide(str(options.get("extra_buffers", "auto")), llama_cpp=_llama_cpp_or_none())
        lines.append(DoctorLine("CPU AMX", f"{'yes' if amx else 'no'}; llama.cpp extra buffers {why}"))
        return lines

    # -- prompts --------------------------------------------------------------------------
    def tokenize_messages(self, messages: Sequence[Message], thinking: bool = True,
                          limit: int | None = None) -> list[int]:
        """Token ids of the rendered prompt: markup parsed as special tokens, text not.
        With `limit`, TooLong (cheaply) for a prompt surely longer (backends/llama_tokens.py)."""
        llm = self._require()
        return tokenize_segments(import_llama_cpp(), llm._model.vocab, self._segments(messages, thinking), limit)

    def _segments(self, messages: Sequence[Message], thinking: bool = True) -> list[Segment]:
        assert self._template is not None
        return merge_segments(self._template.render(messages, "", self._eos, thinking))

    def reasoning_markers(self) -> tuple[Markers, ...]:
        return template_markers(self._template)

    def format_stops(self) -> tuple[str, ...]:
        return template_stops(self._template)

    def count_tokens(self, messages: Sequence[Message]) -> int | None:
        """Exact up to the context; past it, an estimate from the part counted (enough to
        leave messages out or refuse a file, without tokenising megabytes)."""
        try:
            return len(self.tokenize_messages(messages, limit=_n_ctx(self._require())))
        except TooLong as exc:
            return exc.estimate

    # -- generation -------------------------------------------------------------------
    def _generate(
        self, messages: Sequence[Message], params: GenerationParams, cancel: threading.Event
    ) -> Iterator[str | bytes | EngineStart | EngineEnd | PromptProgress]:
        # While decoding, a token comes every few milliseconds and ChatStream looks at
        # `cancel` before showing each one; prompt reading looks at it between batches.
        llm = self._require()
        llama_cpp = import_llama_cpp()
        n_ctx = _n_ctx(llm)
        prompt = fit_prompt(lambda m: self._fit_tokens(m, params.thinking, n_ctx), messages, n_ctx)
        opened = opens_reasoning(self._template, self._segments(messages, params.thinking))
        yield EngineStart(len(prompt), reasoning_open=opened)
        room = n_ctx - len(prompt)
        if params.seed is not None:
            llm.set_seed(params.seed)
        else:
            llm.set_seed(llama_cpp.LLAMA_DEFAULT_SEED)  # llama.cpp then picks a random seed
        self._set_threads(llm, llama_cpp)
        try:
            yield from self._run_prompt(llm, llama_cpp, prompt, params, cancel, room)
        finally:
            self.threads.reply_ended()

    def _run_prompt(self, llm: Any, llama_cpp: Any, prompt: list[int], params: GenerationParams,
                    cancel: threading.Event, room: int) -> Iterator[bytes | EngineEnd | PromptProgress]:
        piece = self._pieces
        assert piece is not None
        vocab = llm._model.vocab
        n = 0
        self._prepare_cache(llm, llama_cpp, prompt)
        if not (yield from self._read_prompt(llm, prompt, cancel)):
            return  # cancelled while reading: ChatStream sees the event and ends as cancelled
        tokens = llm.generate(
            prompt,
            top_k=params.top_k,
            top_p=params.top_p,
            min_p=params.min_p,
            temp=params.temperature,
            repeat_penalty=params.repeat_penalty,
        )
        try:
            for token in tokens:
                if ends_turn(llama_cpp, vocab, token):
                    yield EngineEnd("stop", len(prompt), n)
                    return
                n += 1
                yield piece(token)  # raw bytes: ChatStream decodes them and flushes at the end
                if n >= room:
                    yield EngineEnd("length", len(prompt), n)
                    return
        finally:
            tokens.close()
        yield EngineEnd("stop", len(prompt), n)

    def _set_threads(self, llm: Any, llama_cpp: Any) -> None:
        """The thread count for this reply, from what the other processes are doing now."""
        n = self.threads.choose().threads
        if n != self._n_threads:
            llama_cpp.llama_set_n_threads(llm._ctx.ctx, n, n)
            self._n_threads = n

    def _read_prompt(self, llm: Any, prompt: Sequence[int],
                     cancel: threading.Event) -> Generator[PromptProgress, None, bool]:
        """Evaluate all but the prompt's last token in batches, saying how far it is after
        each one, so a long prompt shows progress and a cancel (seen by ChatStream at each
        PromptProgress) stops between batches. What was read stays in the cache: the next
        try starts where this one stopped. `generate()` then finds all of it cached and
        evaluates only the last token, which gives the first logits."""
        target = len(prompt) - 1
        done = self.last_reused
        if done < llm.n_tokens and not llm._ctx.kv_cache_seq_rm(-1, done, -1):
            llm.reset()  # a cache that cannot be cut (recurrent models): read it all
            llm._ctx.kv_cache_seq_rm(-1, 0, -1)
            done = 0
        llm.n_tokens = done
        cached = done
        start = time.perf_counter()
        yield PromptProgress(done, len(prompt), cached, 0.0)
        batch = max(1, min(llm.n_batch, FIRST_BATCH))
        while done < target:
            if cancel.is_set():
                return False
            chunk = prompt[done: min(target, done + batch)]
            llm.eval(chunk)
            done = llm.n_tokens
            yield PromptProgress(done, len(prompt), cached, time.perf_counter() - start)
            batch = llm.n_batch
        return not cancel.is_set()

    def _fit_tokens(self, messages: Sequence[Message], thinking: bool, n_ctx: int) -> list[int]:
        try:
            return self.tokenize_messages(messages, thinking, limit=n_ctx)
        except TooLong as exc:
            raise UsageError(f"the conversation (more than {exc.counted} tokens) does not fit the context "
                             f"({n_ctx} tokens)") from None

    def _require(self) -> Any:
        if self._llm is None:
            raise BackendError("the model is not loaded")
        return self._llm


# -- helpers ----------------------------------------------------------------------------


def import_llama_cpp() -> Any:
    # llama.cpp's abort handler forks gdb to print a backtrace, and gdb writes it on *stdout*,
    # where the answer goes; the one-line message llama.cpp prints on stderr is enough.
    if not os.environ.get("AIGC_CHAT_DEBUG"):
        os.environ["GGML_NO_BACKTRACE"] = "1"
    try:
        import llama_cpp
    except ImportError:
        raise UsageError(
            "the llama backend needs llama-cpp-python: pip install 'aigc-chat[llama]' "
            '(for CUDA: CMAKE_ARGS="-DGGML_CUDA=on" pip install llama-cpp-python)'
        ) from None
    except OSError as exc:  # the shared library failed to load
        raise BackendError(f"llama-cpp-python is installed but its library failed to load: {exc}") from None
    return llama_cpp


def resolve_model_path(model: str | None, progress: ProgressCallback | None = None) -> Path:
    """An explicit path, or the bundled default model (assembled on first use)."""
    if model:
        return Path(model).expanduser()
    from aigc_chat.default_model import ensure_default_model

    return ensure_default_model(progress)


def extra_buffers_enabled(setting: str, cpuinfo: str | None = None) -> bool:
    """Extra buffers for a llama.cpp model made outside a backend (parity references, the
    test server): on/off as set; "auto" without a model to probe is off only where an AMX
    build meets an AMX CPU (backends/extra_buffers.py; the backend itself probes)."""
    on, _why = extra_buffers.decide(setting, llama_cpp=_llama_cpp_or_none(), cpuinfo=cpuinfo)
    return on


def _llama_cpp_or_none() -> Any:
    try:
        import llama_cpp
    except (ImportError, OSError):
        return None
    return llama_cpp


def build_summary(system_info: bytes | str) -> str:
    """llama.cpp's system info ("CUDA : ARCHS = 890 | ... | CPU : AVX2 = 1 | AMX_INT8 = 1 |")
    as one short line: each device, then the features it was built with."""
    text = system_info.decode("utf-8", "replace") if isinstance(system_info, bytes) else system_info
    groups: list[tuple[str, list[str]]] = []
    for part in (p.strip() for p in text.split("|")):
        if " : " in part:
            device, part = (x.strip() for x in part.split(" : ", 1))
            groups.append((device, []))
        if not part or not groups:
            continue
        key, _, value = (x.strip() for x in part.partition("="))
        if value != "0":
            groups[-1][1].append(key if value in ("1", "") else f"{key}={value}")
    return "; ".join(f"{device}: {' '.join(features)}" if features else device
                     for device, features in groups) or "unknown"


def default_threads() -> int:
    """Engine threads on an idle machine with no UI to keep responsive: one per usable core,
    and past 4, half of them (assume SMT siblings), since its workers wait for each other at
    every step. Before each reply the count is re-chosen from the load (aigc_chat.cpu)."""
    return engine_threads(usable_cores(), None, reserve=0)


_LOAD_LOCK = threading.RLock()  # the load overrides below nest


@contextmanager
def _model_param_override(llama_cpp: Any, extra_bufts: bool) -> Iterator[None]:
    """`Llama()` does not expose use_extra_bufts; it reads llama.cpp's default model
    parameters while it is constructed, so we wrap that function for the duration."""
    lib = llama_cpp.llama_cpp
    orig = lib.llama_model_default_params

    def model_params() -> Any:
        p = orig()
        if hasattr(p, "use_extra_bufts"):
            p.use_extra_bufts = extra_bufts
        return p

    with _LOAD_LOCK:
        lib.llama_model_default_params = model_params
        try:
            yield
        finally:
            lib.llama_model_default_params = orig


@contextmanager
def no_template_compile(llama_cpp: Any) -> Iterator[None]:
    """`Llama()` compiles every chat template in the file with Jinja, in this process, for
    its create_chat_completion, which we never call: a hostile template (deeply nested,
    megabytes, invalid) would fail or stall the load there. We render templates ourselves, in
    a bounded process (aigc_chat.template_process), so the compile is skipped."""
    module = getattr(llama_cpp, "llama_chat_format", None)
    orig = getattr(module, "Jinja2ChatFormatter", None)
    if module is None or orig is None:
        yield
        return

    class _Skipped:
        def __init__(self, *_args: Any, **_kwargs: Any) -> None:
            pass

        def to_chat_handler(self) -> None:
            return None

    with _LOAD_LOCK:
        module.Jinja2ChatFormatter = _Skipped
        try:
            yield
        finally:
            module.Jinja2ChatFormatter = orig


_LOG: collections.deque[tuple[int, str]] = collections.deque(maxlen=200)
_LOG_CALLBACK: Any = None


def install_quiet_logger(llama_cpp: Any) -> None:
    """Keep llama.cpp's log lines off the user's terminal, but remember them for errors."""
    global _LOG_CALLBACK
    if _LOG_CALLBACK is not None:
        return

    @llama_cpp.llama_log_callback
    def _callback(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
        _LOG.append((level, text.decode("utf-8", errors="replace")))

    _LOG_CALLBACK = _callback  # keep a reference: ctypes would free it
    llama_cpp.llama_log_set(_callback, ctypes.c_void_p(0))


def last_log_error() -> str:
    for level, text in reversed(_LOG):
        if level == 3 and text.strip():
            return text.strip()
    return ""


def ends_turn(llama_cpp: Any, vocab: Any, token: int) -> bool:
    """End of generation, or any other control token: a base model that emits
    `<start_of_turn>` has left its turn (control tokens render as nothing, so without this
    the reply would run on into a made-up "user" turn)."""
    return bool(llama_cpp.llama_vocab_is_eog(vocab, token) or llama_cpp.llama_vocab_is_control(vocab, token))


def _n_ctx(llm: Any) -> int:
    """llama.cpp may round the context up; llama-cpp-python sizes its arrays by the request."""
    return min(llm.n_ctx(), llm.context_params.n_ctx)


class TokenPieces:
    """Token id -> the exact bytes llama.cpp renders for it, however long they are.

    The one place llama.cpp tokens become text, for the llama backend and the torch backend's
    GGUF tokenizer alike. llama-cpp-python's `detokenize` goes through a fixed 32-byte buffer
    and returns nothing for a longer piece (Gemma 3 has 379 such tokens, SmolLM2 47: a
    newline and 32 spaces, 64 dashes, long Devanagari words); here the buffer grows to what
    llama.cpp asks for (a negative return means "need -n bytes"). It is allocated once per
    instance, not per token, so a token costs one ctypes call. lstrip=0: nothing is trimmed.
    Not thread-safe (one buffer); each backend or tokenizer owns its own.
    """

    __slots__ = ("_buf", "_fn", "_n_vocab", "_size", "_vocab")

    def __init__(self, llama_cpp: Any, vocab: Any, size: int = 64) -> None:
        self._fn = llama_cpp.llama_token_to_piece
        self._vocab = vocab
        self._n_vocab = int(llama_cpp.llama_vocab_n_tokens(vocab))
        self._size = size
        self._buf = ctypes.create_string_buffer(size)

    def __call__(self, token: int, special: bool = False) -> bytes:
        """The piece's bytes; special=True renders control tokens' text (as llama.cpp does)."""
        n = self._fn(self._vocab, token, self._buf, self._size, 0, special)
        if n < 0:
            self._size = -n
            self._buf = ctypes.create_string_buffer(self._size)
            n = self._fn(self._vocab, token, self._buf, self._size, 0, special)
        return self._buf[:n]  # type: ignore[return-value]  # typeshed says list; a c_char slice is bytes

    def special_text(self, token: int) -> str:
        """A special token's text (BOS, EOS) for templates; "" when the model has none."""
        if not 0 <= token < self._n_vocab:
            return ""
        return self(token, special=True).decode("utf-8", errors="replace")
