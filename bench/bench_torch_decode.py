"""Batch-1 decode speed of our torch GPT against the memory-bandwidth limit, per model shape.

Builds the model with random weights in the exact shapes of real checkpoints (Gemma 3 270M,
Llama 3.2 1B, Llama 3.1 8B): decode speed depends on shapes, dtypes and kernels, not on the
weights' values, and a GPU box may have no way to fetch the files. For each shape and mode
(eager; CUDA graphs; torch.compile + CUDA graphs) it prints decode tokens/s, the bytes of
weights read per token, the bandwidth that implies, and its share of what a large
device-to-device copy reaches on the same device, measured in the same run.

    python bench/bench_torch_decode.py --device cuda [--shapes gemma3-270m,llama-1b,llama-8b]
        [--modes eager,graphs,compile+graphs] [--tokens 256] [--context 64] [--dtype bfloat16]
        [--bandwidth-gbs GBPS]   # the ceiling measured elsewhere in the same run (bench/gpu_check.sh)

Run from the repo with the package installed (or its folders on PYTHONPATH as aigc_chat).
"""

from __future__ import annotations

import argparse
import statistics
import sys
import time
from pathlib import Path
from typing import TYPE_CHECKING

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench_torch import copy_bandwidth

from aigc_chat.backends.torch_gpt.model import GPT, ModelConfig, build_model
from aigc_chat.backends.torch_gpt.runner import Runner

if TYPE_CHECKING:
    from aigc_chat.backends.torch_gpt.cuda_graphs import GraphedDecoder

SHAPES = {
    # google/gemma-3-270m as our GGUF loader reads it
    "gemma3-270m": ModelConfig(
        arch="gemma3", vocab_size=262144, n_embd=640, n_layer=18, n_head=4, n_kv_head=1,
        head_dim=256, ffn_dim=2048, context_length=32768, norm_eps=1e-6, rope_base=1e6,
        rope_neox=True, sliding_window=512, sliding_layers=tuple(i % 6 < 5 for i in range(18)),
        qk_norm=True, sandwich_norms=True, embed_scale=True, activation="gelu_tanh"),
    # meta-llama/Llama-3.2-1B (tied head)
    "llama-1b": ModelConfig(
        arch="llama", vocab_size=128256, n_embd=2048, n_layer=16, n_head=32, n_kv_head=8,
        head_dim=64, ffn_dim=8192, context_length=131072, rope_base=500000.0),
    # meta-llama/Llama-3.1-8B (separate head)
    "llama-8b": ModelConfig(
        arch="llama", vocab_size=128256, n_embd=4096, n_layer=32, n_head=32, n_kv_head=8,
        head_dim=128, ffn_dim=14336, context_length=131072, rope_base=500000.0, tied_head=False),
}


def random_model(cfg: ModelConfig, device: torch.device, dtype: torch.dtype, max_len: int) -> GPT:
    with torch.device("meta"):
        shapes = {k: p.shape for k, p in GPT(cfg).named_parameters()}
    gen = torch.Generator(device=device).manual_seed(0)
    state = {}
    for k, shape in shapes.items():
        if "norm" in k:
            state[k] = torch.ones(shape, device=device)
        else:
            t = torch.empty(shape, device=device, dtype=dtype)
            state[k] = t.normal_(0.0, 0.02, generator=gen)
    model = build_model(cfg, state, device, dtype)
    model.setup_cache(max_len)
    return model


def matrix_bytes(model: GPT) -> int:
    """Bytes of weights one decode step reads: every block matrix and the head."""
    total = 0
    for block in model.blocks:
        for mod in (*block.attn.children(), *block.ffn.children()):
            w = getattr(mod, "weight", None)
            if isinstance(w, torch.Tensor) and w.dim() == 2:
                total += w.numel() * w.element_size()
    head = model.head_weight()
    return total + head.numel() * head.element_size()


def make_step(model: GPT, mode: str) -> GraphedDecoder | None:
    """The Runner's step for `mode`; None is the eager forward."""
    if mode == "eager":
        return None
    from aigc_chat.backends.torch_gpt.cuda_graphs import GraphedDecoder

    fn = torch.compile(model.forward, dynamic=False) if mode == "compile+graphs" else None
    return GraphedDecoder(model, fn)


def decode_rate(runner: Runner, prompt: list[int], n: int, device: torch.device) -> float:
    """Greedy decode of n tokens, one token per step as the backend does (argmax read back)."""
    runner.reset()
    logits = runner.prefill(prompt)
    token = int(logits.argmax())
    torch.cuda.synchronize(device) if device.type == "cuda" else None
    t = time.perf_counter()
    for _ in range(n):
        token = int(runner.step(token).argmax())
    return n / (time.perf_counter() - t)


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    ap.add_argument("--device", default="cuda")
    ap.add_argument("--dtype", default="bfloat16")
    ap.add_argument("--shapes", default="gemma3-270m,llama-1b,llama-8b")
    ap.add_argument("--modes", default="eager,graphs,compile+graphs")
    ap.add_argument("--tokens", type=int, default=256)
    ap.add_argument("--context", type=int, default=64, help="prompt tokens before decoding")
    ap.add_argument("--rounds", type=int, default=3)
    ap.add_argument("--bandwidth-gbs", type=float, default=0.0,
                    help="copy bandwidth (GB/s, read + write) to use as the ceiling; 0: measure it here")
    args = ap.parse_args()
    device, dtype = torch.device(args.device), getattr(torch, args.dtype)
    given = args.bandwidth_gbs > 0
    bw = args.bandwidth_gbs * 1e9 if given else copy_bandwidth(device, mib=1024 if device.type == "cuda" else 512)
    name = torch.cuda.get_device_name(device) if device.type == "cuda" else "CPU"
    print(f"{name}, torch {torch.__version__}, {args.dtype}; copy bandwidth {bw / 1e9:.0f} GB/s "
          f"(read + write, {'given' if given else 'measured here'}); {args.tokens} tokens after a "
          f"{args.context}-token prompt, best of {args.rounds}")
    print(f"{'shape':12} {'mode':15} {'tok/s':>8} {'ms/tok':>7} {'MB/tok':>7} {'GB/s':>6} {'share':>6}")
    for shape in args.shapes.split(","):
        cfg = SHAPES[shape]
        model = random_model(cfg, device, dtype, max_len=args.context + args.tokens + 8)
        nbytes = matrix_bytes(model)
        prompt = [int(t) for t in torch.randint(10, cfg.vocab_size, (args.context,))]
        runner = None  # no mode may run: graphs and compile are CUDA only
        for mode in args.modes.split(","):
            if mode != "eager" and device.type != "cuda":
                continue
            runner = Runner(model, make_step(model, mode))
            decode_rate(runner, prompt, 16, device)  # warm-up: graph recording, compilation
            rates = [decode_rate(runner, prompt, args.tokens, device) for _ in range(args.rounds)]
            best, med = max(rates), statistics.median(rates)
            gbs = nbytes * best / 1e9
            print(f"{shape:12} {mode:15} {best:8.1f} {1000 / best:7.2f} {nbytes / 1e6:7.0f} "
                  f"{gbs:6.0f} {gbs * 1e9 / bw:6.1%}   (median {med:.1f} tok/s)", flush=True)
        del model, runner
        if device.type == "cuda":
            torch.cuda.empty_cache()


if __name__ == "__main__":
    main()
