"""Our torch backend against llama.cpp with CUDA on the same GGUF, with llama.cpp's own
CPU-against-GPU agreement measured in the same run as the yardstick (issue 15, step 7).

For each prompt (the five of tests/test_torch_parity.py, rendered by the chat template):
- greedy continuations of --tokens tokens: llama.cpp on the GPU (every layer offloaded),
  llama.cpp on the CPU, and the torch backend on --device (CUDA graphs on, its default);
- teacher-forced agreement on the prompt followed by --tokens random tokens (a random-weight
  model's greedy text soon repeats one token; random tokens keep every position different):
  top-1 agreement and mean KL of the next-token distributions at every position, for torch
  vs llama.cpp GPU and for llama.cpp CPU vs llama.cpp GPU;
- the torch backend with CUDA graphs off: its greedy text must equal the graphed one.
It also reads llama.cpp's own load log for "offloaded N/M layers to GPU".

    python bench/gpu_parity.py --model M.gguf [--device cuda] [--dtypes auto,float32]
        [--prompts 5] [--tokens 32] [--json OUT]
    python bench/gpu_parity.py --model M.gguf --device cpu --gpu-layers 0   # a CPU rehearsal

Decode speed is bench/bench_torch.py's job (each engine in its own process).
"""

from __future__ import annotations

import argparse
import ctypes
import json
import os
import re
import sys
import tempfile
import time
from pathlib import Path
from typing import Any

os.environ.setdefault("AIGC_CHAT_DATA_DIR", tempfile.mkdtemp())
os.environ.setdefault("AIGC_CHAT_CONFIG", os.path.join(tempfile.mkdtemp(), "none.toml"))

import numpy as np

PROMPTS = [
    "What is the capital of France?",
    "Write a haiku about autumn leaves.",
    "Explain in one sentence what a CPU cache is.",
    "List three prime numbers.",
    "def fibonacci(n):",
]
LOG: list[str] = []


def llama_engine(llama_cpp: Any, path: str, n_ctx: int, gpu_layers: int) -> Any:
    """A llama.cpp model keeping every position's logits, on the GPU or the CPU, with the
    backend's own AMX workaround and flash attention as the backend would pick it."""
    from aigc_chat.backends.llama_cpp_backend import _model_param_override, default_threads, extra_buffers_enabled

    with _model_param_override(llama_cpp, extra_buffers_enabled("auto")):
        return llama_cpp.Llama(model_path=path, n_ctx=n_ctx, n_batch=n_ctx, logits_all=True, verbose=False,
                               n_threads=default_threads(), n_gpu_layers=gpu_layers,
                               flash_attn=gpu_layers != 0)


def compare(a: list[list[int]], b: list[list[int]]) -> dict[str, Any]:
    prefix = []
    for x, y in zip(a, b, strict=True):
        n = 0
        while n < min(len(x), len(y)) and x[n] == y[n]:
            n += 1
        prefix.append(n)
    return {"identical": sum(x == y for x, y in zip(a, b, strict=True)), "of": len(a),
            "mean_common_prefix": float(np.mean(prefix)), "prefixes": prefix}


