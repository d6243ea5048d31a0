"""Next-token choice in torch, with llama.cpp's meaning for every parameter.

The order is that of llama-cpp-python's sampler chain: repeat penalty, top-k, top-p, min-p
(top-p and min-p on the untempered distribution), then temperature and a draw. A
`torch.Generator` seeded per request makes a seed reproduce the same text on one device.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from aigc_chat.params import GenerationParams

REPEAT_LAST_N = 64  # llama.cpp's default penalty window


def sample_next(logits: torch.Tensor, params: GenerationParams, recent: Sequence[int],
                generator: torch.Generator | None) -> int:
    """logits: float32 [V] for the next position. Returns the chosen token id."""
    if params.repeat_penalty != 1.0 and recent:
        ids = torch.tensor(sorted(set(recent[-REPEAT_LAST_N:])), device=logits.device)
        picked = logits[ids]
        logits = logits.clone()
        logits[ids] = torch.where(picked > 0, picked / params.repeat_penalty, picked * params.repeat_penalty)
    if params.temperature <= 0.0:
        return int(torch.argmax(logits))
    k = params.top_k
    if 0 < k < logits.shape[-1]:
        values, ids = torch.topk(logits, k)
    else:
        values, ids = torch.sort(logits, descending=True)
    probs = torch.softmax(values, dim=-1)
    keep = values.shape[-1]
    if params.top_p < 1.0:
        cum = torch.cumsum(probs, dim=-1)
        # Keep the smallest prefix whose mass reaches top_p (at least one token).
        keep = min(keep, int((cum < params.top_p).sum()) + 1)
    if params.min_p > 0.0:
        keep = min(keep, max(1, int((probs >= params.min_p * probs[0]).sum())))
    values, ids = values[:keep], ids[:keep]
    probs = torch.softmax(values / params.temperature, dim=-1)
    choice = torch.multinomial(probs.cpu(), 1, generator=generator)
    return int(ids[int(choice)])


def make_generator(seed: int | None) -> torch.Generator:
    """CPU generator (draws happen on the CPU): the same seed gives the same text."""
    gen = torch.Generator(device="cpu")
    if seed is None:
        gen.seed()
    else:
        gen.manual_seed(seed)
    return gen
