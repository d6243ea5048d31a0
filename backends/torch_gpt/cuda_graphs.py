"""Decode steps replayed as CUDA graphs (the `cuda_graphs` option, on by default on CUDA).

At batch 1 a small model's decode step is a few hundred tiny kernels: on a GPU the CPU's
time to launch them, not the GPU's time to run them, sets the speed (Gemma 3 270M: see
docs/torch.md). A CUDA graph records the step's kernels once and replays them with one
launch. A graph fixes every shape and pointer, so the step runs in the model's static form
(position as a tensor, attention over a fixed number of cache slots with a mask); one
graph is recorded per cache-length bucket, so a short conversation does not read the
keys and values of the whole context every token.
"""

from __future__ import annotations

import logging
from collections.abc import Callable

import torch

from aigc_chat.backends.torch_gpt.model import GPT

StaticStep = Callable[..., torch.Tensor]
log = logging.getLogger(__name__)


def buckets(max_len: int, smallest: int = 256) -> list[int]:
    """Cache lengths a graph is recorded for: powers of two from `smallest`, then max_len."""
    out, n = [], smallest
    while n < max_len:
        out.append(n)
        n *= 2
    out.append(max_len)
    return out


def bucket_for(sizes: list[int], pos: int) -> int:
    """The smallest cache length that holds position `pos`."""
    return next(b for b in sizes if b > pos)


class GraphedDecoder:
    """A Runner step function: (token [1, 1], position) -> logits [1, V]."""

    def __init__(self, model: GPT, fn: StaticStep | None = None, warmup: int = 2) -> None:
        device = model.tok_emb.weight.device
        if device.type != "cuda":
            raise ValueError("CUDA graphs need the model on a CUDA device")
        self.model = model
        self.fn: StaticStep = fn or model.forward
        self.warmup = warmup
        self.buckets = buckets(model.max_len)
        self.token = torch.zeros((1, 1), dtype=torch.long, device=device)
        self.position = torch.zeros((1,), dtype=torch.long, device=device)
        self.graphs: dict[int, tuple[torch.cuda.CUDAGraph, torch.Tensor]] = {}
        self.pool = torch.cuda.graph_pool_handle()  # one memory pool shared by every bucket
        self.failed = ""  # why recording failed, if it did

    def __call__(self, x: torch.Tensor, pos: int) -> torch.Tensor:
        if self.failed:
            return self.model(x, pos)
        kv_len = bucket_for(self.buckets, pos)
        self.token.copy_(x)
        self.position.fill_(pos)
        entry = self.graphs.get(kv_len)
        if entry is None:
            try:
                entry = self._record(kv_len)
            except RuntimeError as exc:
                # A kernel that cannot be recorded (a driver or library that refuses capture):
                # keep answering, eagerly, and say why once.
                self.failed = str(exc).splitlines()[0] if str(exc) else type(exc).__name__
                log.warning("CUDA graphs disabled, decoding eagerly: %s", self.failed)
                return self.model(x, pos)
        graph, out = entry
        graph.replay()
        # the graph writes into the same buffer every replay: hand out a copy (1 MB for a
        # 262k vocabulary, microseconds on the GPU)
        return out.clone()

    def _record(self, kv_len: int) -> tuple[torch.cuda.CUDAGraph, torch.Tensor]:
        # Warm-up runs (allocator, cuBLAS handles, lazy kernels) on a side stream, as CUDA
        # requires; they write this step's own keys and values, which the replay rewrites
        # with the same numbers.
        side = torch.cuda.Stream()
        side.wait_stream(torch.cuda.current_stream())
        with torch.cuda.stream(side):
            for _ in range(self.warmup):
                self.fn(self.token, self.position, kv_len=kv_len)
        torch.cuda.current_stream().wait_stream(side)
        graph = torch.cuda.CUDAGraph()
        with torch.cuda.graph(graph, pool=self.pool):
            out = self.fn(self.token, self.position, kv_len=kv_len)
        self.graphs[kv_len] = (graph, out)
        return graph, out


def static_step(model: GPT) -> StaticStep:
    """The same static-shape step without a graph (CPU tests; what the graph records)."""

    sizes = buckets(model.max_len)

    def step(x: torch.Tensor, pos: int) -> torch.Tensor:
        return model(x, torch.tensor([pos], device=x.device), kv_len=bucket_for(sizes, pos))

    return step
