"""Side-by-side checks of our model against llama.cpp on the same GGUF file.

Used by the tests and by bench/bench_torch.py: full-sequence logits from both engines,
normalised squared error and KL divergence per position, and greedy continuations.
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aigc_chat.backends.torch_gpt.model import GPT
from aigc_chat.backends.torch_gpt.runner import Runner


def llama_reference(path: str | Path, n_ctx: int = 128, threads: int = 0, kv_f32: bool = False) -> Any:
    """A llama.cpp model that keeps the logits of every position (n_ctx x n_vocab floats:
    keep n_ctx small for large vocabularies). kv_f32 keeps its KV cache in float32."""
    from aigc_chat.backends.llama_cpp_backend import (
        _model_param_override,
        default_threads,
        extra_buffers_enabled,
        import_llama_cpp,
        install_quiet_logger,
    )

    llama_cpp = import_llama_cpp()
    install_quiet_logger(llama_cpp)
    extra = {"type_k": 0, "type_v": 0} if kv_f32 else {}
    with _model_param_override(llama_cpp, extra_buffers_enabled("auto")):
        return llama_cpp.Llama(
            model_path=str(path), n_ctx=n_ctx, n_batch=n_ctx, logits_all=True, verbose=False,
            n_threads=threads or default_threads(), n_gpu_layers=0, **extra,
        )


def llama_logits(llm: Any, tokens: Sequence[int]) -> np.ndarray:
    llm.reset()
    llm.eval(list(tokens))
    return np.array(llm.scores[: len(tokens)], dtype=np.float32)


@torch.inference_mode()
def torch_logits(model: GPT, tokens: Sequence[int]) -> np.ndarray:
    x = torch.tensor([list(tokens)], device=model.tok_emb.weight.device)
    return model(x, 0, all_logits=True)[0].float().cpu().numpy()


def llama_logits_stepwise(llm: Any, tokens: Sequence[int]) -> np.ndarray:
    """llama_logits with one token per evaluation (llama.cpp's single-row kernels)."""
    llm.reset()
    for t in tokens:
        llm.eval([t])
    return np.array(llm.scores[: len(tokens)], dtype=np.float32)


def nmse(ours: np.ndarray, ref: np.ndarray) -> np.ndarray:
    """Per position: |ours - ref|^2 / |ref|^2."""
    return ((ours - ref) ** 2).sum(-1) / (ref**2).sum(-1)


def kl_divergence(ref: np.ndarray, ours: np.ndarray) -> np.ndarray:
    """Per position KL(p_ref || p_ours) of the next-token distributions, in nats."""
    def log_softmax(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float64)
        x = x - x.max(-1, keepdims=True)
        return x - np.log(np.exp(x).sum(-1, keepdims=True))

    lr, lo = log_softmax(ref), log_softmax(ours)
    return (np.exp(lr) * (lr - lo)).sum(-1)


def llama_greedy(llm: Any, prompt: Sequence[int], n: int) -> list[int]:
    llm.reset()
    out: list[int] = []
    for tok in llm.generate(list(prompt), top_k=1, top_p=1.0, min_p=0.0, temp=0.0, repeat_penalty=1.0):
        out.append(int(tok))
        if len(out) >= n:
            break
    return out


def llama_greedy_stepwise(llm: Any, prompt: Sequence[int], n: int) -> list[int]:
    """Greedy like llama_greedy, but the prompt is evaluated one token at a time: the same
    weights and the same machine, only llama.cpp's batch kernels differ. How often this
    agrees with llama_greedy is the reference's own reproducibility."""
    out = [int(np.argmax(llama_logits_stepwise(llm, prompt)[-1]))]
    while len(out) < n:
        llm.eval([out[-1]])
        out.append(int(np.argmax(llm.scores[llm.n_tokens - 1])))
    return out


def torch_greedy(runner: Runner, prompt: Sequence[int], n: int, reset: bool = True) -> list[int]:
    if reset:
        runner.reset()
    logits = runner.prefill(prompt)
    out: list[int] = []
    while True:
        tok = int(torch.argmax(logits))
        out.append(tok)
        if len(out) >= n:
            return out
        logits = runner.step(tok)
