"""Benchmark the torch backend against llama.cpp on the same GGUF model.

1. Decode tokens/s and time to first token, torch backend vs llama backend, same messages,
   greedy, interleaved rounds (machine noise hits both alike), ratio printed.
2. Share of the memory-bandwidth limit: weight bytes read per token x tokens/s, over what a
   large tensor copy measures on the same device.

    .venv/bin/python bench/bench_torch.py [--device cpu|cuda] [--dtype auto|float32|bfloat16]
        [--quantize none|int8] [--compile] [--rounds 3] [--tokens 64] [--model PATH]
        [--no-llama]   # torch figures only (e.g. a GPU box whose llama.cpp is CPU-only)
"""

from __future__ import annotations

import argparse
import os
import statistics
import tempfile
import time
from pathlib import Path

os.environ.setdefault("AIGC_CHAT_CACHE_DIR", str(Path(__file__).resolve().parent.parent / ".test-cache"))
os.environ.setdefault("AIGC_CHAT_DATA_DIR", tempfile.mkdtemp())
os.environ.setdefault("AIGC_CHAT_CONFIG", os.path.join(tempfile.mkdtemp(), "none.toml"))

import torch  # noqa: E402

from aigc_chat.backends.base import Backend, Message  # noqa: E402
from aigc_chat.backends.torch_gpt.backend import TorchBackend  # noqa: E402
from aigc_chat.params import GenerationParams  # noqa: E402

MESSAGES = [Message("user", "Write a long story about a lighthouse keeper and the sea.")]


def copy_bandwidth(device: torch.device, mib: int = 512, reps: int = 5) -> float:
    """Bytes/s of a large device-to-device copy (read + write counted)."""
    n = mib * 1024 * 1024 // 4
    a = torch.randn(n, device=device)
    b = torch.empty_like(a)
    best = float("inf")
    for _ in range(reps):
        _sync(device)
        t = time.perf_counter()
        b.copy_(a)
        _sync(device)
        best = min(best, time.perf_counter() - t)
    return 2 * a.numel() * a.element_size() / best


def _sync(device: torch.device) -> None:
    if device.type == "cuda":
        torch.cuda.synchronize(device)


def weight_bytes_per_token(backend: TorchBackend) -> int:
    """Every matrix of the blocks and the head, as held in memory (int8 + scales if quantised);
    the embedding lookup reads one row and is left out."""
    model = backend._runner.model
    total = 0
    for block in model.blocks:
        for mod in list(block.attn.children()) + list(block.ffn.children()):
            for t in list(mod.parameters(recurse=False)) + list(mod.buffers(recurse=False)):
                if t.dim() >= 1 and mod.__class__.__name__ != "Norm":
                    total += t.numel() * t.element_size()
    head = model.lm_head if model.lm_head is not None else None
    if head is None:
        w = model.tok_emb.weight
        total += w.numel() * w.element_size()
    else:
        for t in list(head.parameters(recurse=False)) + [b for n, b in head.named_buffers(recurse=False) if n != "scale_packed"]:
            total += t.numel() * t.element_size()
    return total


def gguf_matrix_bytes(path: Path) -> int:
    """What llama.cpp reads per token: the quantised matrices as stored, head included."""
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType

    from aigc_chat.gguf_info import read_gguf_info

    info = read_gguf_info(path)
    total = 0
    tied = not any(n == "output.weight" for n, *_ in info.tensors)
    for name, dims, ttype, _ in info.tensors:
        if len(dims) < 2 or (name == "token_embd.weight" and not tied):
            continue
        block, size = GGML_QUANT_SIZES[GGMLQuantizationType(ttype)]
        n = 1
        for d in dims:
            n *= int(d)
        total += n // block * size
    return total


