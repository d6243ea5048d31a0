"""Weight-only int8: every matrix (and the output head) stored as int8 with one float scale
per output row, activations left in the model's dtype.

A decode step reads each weight once, so halving (vs bfloat16) or quartering (vs float32) the
bytes per weight is what speeds up a memory-bound step. The matmul is torch's
`_weight_int8pack_mm` where this torch has it, else dequantise-and-multiply.
"""

from __future__ import annotations

import torch
import torch.nn.functional as F
from torch import nn

from aigc_chat.backends.torch_gpt.model import GPT


class Int8Linear(nn.Module):
    def __init__(self, weight: torch.Tensor, bias: torch.Tensor | None, act_dtype: torch.dtype) -> None:
        super().__init__()
        w = weight.float()
        scale = (w.abs().amax(dim=1) / 127.0).clamp(min=1e-12)
        self.register_buffer("weight", torch.round(w / scale[:, None]).clamp(-127, 127).to(torch.int8))
        self.register_buffer("scale", scale.to(act_dtype))
        self.bias = None if bias is None else nn.Parameter(bias.detach(), requires_grad=False)
        # The packed kernel wants bf16/fp16 activations on CPU (float32 measured 4x slower).
        self.act_dtype = torch.bfloat16 if weight.device.type == "cpu" else act_dtype
        self.scale_packed = self.scale.to(self.act_dtype)
        self.packed = hasattr(torch.ops.aten, "_weight_int8pack_mm")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        y = None
        if self.packed:
            try:
                y = torch.ops.aten._weight_int8pack_mm(x2.to(self.act_dtype), self.weight, self.scale_packed).to(x.dtype)
            except (RuntimeError, NotImplementedError):
                self.packed = False
        if y is None:
            y = F.linear(x2, self.weight.to(x.dtype)) * self.scale.to(x.dtype)
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.reshape(*shape[:-1], y.shape[-1])


def quantize_int8(model: GPT) -> GPT:
    """Replace every nn.Linear in the blocks, and the (possibly tied) head, in place."""
    dtype = model.compute_dtype
    for block in model.blocks:
        for parent in (block.attn, block.ffn):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.Linear):
                    setattr(parent, name, Int8Linear(child.weight, child.bias, dtype))
    head = model.lm_head.weight if model.lm_head is not None else model.tok_emb.weight
    model.lm_head = Int8Linear(head, None, dtype)
    return model
