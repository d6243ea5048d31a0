"""The torch backend: our own GPT (backends/torch_gpt/model.py) behind the Backend interface.

This module must stay importable without torch: the config loader imports backend classes
to validate `[torch]` options, and the llama.cpp path never loads torch. Everything that
needs torch is imported in `load()` and later.

Prompts are rendered with the same chat templates and tokenised with the same tokenizer as
the llama backend, so for one conversation both backends evaluate identical token ids.
Stop strings, max_tokens, cancellation and timing are ChatStream's (backends/base.py).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Iterator, Mapping, Sequence
from typing import TYPE_CHECKING, Any

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
from aigc_chat.backends.kept_states import DEFAULT_BUDGET_MB
from aigc_chat.backends.llama_tokens import TooLong
from aigc_chat.backends.torch_gpt.device import check_device, check_dtype
from aigc_chat.chat_types import BackendInfo, Message, ProgressCallback
from aigc_chat.cpu import ThreadPolicy
from aigc_chat.errors import BackendError, ModelError, UsageError
from aigc_chat.params import GenerationParams
from aigc_chat.reasoning import Markers
from aigc_chat.templates import ChatTemplate, Segment, choose_template, merge_segments

if TYPE_CHECKING:
    from torch import Tensor  # for annotations only: this module imports without torch

QUANTIZE = ("auto", "none", "int8", "head-int4")


def _check_quant(v: Any) -> str | None:
    return None if v in QUANTIZE else 'must be "auto", "none", "int8" or "head-int4"'


class TorchBackend(Backend):
    name = "torch"
    OPTIONS = {
        "device": Option("auto", str,
                         '"auto" (CUDA, then MPS, then CPU), "cpu", "cuda", "cuda:N" or "mps"; '
                         "AIGC_CHAT_TORCH_DEVICE overrides it", check_device),
        "dtype": Option("auto", str,
                        '"auto" (bfloat16 on GPUs and CPUs with native bfloat16, else float32), '
                        '"float32", "bfloat16" or "float16"', check_dtype),
        "n_ctx": Option(4096, int, "context size in tokens (the KV cache is allocated for it); 0 = the model's",
                        int_range(64, MAX_CONTEXT, zero_means="the model's own")),
        "n_threads": Option(0, int, "CPU threads for torch; 0 = one per core",
                            int_range(1, MAX_THREADS, zero_means="one per core")),
        "compile": Option(False, bool, "torch.compile the decode step (slow first token, faster decode on GPU)"),
        "cuda_graphs": Option(True, bool,
                              "on CUDA, replay each decode step as a CUDA graph (one launch instead of hundreds)"),
        "quantize": Option("auto", str,
                           '"auto" (head-int4 on CPU with bfloat16 for a large vocabulary, else none), "none", '
                           '"int8" (weight-only int8 matrices) or "head-int4" (4-bit output head, exact top 256 '
                           'logits; CPU)', _check_quant),
        "chat_template": Option("", str,
                                'override: "gemma", "chatml", "llama-3", "llama-2", "plain" or a Jinja string'),
        "kept_states_mb": Option(DEFAULT_BUDGET_MB, int,
                                 "memory for the KV states of other branches, so moving back to one does not "
                                 "re-read it (MB, host memory; 0 = off)", int_range(0, 1 << 20)),
    }

    def __init__(self, model: str | None, options: dict[str, Any] | None = None) -> None:
        super().__init__(model, options)
        self._runner: Any = None
        self._threads: ThreadPolicy | None = None  # CPU only: torch's intra-op threads
        self._tok: Any = None
        self._template: ChatTemplate | None = None
        self._ckpt_info: dict[str, Any] = {}
        self._device: Any = None
        self._dtype: Any = None
        self._graphs = False
        self._quantize = "none"

    # -- loading ----------------------------------------------------------------------------
    def load(self, progress: ProgressCallback | None = None) -> None:
        report = progress or (lambda _msg: None)
        torch = _import_torch()
        from aigc_chat.backends.llama_cpp_backend import resolve_model_path
        from aigc_chat.backends.torch_gpt.checkpoint import open_checkpoint
        from aigc_chat.backends.torch_gpt.device import describe, pick_device, pick_dtype, pick_head_dtype
        from aigc_chat.backends.torch_gpt.model import build_model
        from aigc_chat.backends.torch_gpt.runner import Runner

        device = pick_device(self.options["device"])
        dtype = pick_dtype(self.options["dtype"], device)
        self._threads = ThreadPolicy(self.options["n_threads"]) if device.type == "cpu" else None
        if self._threads is not None:
            torch.set_num_threads(self._threads.initial())
        path = resolve_model_path(self.model, report)
        t0 = time.perf_counter()
        report(f"reading {path.name}")
        ckpt = open_checkpoint(path)
        override = self.options["chat_template"]
        if not override and ckpt.chat_template is None and ckpt.config.arch == "gpt2":
            override = "plain"  # GPT-2 is a base model: no chat format of its own
        template = choose_template(override, ckpt.chat_template, ckpt.config.arch, section="torch")
        if ckpt.details.get("context_note"):
            self.notices.append(ckpt.details.pop("context_note"))
        report(f"moving weights to {device}")
        try:
            model = build_model(ckpt.config, ckpt.state, device, dtype,
                                head_dtype=pick_head_dtype(device, dtype))
        except ValueError as exc:
            raise ModelError(f"{path}: {exc}") from None
        except RuntimeError as exc:  # out of memory and the like
            raise BackendError(f"cannot place the model on {device}: {str(exc).splitlines()[0]}") from None
        ckpt.state.clear()
        quantize = self.options["quantize"]
        if quantize == "auto":
            from aigc_chat.backends.torch_gpt.quantize import auto_quantize

            quantize = auto_quantize(device, dtype, model.head_weight())
        self._quantize = quantize
        if quantize == "int8":
            from aigc_chat.backends.torch_gpt.quantize import quantize_int8

            report("quantising to int8")
            quantize_int8(model)
        elif quantize == "head-int4":
            from aigc_chat.backends.torch_gpt.quantize import quantize_head_int4

            if device.type != "cpu":
                raise UsageError('quantize = "head-int4" uses a CPU kernel; use it with device = "cpu"')
            report("quantising the output head to int4")
            try:
                quantize_head_int4(model)
            except ValueError as exc:
                raise UsageError(f'quantize = "head-int4": {exc}') from None
        n_ctx = self.options["n_ctx"] or ckpt.config.context_length
        n_ctx = min(n_ctx, ckpt.config.context_length)
        model.setup_cache(n_ctx)
        step: Callable[[Tensor, int], Tensor] | None = None  # a graphed or compiled decode step
        self._graphs = device.type == "cuda" and self.options["cuda_graphs"]
        if self._graphs:
            from aigc_chat.backends.torch_gpt.cuda_graphs import GraphedDecoder

            fn = None
            if self.options["compile"]:
                report("compiling (first tokens are slow)")
                fn = torch.compile(model.forward, dynamic=False)
            step = GraphedDecoder(model, fn)
        elif self.options["compile"]:
            from aigc_chat.backends.torch_gpt.compiled import compiled_step

            report("compiling (first tokens are slow)")
            step = compiled_step(model)
        self._runner = Runner(model, step, kept_budget=self.options["kept_states_mb"] << 20)
        self._tok, self._template = ckpt.tokenizer, template
        self.supported_params = template_params(template)
        self._device, self._dtype = device, dtype
        self._ckpt_info = {
            "path": str(ckpt.path), "format": ckpt.format, "model_name": ckpt.name,
            "load_s": round(time.perf_counter() - t0, 2), **ckpt.details,
        }
        self._describe = describe(device)
        report("ready")

    @property
    def last_reused(self) -> int:
        """Tokens of the last prompt not evaluated: the cache (or a kept branch) had them."""
        return self._runner.last_reused if self._runner is not None else 0

    def close(self) -> None:
        if self._tok is not None:
            self._tok.close()
        self._runner = self._tok = None

    def info(self) -> BackendInfo:
        runner = self._require()
        return BackendInfo(
            name=self.name,
            model=self._ckpt_info.get("path", ""),
            context_length=runner.max_len,
            device=f"{self._describe}, {str(self._dtype).removeprefix('torch.')}",
            gpu_offload=self._device.type != "cpu",
            details={
                **{k: v for k, v in self._ckpt_info.items() if k != "path"},
                "chat_template": self._template.name if self._template else "",
                "dtype": str(self._dtype).removeprefix("torch."),
                "quantize": self._quantize if self.options["quantize"] != "auto" else f"{self._quantize} (auto)",
                "compile": self.options["compile"],
                "cuda_graphs": self._graphs,
                "threads": _torch_threads(),
            },
        )

    @classmethod
    def doctor_lines(cls, options: Mapping[str, Any]) -> list[DoctorLine]:
        """The device and dtype the configured settings pick here (CUDA or not), the CPU
        threads and what quantize "auto" would do, without loading a model."""
        try:
            import torch
        except ImportError:
            return [DoctorLine("torch backend", "unavailable: pip install 'aigc-chat[torch]'",
                               "the torch backend needs PyTorch: pip install 'aigc-chat[torch]'")]
        from aigc_chat.backends.torch_gpt.device import describe, pick_device, pick_dtype
        from aigc_chat.backends.torch_gpt.quantize import auto_quantize

        cuda = f"yes, {torch.version.cuda}" if torch.cuda.is_available() else "no"
        try:
            device = pick_device(str(options.get("device", "auto")))
        except UsageError as exc:
            return [DoctorLine("torch CUDA", cuda), DoctorLine("torch device", f"ERROR {exc}", str(exc))]
        picked = pick_dtype(str(options.get("dtype", "auto")), device)
        dtype = str(picked).removeprefix("torch.")
        big_head = torch.empty(262144, 640, device="meta")  # Gemma 3's: what "auto" is about
        auto = auto_quantize(device, picked, big_head)
        quant = "4-bit head for large vocabularies" if auto == "head-int4" else "none"
        graphs = ", CUDA graphs" if device.type == "cuda" else ""
        return [DoctorLine("torch device", describe(device)), DoctorLine("torch CUDA", cuda),
                DoctorLine("torch dtype", dtype), DoctorLine("torch threads", str(_torch_threads())),
                DoctorLine("torch quantize (auto)", quant + graphs)]

    # -- prompts ----------------------------------------------------------------------------
    def tokenize_messages(self, messages: Sequence[Message], thinking: bool = True,
                          limit: int | None = None) -> list[int]:
        """Token ids of the rendered prompt, equal to the llama backend's for GGUF files.
        With `limit`, TooLong for a prompt surely longer (the GGUF tokenizer stops early)."""
        self._require()
        return self._tok.encode_segments(self._segments(messages, thinking), limit)

    def _segments(self, messages: Sequence[Message], thinking: bool = True) -> list[Segment]:
        assert self._template is not None
        return self._template.render(messages, "", self._tok.eos_text, thinking)

    def reasoning_markers(self) -> tuple[Markers, ...]:
        return template_markers(self._template)

    def format_stops(self) -> tuple[str, ...]:
        return template_stops(self._template)

    def count_tokens(self, messages: Sequence[Message]) -> int | None:
        """Exact up to the context; past it, an estimate (as the llama backend's)."""
        try:
            return len(self.tokenize_messages(messages, limit=self._require().max_len))
        except TooLong as exc:
            return exc.estimate

    def _fit_tokens(self, messages: Sequence[Message], thinking: bool, n_ctx: int) -> list[int]:
        try:
            return self.tokenize_messages(messages, thinking, limit=n_ctx)
        except TooLong as exc:
            raise UsageError(f"the conversation (more than {exc.counted} tokens) does not fit the context "
                             f"({n_ctx} tokens)") from None

    # -- generation -------------------------------------------------------------------------
    def _generate(
        self, messages: Sequence[Message], params: GenerationParams, cancel: threading.Event
    ) -> Iterator[str | bytes | EngineStart | EngineEnd]:
        # `cancel` needs nothing here: a token comes every few milliseconds and ChatStream
        # looks at the event before showing each one.
        runner = self._require()
        n_ctx = runner.max_len
        prompt = fit_prompt(lambda m: self._fit_tokens(m, params.thinking, n_ctx), messages, n_ctx)
        opened = opens_reasoning(self._template, merge_segments(self._segments(messages, params.thinking)))
        yield EngineStart(len(prompt), reasoning_open=opened)
        if self._threads is not None:  # re-chosen per reply from the load now (aigc_chat.cpu)
            _set_torch_threads(self._threads.choose().threads)
        try:
            yield from self._decode(runner, prompt, params, n_ctx)
        finally:
            if self._threads is not None:
                self._threads.reply_ended()

    def _decode(self, runner: Any, prompt: list[int], params: GenerationParams,
                n_ctx: int) -> Iterator[bytes | EngineEnd]:
        from aigc_chat.backends.torch_gpt.sampling import make_generator, sample_next

        generator = make_generator(params.seed)
        token_bytes = self._tok.token_bytes
        history = list(prompt)
        logits = runner.prefill(prompt)
        n = 0
        while True:
            token = sample_next(logits, params, history, generator)
            if self._tok.is_eog(token):
                yield EngineEnd("stop", len(prompt), n)
                return
            n += 1
            history.append(token)
            yield token_bytes(token)  # raw bytes: ChatStream decodes them and flushes at the end
            if len(prompt) + n >= n_ctx:
                yield EngineEnd("length", len(prompt), n)
                return
            logits = runner.step(token)

    def _require(self) -> Any:
        if self._runner is None:
            raise BackendError("the model is not loaded")
        return self._runner


def _import_torch() -> Any:
    try:
        import torch
    except ImportError:
        raise UsageError("the torch backend needs PyTorch: pip install 'aigc-chat[torch]'") from None
    return torch


def _set_torch_threads(n: int) -> None:
    import torch

    if torch.get_num_threads() != n:
        torch.set_num_threads(n)


def _torch_threads() -> int:
    import torch

    return torch.get_num_threads()