def run_once(backend: Backend, n: int) -> tuple[float, float]:
    """(time to first token s, decode tok/s) from a cold prompt."""
    if isinstance(backend, TorchBackend):
        backend._runner.reset()
    else:
        backend._llm.reset()
    r = backend.stream_chat(MESSAGES, GenerationParams(temperature=0.0, max_tokens=n)).consume()
    if r.completion_tokens < n:
        raise SystemExit(f"{backend.name} stopped after {r.completion_tokens} tokens; raise --tokens or change the prompt")
    return r.time_to_first_token or 0.0, r.decode_tokens_per_s or 0.0


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="GGUF file (default: the bundled Gemma 3 270M Q4_K_M)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--quantize", default="none", choices=["none", "int8"])
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--tokens", type=int, default=64)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--no-llama", action="store_true", help="skip the llama.cpp side")
    args = ap.parse_args()

    from aigc_chat.backends.llama_cpp_backend import resolve_model_path

    path = resolve_model_path(args.model)
    t0 = time.perf_counter()
    ours = TorchBackend(str(path), {"device": args.device, "dtype": args.dtype, "n_ctx": 1024,
                                    "quantize": args.quantize, "compile": args.compile,
                                    "n_threads": args.threads})
    ours.load()
    load_s = time.perf_counter() - t0
    info = ours.info()
    device = ours._device
    print(f"model: {path.name}  torch {torch.__version__} on {info.device}, threads {info.details['threads']}, "
          f"quantize {args.quantize}, compile {args.compile}, load {load_s:.1f} s")
    ref = None
    if not args.no_llama:
        from aigc_chat.backends.llama_cpp_backend import LlamaCppBackend

        ref = LlamaCppBackend(str(path), {"n_ctx": 1024, "n_threads": args.threads})
        ref.load()
        print(f"llama.cpp on {ref.info().device}, threads {ref.info().details['threads']}")
    assert ours.tokenize_messages(MESSAGES) == (ref.tokenize_messages(MESSAGES) if ref else ours.tokenize_messages(MESSAGES))

    run_once(ours, 8)  # warm-up (and compilation, with --compile)
    if ref:
        run_once(ref, 8)
    t_ttft, t_tps, l_ttft, l_tps = [], [], [], []
    for _ in range(args.rounds):
        a, b = run_once(ours, args.tokens)
        t_ttft.append(a)
        t_tps.append(b)
        if ref:
            a, b = run_once(ref, args.tokens)
            l_ttft.append(a)
            l_tps.append(b)
    med = statistics.median
    prompt = len(ours.tokenize_messages(MESSAGES))
    print(f"prompt {prompt} tokens, {args.tokens} generated, {args.rounds} interleaved rounds, medians:")
    print(f"  torch    : decode {med(t_tps):7.1f} tok/s   TTFT {med(t_ttft) * 1e3:7.1f} ms   "
          f"(rounds: {', '.join(f'{x:.1f}' for x in t_tps)})")
    if ref:
        print(f"  llama.cpp: decode {med(l_tps):7.1f} tok/s   TTFT {med(l_ttft) * 1e3:7.1f} ms   "
              f"(rounds: {', '.join(f'{x:.1f}' for x in l_tps)})")
        print(f"  ratio torch/llama.cpp: decode {med(t_tps) / med(l_tps):.3f} (target >= 0.5 on CPU), "
              f"TTFT {med(t_ttft) / med(l_ttft):.2f}x")

    bw = copy_bandwidth(device)
    wb = weight_bytes_per_token(ours)
    share = wb * med(t_tps) / bw
    print(f"bandwidth: copy {bw / 1e9:.1f} GB/s on {device}; torch reads {wb / 1e6:.0f} MB of weights per token "
          f"-> {wb * med(t_tps) / 1e9:.1f} GB/s = {share:.0%} of the copy bandwidth")
    if ref:
        lb = gguf_matrix_bytes(path)
        print(f"           llama.cpp reads {lb / 1e6:.0f} MB per token -> {lb * med(l_tps) / 1e9:.1f} GB/s "
              f"= {lb * med(l_tps) / bw:.0%} of it")
        ref.close()
    ours.close()


if __name__ == "__main__":
    main()