def forced(ref: list[np.ndarray], ours: list[np.ndarray]) -> dict[str, float]:
    from aigc_chat.backends.torch_gpt import parity

    kl, top1 = [], []
    for r, o in zip(ref, ours, strict=True):
        kl += list(parity.kl_divergence(r, o))
        top1 += list(r.argmax(-1) == o.argmax(-1))
    return {"top1": float(np.mean(top1)), "mean_kl": float(np.mean(kl)), "positions": len(top1)}


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("--model", required=True)
    ap.add_argument("--device", default="cuda", help="torch backend device")
    ap.add_argument("--dtypes", default="auto,float32", help="torch dtypes to compare, first is the headline")
    ap.add_argument("--gpu-layers", type=int, default=-1, help="llama.cpp 'GPU' engine layers (0: a CPU rehearsal)")
    ap.add_argument("--prompts", type=int, default=5)
    ap.add_argument("--tokens", type=int, default=32)
    ap.add_argument("--json")
    args = ap.parse_args()

    import torch

    from aigc_chat.backends.llama_cpp_backend import import_llama_cpp
    from aigc_chat.backends.torch_gpt import parity
    from aigc_chat.backends.torch_gpt.backend import TorchBackend
    from aigc_chat.chat_types import Message

    llama_cpp = import_llama_cpp()

    @llama_cpp.llama_log_callback
    def _log(level: int, text: bytes, _user: ctypes.c_void_p) -> None:
        LOG.append(text.decode("utf-8", errors="replace"))

    llama_cpp.llama_log_set(_log, ctypes.c_void_p(0))
    out: dict[str, Any] = {"model": args.model, "device": args.device, "torch": torch.__version__,
                           "gpu_offload_supported": bool(llama_cpp.llama_supports_gpu_offload())}
    n_ctx = 256
    t0 = time.perf_counter()
    gpu = llama_engine(llama_cpp, args.model, n_ctx, args.gpu_layers)
    m = re.search(r"offloaded (\d+)/(\d+) layers to GPU", "".join(LOG))
    out["offload"] = {"offloaded": int(m.group(1)), "total": int(m.group(2))} if m else {}
    has_n_layer = hasattr(llama_cpp, "llama_model_n_layer")
    out["n_layer"] = int(llama_cpp.llama_model_n_layer(gpu.model)) if has_n_layer else None
    cpu = llama_engine(llama_cpp, args.model, n_ctx, 0)
    print(f"llama.cpp: GPU offload supported {out['gpu_offload_supported']}; 'GPU' engine log: "
          f"{m.group(0) if m else 'no offload line'}; loaded both in {time.perf_counter() - t0:.1f} s", flush=True)

    prompts_text = PROMPTS[: args.prompts]
    dtypes = [d for d in args.dtypes.split(",") if d]
    ref_g, cpu_g, ref_logits, cpu_logits, prompts = [], [], [], [], []
    torch_runs: dict[str, dict[str, Any]] = {}
    for i, dtype in enumerate(dtypes):
        t0 = time.perf_counter()
        backend = TorchBackend(args.model, {"device": args.device, "dtype": dtype, "n_ctx": n_ctx})
        backend.load()
        info = backend.info()
        print(f"torch backend: {info.device}, graphs {info.details['cuda_graphs']}, quantize "
              f"{info.details['quantize']}, loaded in {time.perf_counter() - t0:.1f} s", flush=True)
        if i == 0:
            prompts = [backend.tokenize_messages([Message("user", t)]) for t in prompts_text]
            rng = np.random.default_rng(0)
            n_vocab = int(gpu.n_vocab())
            forced_seqs = [p + [int(t) for t in rng.integers(0, n_vocab, args.tokens)] for p in prompts]
            for p, f in zip(prompts, forced_seqs, strict=True):
                ref_g.append(parity.llama_greedy(gpu, p, args.tokens))
                cpu_g.append(parity.llama_greedy(cpu, p, args.tokens))
                ref_logits.append(parity.llama_logits(gpu, f))
                cpu_logits.append(parity.llama_logits(cpu, f))
        ours = [parity.torch_greedy(backend._runner, p, args.tokens) for p in prompts]
        ours_logits = [parity.torch_logits(backend._runner.model, f) for f in forced_seqs]
        run = {"device": info.device, "cuda_graphs": info.details["cuda_graphs"], "quantize": info.details["quantize"],
               **{"greedy_" + k: v for k, v in compare(ours, ref_g).items()}, **forced(ref_logits, ours_logits)}
        if i == 0 and info.details["cuda_graphs"]:
            backend.close()
            eager = TorchBackend(args.model,
                                 {"device": args.device, "dtype": dtype, "n_ctx": n_ctx, "cuda_graphs": False})
            eager.load()
            plain = [parity.torch_greedy(eager._runner, p, args.tokens) for p in prompts]
            out["graphs_vs_eager"] = compare(ours, plain)
            backend = eager
        backend.close()
        torch_runs[dtype] = run
        if args.device.startswith("cuda"):
            torch.cuda.empty_cache()
    gpu.close()
    cpu.close()

    head = torch_runs[dtypes[0]]
    cpu_vs_gpu = {**{"greedy_" + k: v for k, v in compare(cpu_g, ref_g).items()}, **forced(ref_logits, cpu_logits)}
    out["torch"] = torch_runs
    out["torch_vs_llama_gpu"] = {"identical": head["greedy_identical"], "of": head["greedy_of"],
                                 "top1": head["top1"], "mean_kl": head["mean_kl"], "dtype": dtypes[0]}
    out["llama_cpu_vs_gpu"] = {"identical": cpu_vs_gpu["greedy_identical"], "of": cpu_vs_gpu["greedy_of"],
                               "top1": cpu_vs_gpu["top1"], "mean_kl": cpu_vs_gpu["mean_kl"]}
    out["llama_cpu_vs_gpu_detail"] = cpu_vs_gpu
    print(f"\n{len(prompts)} prompts, {args.tokens} greedy tokens each; "
          f"teacher-forced on the prompts + {args.tokens} random tokens")
    print(f"{'pair':34} {'identical':>9} {'prefix':>7} {'top-1':>7} {'mean KL':>9}")
    rows = [*((f"torch {d} vs llama.cpp GPU", r) for d, r in torch_runs.items()),
            ("llama.cpp CPU vs llama.cpp GPU", cpu_vs_gpu)]
    for name, r in rows:
        print(f"{name:34} {r['greedy_identical']:>4}/{r['greedy_of']:<4} {r['greedy_mean_common_prefix']:7.1f} "
              f"{r['top1']:7.4f} {r['mean_kl']:9.5f}")
    if "graphs_vs_eager" in out:
        g = out["graphs_vs_eager"]
        print(f"CUDA graphs vs eager ({dtypes[0]}): {g['identical']}/{g['of']} identical greedy continuations")
    if args.json:
        Path(args.json).write_text(json.dumps(out, indent=1))
    return 0


if __name__ == "__main__":
    sys.exit(main())
