"""Drive a GPT over a conversation: prefix reuse, chunked prefill, one-token decode steps.

Like llama.cpp's `generate()`, the runner remembers which tokens its KV cache holds; a new
prompt that shares a prefix with them (the previous turns of a chat) only evaluates the rest.
And like the llama backend, it keeps the cache of a branch a prompt moves away from
(backends/kept_states.py), so moving back to that branch evaluates only what is new.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from aigc_chat.backends.kept_states import KeptStates, common_prefix
from aigc_chat.backends.torch_gpt.model import GPT

PREFILL_CHUNK = 256  # bounds the attention mask and activations of a long prompt


class Runner:
    def __init__(self, model: GPT, step: Callable[[torch.Tensor, int], torch.Tensor] | None = None,
                 kept_budget: int = 0) -> None:
        self.model = model
        self.device = model.tok_emb.weight.device
        self.cached: list[int] = []  # tokens whose keys/values are in the cache, in order
        self._step = step  # an optional compiled decode step
        self.kept = KeptStates(kept_budget)
        self.last_reused = 0  # tokens of the last prompt not evaluated: the cache had them

    @property
    def max_len(self) -> int:
        return self.model.max_len

    def reset(self) -> None:
        self.cached = []

    @torch.inference_mode()
    def prefill(self, tokens: Sequence[int]) -> torch.Tensor:
        """Evaluate the prompt (reusing the cached common prefix); logits of its last token."""
        if not tokens:
            raise ValueError("empty prompt")
        if len(tokens) > self.max_len:
            raise ValueError(f"prompt of {len(tokens)} tokens exceeds the context ({self.max_len})")
        self._switch_branch(tokens)
        common = min(common_prefix(self.cached, tokens), len(tokens) - 1)  # one token runs, for logits
        self.last_reused = common
        self.cached = self.cached[:common]
        logits = None
        for start in range(common, len(tokens), PREFILL_CHUNK):
            chunk = list(tokens[start : start + PREFILL_CHUNK])
            x = torch.tensor([chunk], device=self.device)
            logits = self.model(x, start)
            self.cached += chunk
        assert logits is not None
        return logits[0]

    def _switch_branch(self, tokens: Sequence[int]) -> None:
        """Keep the cache's keys and values (a host copy) when `tokens` would drop much of
        them, and put back a kept copy that shares more with `tokens`."""
        cache = self.model.cache
        if cache is None:
            return
        best = self.kept.best(tokens, common_prefix(self.cached, tokens))
        try:
            if self.kept.worth_keeping(self.cached, tokens):
                n = len(self.cached)
                size = 2 * cache.k[:, :, :, :n].numel() * cache.k.element_size()
                if self.kept.fits(size):  # decided before anything is copied
                    k = cache.k[:, :, :, :n].to("cpu", copy=True)
                    v = cache.v[:, :, :, :n].to("cpu", copy=True)
                    self.kept.keep(self.cached, (k, v), size)
            if best is not None:
                k, v = best.state
                n = len(best.tokens)
                self.cached = []  # until the copy back is whole
                cache.k[:, :, :, :n].copy_(k)
                cache.v[:, :, :, :n].copy_(v)
                self.cached = list(best.tokens)
                self.kept.restored += 1
        except (RuntimeError, MemoryError):  # no room for a copy: it only costs speed
            self.kept.clear()

    @torch.inference_mode()
    def step(self, token: int) -> torch.Tensor:
        """Append one token and return the logits for the next position."""
        pos = len(self.cached)
        if pos >= self.max_len:
            raise ValueError("the context is full")
        x = torch.tensor([[token]], device=self.device)
        self.cached.append(token)
        try:
            out = self._step(x, pos) if self._step is not None else self.model(x, pos)
        except BaseException:
            self.cached.pop()
            raise
        return out[0]
