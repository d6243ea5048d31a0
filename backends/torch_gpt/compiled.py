"""An optional torch.compile'd decode step (the `compile` option and bench --compile).

Batch-1 decoding of a small model is dominated by per-operator launch overhead on GPUs;
compiling fuses the small ops of a step. Positions vary every step, so shapes are marked
dynamic rather than recompiling for each length.
"""

from __future__ import annotations

from collections.abc import Callable

import torch

from aigc_chat.backends.torch_gpt.model import GPT


def compiled_step(model: GPT) -> Callable[[torch.Tensor, int], torch.Tensor]:
    fn = torch.compile(model.forward, dynamic=True)

    def step(x: torch.Tensor, pos: int) -> torch.Tensor:
        return fn(x, pos)

    return step
