"""Drive a GPT over a conversation: prefix reuse, chunked prefill, one-token decode steps.

Like llama.cpp's `generate()`, the runner remembers which tokens its KV cache holds; a new
prompt that shares a prefix with them (the previous turns of a chat) only evaluates the rest.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence

import torch

from aigc_chat.backends.torch_gpt.model import GPT

PREFILL_CHUNK = 256  # bounds the attention mask and activations of a long prompt


class Runner:
    def __init__(self, model: GPT, step: Callable[[torch.Tensor, int], torch.Tensor] | None = None) -> None:
        self.model = model
        self.device = model.tok_emb.weight.device
        self.cached: list[int] = []  # tokens whose keys/values are in the cache, in order
        self._step = step  # an optional compiled decode step

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
        common = 0
        for a, b in zip(self.cached, tokens, strict=False):  # the common prefix
            if a != b:
                break
            common += 1
        common = min(common, len(tokens) - 1)  # at least one token must run to give logits
        self.cached = self.cached[:common]
        logits = None
        for start in range(common, len(tokens), PREFILL_CHUNK):
            chunk = list(tokens[start : start + PREFILL_CHUNK])
            x = torch.tensor([chunk], device=self.device)
            logits = self.model(x, start)
            self.cached += chunk
        assert logits is not None
        return logits[0]

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
