"""Benchmark the torch backend against llama.cpp on the same GGUF model.

1. Decode tokens/s and time to first token, torch backend vs llama backend, same messages,
   greedy, interleaved rounds (machine noise hits both alike), ratio printed. Each engine
   runs in its own worker process: in one process their two OpenMP thread pools slowed
   torch several-fold (measured), which is not how either is used.
2. Share of the memory-bandwidth limit: weight bytes read per token x tokens/s, over what a
   large tensor copy measures on the same device.

    .venv/bin/python bench/bench_torch.py [--device cpu|cuda] [--dtype auto|float32|bfloat16]
        [--quantize auto|none|int8|head-int4] [--compile] [--rounds 3] [--tokens 64] [--model PATH]
        [--no-llama]   # torch figures only (e.g. a GPU box whose llama.cpp is CPU-only)
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

os.environ.setdefault("AIGC_CHAT_CACHE_DIR", str(Path(__file__).resolve().parent.parent / ".test-cache"))
os.environ.setdefault("AIGC_CHAT_DATA_DIR", tempfile.mkdtemp())
os.environ.setdefault("AIGC_CHAT_CONFIG", os.path.join(tempfile.mkdtemp(), "none.toml"))

import torch

from aigc_chat.backends.base import Backend
from aigc_chat.backends.torch_gpt.backend import TorchBackend
from aigc_chat.chat_types import Message
from aigc_chat.params import GenerationParams

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
        buffers = [b for n, b in head.named_buffers(recurse=False) if n != "scale_packed"]
        for t in [*head.parameters(recurse=False), *buffers]:
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
        raise SystemExit(f"{backend.name} stopped after {r.completion_tokens} tokens; "
                         "raise --tokens or change the prompt")
    return r.time_to_first_token or 0.0, r.decode_tokens_per_s or 0.0


def worker(args: argparse.Namespace) -> None:
    """Load one engine, then run a round for every line on stdin; one JSON line per round."""
    from aigc_chat.backends.llama_cpp_backend import LlamaCppBackend, resolve_model_path

    path = resolve_model_path(args.model)
    t0 = time.perf_counter()
    if args.worker == "torch":
        backend: Backend = TorchBackend(str(path), {
            "device": args.device, "dtype": args.dtype, "n_ctx": 1024, "quantize": args.quantize,
            "compile": args.compile, "n_threads": args.threads})
    else:
        backend = LlamaCppBackend(str(path), {"n_ctx": 1024, "n_threads": args.threads})
    backend.load()
    load_s = time.perf_counter() - t0
    run_once(backend, 8)  # warm-up (and compilation, with --compile)
    hello = {"load_s": load_s, "device": backend.info().device, "threads": backend.info().details["threads"],
             "prompt": backend.tokenize_messages(MESSAGES)}
    if isinstance(backend, TorchBackend):
        bw = copy_bandwidth(backend._device)
        hello.update(bandwidth=bw, weight_bytes=weight_bytes_per_token(backend), torch=torch.__version__)
    print(json.dumps(hello), flush=True)
    for line in sys.stdin:
        n = int(line)
        ttft, tps = run_once(backend, n)
        print(json.dumps({"ttft": ttft, "tps": tps}), flush=True)


class Worker:
    def __init__(self, kind: str, argv: list[str]) -> None:
        self.proc = subprocess.Popen([sys.executable, __file__, "--worker", kind, *argv],
                                     stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True)
        self.hello = self._read()

    def _read(self) -> dict:
        line = self.proc.stdout.readline()
        if not line:
            raise SystemExit(f"bench worker failed (exit {self.proc.wait()})")
        return json.loads(line)

    def round(self, n: int) -> dict:
        self.proc.stdin.write(f"{n}\n")
        self.proc.stdin.flush()
        return self._read()

    def close(self) -> None:
        self.proc.stdin.close()
        self.proc.wait()


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", default=None, help="GGUF file (default: the bundled Gemma 3 270M Q4_K_M)")
    ap.add_argument("--device", default="auto")
    ap.add_argument("--dtype", default="auto")
    ap.add_argument("--quantize", default="auto", choices=["auto", "none", "int8", "head-int4"])
    ap.add_argument("--compile", action="store_true")
    ap.add_argument("--rounds", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=48)
    ap.add_argument("--threads", type=int, default=0)
    ap.add_argument("--no-llama", action="store_true", help="skip the llama.cpp side")
    ap.add_argument("--worker", choices=["torch", "llama"], help=argparse.SUPPRESS)
    args = ap.parse_args()
    if args.worker:
        return worker(args)
    passthrough = [
        "--device", args.device, "--dtype", args.dtype, "--quantize", args.quantize, "--threads", str(args.threads),
        *(["--model", args.model] if args.model else []), *(["--compile"] if args.compile else []),
    ]

    from aigc_chat.backends.llama_cpp_backend import resolve_model_path

    path = resolve_model_path(args.model)
    ours = Worker("torch", passthrough)
    h = ours.hello
    print(f"model: {path.name}  torch {h['torch']} on {h['device']}, threads {h['threads']}, "
          f"quantize {args.quantize}, compile {args.compile}, load {h['load_s']:.1f} s")
    ref = None
    if not args.no_llama:
        ref = Worker("llama", passthrough)
        print(f"llama.cpp on {ref.hello['device']}, threads {ref.hello['threads']}, load {ref.hello['load_s']:.1f} s")
        if ref.hello["prompt"] != h["prompt"]:
            raise SystemExit("the two backends built different prompt tokens")
    t_ttft, t_tps, l_ttft, l_tps = [], [], [], []
    for _ in range(args.rounds):
        r = ours.round(args.tokens)
        t_ttft.append(r["ttft"])
        t_tps.append(r["tps"])
        if ref:
            r = ref.round(args.tokens)
            l_ttft.append(r["ttft"])
            l_tps.append(r["tps"])
    med = statistics.median
    print(f"prompt {len(h['prompt'])} tokens, {args.tokens} generated, {args.rounds} interleaved rounds, medians:")
    print(f"  torch    : decode {med(t_tps):7.1f} tok/s   TTFT {med(t_ttft) * 1e3:7.1f} ms   "
          f"(rounds: {', '.join(f'{x:.1f}' for x in t_tps)})")
    if ref:
        print(f"  llama.cpp: decode {med(l_tps):7.1f} tok/s   TTFT {med(l_ttft) * 1e3:7.1f} ms   "
              f"(rounds: {', '.join(f'{x:.1f}' for x in l_tps)})")
        print(f"  ratio torch/llama.cpp: decode {med(t_tps) / med(l_tps):.3f} (target >= 0.5 on CPU), "
              f"TTFT {med(t_ttft) / med(l_ttft):.2f}x")
        # On a shared machine a round can be hit by someone else's job; best rounds show
        # what each engine does when it has the cores.
        print(f"  best rounds: torch {max(t_tps):.1f} tok/s, llama.cpp {max(l_tps):.1f} tok/s, "
              f"ratio {max(t_tps) / max(l_tps):.3f}; TTFT {min(t_ttft) * 1e3:.1f} vs {min(l_ttft) * 1e3:.1f} ms")
    bw, wb = h["bandwidth"], h["weight_bytes"]
    print(f"bandwidth: copy {bw / 1e9:.1f} GB/s on {h['device'].split(',')[0]}; "
          f"torch reads {wb / 1e6:.0f} MB of weights per token"
          f" -> {wb * med(t_tps) / 1e9:.1f} GB/s = {wb * med(t_tps) / bw:.0%} of the copy bandwidth")
    if ref:
        lb = gguf_matrix_bytes(path)
        print(f"           llama.cpp reads {lb / 1e6:.0f} MB per token -> {lb * med(l_tps) / 1e9:.1f} GB/s "
              f"= {lb * med(l_tps) / bw:.0%} of it")
        ref.close()
    ours.close()


if __name__ == "__main__":
    main()
