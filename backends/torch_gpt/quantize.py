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

from aigc_chat.backends.torch_gpt.model import GPT, Block


class Int8Linear(nn.Module):
    weight: torch.Tensor  # int8 [out, in]; buffers, set in __init__
    scale: torch.Tensor  # one per output row

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
                out = torch.ops.aten._weight_int8pack_mm(x2.to(self.act_dtype), self.weight, self.scale_packed)
                y = out.to(x.dtype)
            except (RuntimeError, NotImplementedError):
                self.packed = False
        if y is None:
            y = F.linear(x2, self.weight.to(x.dtype)) * self.scale.to(x.dtype)
        if self.bias is not None:
            y = y + self.bias.to(y.dtype)
        return y.reshape(*shape[:-1], y.shape[-1])


class RefinedInt4Head(nn.Module):
    """The output head as a 4-bit ranking pass plus exact leading logits (CPU only).

    Gemma's head (262k x 640) is most of the bytes a decode step reads. Here it is read as
    4-bit weights in groups of 32 along the row (a scale and offset per group, like llama.cpp's
    Q4 blocks: a quarter of float16's bytes) through torch's packed int4 CPU kernel; then the
    `refine` highest logits are recomputed from the unquantised rows, so greedy picks and the
    leading probabilities are those of the float16 head. Per-row int8 (`_weight_int8pack_mm`)
    was measured first: no faster than float16 here, and its bfloat16 output blurs near-ties."""

    weight: torch.Tensor  # packed int4; buffers, set in __init__
    scale: torch.Tensor  # scale and offset per group

    GROUP = 32
    PACK_ROWS = 8192  # a multiple of the packed layout's row tiles, so blocks pack like the whole

    def __init__(self, weight: torch.Tensor, refine: int = 256) -> None:
        super().__init__()
        V, D = weight.shape
        g = self.GROUP
        # In blocks of rows: the float32 temporaries of one block stay in cache (0.44 s for
        # Gemma's head here, against 1.7 s in one piece); the packed rows are the same.
        packed, scales, zeros = [], [], []
        for start in range(0, V, self.PACK_ROWS):
            w = weight[start : start + self.PACK_ROWS].detach().float().view(-1, D // g, g)
            lo, hi = w.amin(-1, keepdim=True), w.amax(-1, keepdim=True)
            scale = ((hi - lo) / 15).clamp(min=1e-8)
            q = ((w - lo) / scale).round_().clamp_(0, 15).to(torch.int32).view(-1, D)
            packed.append(torch.ops.aten._convert_weight_to_int4pack_for_cpu(q, 1))
            scales.append(scale.squeeze(-1))
            zeros.append((lo + 8 * scale).squeeze(-1))  # the kernel computes (q - 8) * scale + zero
        self.register_buffer("weight", torch.cat(packed))
        sz = torch.stack([torch.cat(scales), torch.cat(zeros)], -1).transpose(0, 1)
        self.register_buffer("scale", sz.contiguous().to(torch.bfloat16))
        self.exact = weight.detach()
        self.refine = refine

    @classmethod
    def fits(cls, weight: torch.Tensor) -> bool:
        """The packed kernel wants rows in multiples of 16 and groups that divide a row."""
        V, D = weight.shape
        return V % 16 == 0 and D % cls.GROUP == 0

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        shape = x.shape
        x2 = x.reshape(-1, shape[-1])
        y = torch.ops.aten._weight_int4pack_mm_for_cpu(x2.to(torch.bfloat16), self.weight, self.GROUP, self.scale)
        y = y.float()
        idx = y.topk(self.refine, dim=-1).indices
        rows = self.exact[idx]
        y.scatter_(1, idx, torch.einsum("nkd,nd->nk", rows.float(), x2.float()))
        return y.reshape(*shape[:-1], y.shape[-1])


def auto_quantize(device: torch.device, dtype: torch.dtype, head: torch.Tensor) -> str:
    """What `quantize = "auto"` picks. "head-int4" on CPU with bfloat16 when the head is big
    (Gemma 3 270M: 262k x 640, 63% of the bytes a step reads): there it is the difference
    between missing and meeting half of llama.cpp's decode speed, while greedy picks and the
    top-1 agreement with llama.cpp are unchanged (docs/torch.md). Otherwise "none"."""
    V, D = head.shape
    if (device.type == "cpu" and dtype == torch.bfloat16 and V * D >= 32_000_000
            and RefinedInt4Head.fits(head) and V >= 4 * 256
            and hasattr(torch.ops.aten, "_weight_int4pack_mm_for_cpu")):
        return "head-int4"
    return "none"


def quantize_head_int4(model: GPT) -> GPT:
    """Only the (possibly tied) head, in place; the tied embedding keeps its rows."""
    head = model.lm_head.weight if model.lm_head is not None else model.tok_emb.weight
    if not RefinedInt4Head.fits(head):
        raise ValueError(f"a {head.shape[0]} x {head.shape[1]} head cannot be packed to 4 bits "
                         f"(rows must be a multiple of 16, columns of {RefinedInt4Head.GROUP})")
    model.lm_head = RefinedInt4Head(head)
    return model


def quantize_int8(model: GPT) -> GPT:
    """Replace every nn.Linear in the blocks, and the (possibly tied) head, in place."""
    dtype = model.compute_dtype
    for block in model.blocks:
        assert isinstance(block, Block)  # a ModuleList yields plain Modules to the type checker
        for parent in (block.attn, block.ffn):
            for name, child in list(parent.named_children()):
                if isinstance(child, nn.Linear):
                    setattr(parent, name, Int8Linear(child.weight, child.bias, dtype))
    head = model.lm_head.weight if model.lm_head is not None else model.tok_emb.weight
    model.lm_head = Int8Linear(head, None, dtype)
    return model
