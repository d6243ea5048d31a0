"""A decoder-only transformer with a static KV cache, covering the families we load.

One module, switched by `ModelConfig` flags rather than one class per family, because the
families differ in a handful of places only: the norm (RMS or LayerNorm), positions (RoPE in
either pairing, or learned), the FFN (gated or not), Gemma 3's extra norms and sliding
window, and whether linear layers have biases. Every choice mirrors what llama.cpp computes
for the same GGUF file, so logits can be compared position by position.

The cache is allocated once for the whole context: a decode step writes one slot per layer
and attends over a view of the filled part, so no per-token allocation grows with length.

A decode step can also run with static shapes (the position as a tensor, attention over a
fixed `kv_len` of the cache with a mask), which is what a CUDA graph needs: see
`cuda_graphs.py`. Same arithmetic, only the masked-out keys differ.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, field
from typing import TYPE_CHECKING

import torch
import torch.nn.functional as F
from torch import nn

if TYPE_CHECKING:
    from aigc_chat.backends.torch_gpt.quantize import Int8Linear, RefinedInt4Head


@dataclass
class ModelConfig:
    arch: str  # "llama", "gemma3" or "gpt2"
    vocab_size: int
    n_embd: int
    n_layer: int
    n_head: int
    n_kv_head: int
    head_dim: int
    ffn_dim: int
    context_length: int
    norm: str = "rms"  # "rms" or "layer"
    norm_eps: float = 1e-5
    positions: str = "rope"  # "rope" or "learned"
    rope_neox: bool = False  # pairs (i, i + d/2) instead of (2i, 2i + 1)
    rope_dim: int = 0  # rotated dimensions per head; 0 = head_dim
    rope_base: float = 10000.0
    rope_base_local: float = 10000.0  # for sliding-window layers
    rope_scale: float = 1.0  # linear position scaling of global layers (1 / factor)
    sliding_window: int = 0  # 0 = none
    sliding_layers: tuple[bool, ...] = field(default_factory=tuple)
    qk_norm: bool = False
    sandwich_norms: bool = False  # Gemma: norms after attention and FFN too
    embed_scale: bool = False  # Gemma: embeddings times sqrt(n_embd)
    gated_ffn: bool = True
    activation: str = "silu"  # "silu", "gelu_tanh" or "gelu" (exact)
    bias: bool = False
    tied_head: bool = True
    attn_scale: float = 0.0  # 0 = 1/sqrt(head_dim)

    def __post_init__(self) -> None:
        if not self.rope_dim:
            self.rope_dim = self.head_dim
        if not self.attn_scale:
            self.attn_scale = 1.0 / math.sqrt(self.head_dim)
        if not self.sliding_layers:
            self.sliding_layers = (False,) * self.n_layer

    def weight_bytes_per_token(self, bytes_per_weight: float) -> float:
        """Bytes of weights a decode step reads: every matrix once, the embedding row aside."""
        d, h, kv, hd, f = self.n_embd, self.n_head, self.n_kv_head, self.head_dim, self.ffn_dim
        per_layer = d * h * hd * 2 + d * kv * hd * 2 + d * f * (3 if self.gated_ffn else 2)
        return (per_layer * self.n_layer + self.vocab_size * d) * bytes_per_weight


class Norm(nn.Module):
    """RMSNorm or LayerNorm, computed in float32 whatever the weights' dtype."""

    def __init__(self, dim: int, kind: str, eps: float) -> None:
        super().__init__()
        self.kind, self.eps = kind, eps
        self.weight = nn.Parameter(torch.ones(dim))
        self.bias = nn.Parameter(torch.zeros(dim)) if kind == "layer" else None

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        xf = x.float()
        if self.kind == "layer":
            assert self.bias is not None  # a LayerNorm always has one
            y = F.layer_norm(xf, (xf.shape[-1],), self.weight.float(), self.bias.float(), self.eps)
        else:
            y = F.rms_norm(xf, (xf.shape[-1],), self.weight.float(), self.eps)
        return y.to(x.dtype)


class KVCache(nn.Module):
    """Keys and values for every layer and position, allocated once."""

    k: torch.Tensor  # [n_layer, batch, n_kv_head, max_len, head_dim]; buffers, set in __init__
    v: torch.Tensor
    positions: torch.Tensor

    def __init__(self, cfg: ModelConfig, max_len: int, batch: int, dtype: torch.dtype,
                 device: torch.device) -> None:
        super().__init__()
        shape = (cfg.n_layer, batch, cfg.n_kv_head, max_len, cfg.head_dim)
        self.register_buffer("k", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        self.register_buffer("v", torch.zeros(shape, dtype=dtype, device=device), persistent=False)
        # slot indices, for the masks of static-shape decode steps
        self.register_buffer("positions", torch.arange(max_len, device=device), persistent=False)
        self.max_len = max_len


def rope_tables(max_len: int, dim: int, base: float, device: torch.device,
                scale: float = 1.0) -> tuple[torch.Tensor, torch.Tensor]:
    """cos and sin of scale * pos * base^(-2i/dim), [max_len, dim/2], computed once in float64."""
    inv = base ** (-torch.arange(0, dim, 2, dtype=torch.float64) / dim)
    ang = scale * torch.arange(max_len, dtype=torch.float64)[:, None] * inv[None, :]
    return ang.cos().float().to(device), ang.sin().float().to(device)


def apply_rope(x: torch.Tensor, cos: torch.Tensor, sin: torch.Tensor, neox: bool, rot: int) -> torch.Tensor:
    """x: [B, T, H, D]; cos/sin: [T, rot/2]. Rotates the first `rot` dims of each head."""
    xf = x.float()
    xr, xp = xf[..., :rot], xf[..., rot:]
    c, s = cos[None, :, None, :], sin[None, :, None, :]
    if neox:
        a, b = xr[..., : rot // 2], xr[..., rot // 2 :]
        out = torch.cat([a * c - b * s, a * s + b * c], dim=-1)
    else:
        a, b = xr[..., 0::2], xr[..., 1::2]
        out = torch.stack([a * c - b * s, a * s + b * c], dim=-1).flatten(-2)
    if xp.shape[-1]:
        out = torch.cat([out, xp], dim=-1)
    return out.to(x.dtype)


class Attention(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        self.cfg, self.layer = cfg, layer
        d, hd = cfg.n_embd, cfg.head_dim
        self.wq = nn.Linear(d, cfg.n_head * hd, bias=cfg.bias)
        self.wk = nn.Linear(d, cfg.n_kv_head * hd, bias=cfg.bias)
        self.wv = nn.Linear(d, cfg.n_kv_head * hd, bias=cfg.bias)
        self.wo = nn.Linear(cfg.n_head * hd, d, bias=cfg.bias)
        self.q_norm = Norm(hd, cfg.norm, cfg.norm_eps) if cfg.qk_norm else None
        self.k_norm = Norm(hd, cfg.norm, cfg.norm_eps) if cfg.qk_norm else None
        self.window = cfg.sliding_window if cfg.sliding_layers[layer] else 0
        self.wqkv: nn.Linear | None = None  # set by fuse(): one matmul instead of three

    def fuse(self) -> None:
        """Replace wq, wk, wv by one concatenated projection (fewer, larger matmuls)."""
        self.wqkv = _concat_linear([self.wq, self.wk, self.wv])
        del self.wq, self.wk, self.wv

    def forward(self, x: torch.Tensor, pos0: int | torch.Tensor, cache: KVCache,
                rope: tuple[torch.Tensor, torch.Tensor] | None, kv_len: int = 0) -> torch.Tensor:
        """pos0 an int: T tokens from there, attending over the filled cache. pos0 a tensor
        [1] (with kv_len): one token, attending over the first kv_len slots, static shapes."""
        cfg = self.cfg
        B, T, _ = x.shape
        if self.wqkv is not None:
            nq, nkv = cfg.n_head * cfg.head_dim, cfg.n_kv_head * cfg.head_dim
            q, k, v = self.wqkv(x).split([nq, nkv, nkv], dim=-1)
        else:
            q, k, v = self.wq(x), self.wk(x), self.wv(x)
        q = q.view(B, T, cfg.n_head, cfg.head_dim)
        k = k.view(B, T, cfg.n_kv_head, cfg.head_dim)
        v = v.view(B, T, cfg.n_kv_head, cfg.head_dim)
        if self.q_norm is not None and self.k_norm is not None:  # both or neither (cfg.qk_norm)
            q, k = self.q_norm(q), self.k_norm(k)
        if rope is not None:
            if isinstance(pos0, torch.Tensor):  # static shapes
                cos, sin = rope[0].index_select(0, pos0), rope[1].index_select(0, pos0)
            else:
                cos, sin = rope[0][pos0 : pos0 + T], rope[1][pos0 : pos0 + T]
            q = apply_rope(q, cos, sin, cfg.rope_neox, cfg.rope_dim)
            k = apply_rope(k, cos, sin, cfg.rope_neox, cfg.rope_dim)
        kc, vc = cache.k[self.layer], cache.v[self.layer]
        mask = None
        if isinstance(pos0, torch.Tensor):  # static shapes
            kc.index_copy_(2, pos0, k.transpose(1, 2))
            vc.index_copy_(2, pos0, v.transpose(1, 2))
            keys, values = kc[:, :, :kv_len], vc[:, :, :kv_len]
            kpos = cache.positions[:kv_len]
            mask = kpos <= pos0
            if self.window:
                mask &= (pos0 - kpos) < self.window
            mask = mask[None, :]
        else:
            end = pos0 + T
            kc[:, :, pos0:end] = k.transpose(1, 2)
            vc[:, :, pos0:end] = v.transpose(1, 2)
            # Keys before `start` are outside every query's window; the mask handles the rest.
            start = max(0, end - T - self.window + 1) if self.window else 0
            keys, values = kc[:, :, start:end], vc[:, :, start:end]
            if T > 1:
                qpos = torch.arange(pos0, end, device=x.device)[:, None]
                kpos = torch.arange(start, end, device=x.device)[None, :]
                mask = kpos <= qpos
                if self.window:
                    mask &= (qpos - kpos) < self.window
        q = q.transpose(1, 2)
        if x.device.type == "cpu":
            out = _attention(q, keys, values, mask, cfg.attn_scale)
        else:
            out = F.scaled_dot_product_attention(
                q, keys, values, attn_mask=mask, scale=cfg.attn_scale,
                enable_gqa=cfg.n_kv_head != cfg.n_head,
            )
        return self.wo(out.transpose(1, 2).reshape(B, T, cfg.n_head * cfg.head_dim))


def _attention(q: torch.Tensor, k: torch.Tensor, v: torch.Tensor, mask: torch.Tensor | None,
               scale: float) -> torch.Tensor:
    """Plain attention with grouped KV heads and a float32 softmax. On CPU this beats
    scaled_dot_product_attention, whose kernel took ~8 ms for one query over ten keys
    (head size 256); at batch 1 the matrices here are tiny.

    q [B, H, T, D]; k, v [B, KV, L, D]; mask [T, L] (True = attend) or None."""
    B, H, T, D = q.shape
    KV = k.shape[1]
    G = H // KV  # query heads per KV head; head h reads KV head h // G
    qg = q.reshape(B, KV, G * T, D)
    scores = torch.matmul(qg, k.transpose(-1, -2)).float() * scale
    if mask is not None:
        scores = scores.masked_fill(~mask.repeat(G, 1), float("-inf"))
    probs = torch.softmax(scores, dim=-1).to(v.dtype)
    return torch.matmul(probs, v).reshape(B, H, T, D)


class FeedForward(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.gated = cfg.gated_ffn
        self.up: nn.Linear | None = nn.Linear(cfg.n_embd, cfg.ffn_dim, bias=cfg.bias)  # None once fused
        self.gate = nn.Linear(cfg.n_embd, cfg.ffn_dim, bias=cfg.bias) if cfg.gated_ffn else None
        self.down = nn.Linear(cfg.ffn_dim, cfg.n_embd, bias=cfg.bias)
        self.act = cfg.activation
        self.gate_up: nn.Linear | None = None  # set by fuse()

    def fuse(self) -> None:
        if self.gate is not None and self.up is not None:  # not yet fused, gated
            self.gate_up = _concat_linear([self.gate, self.up])
            del self.gate, self.up
            self.gate = self.up = None

    def _act(self, x: torch.Tensor) -> torch.Tensor:
        if self.act == "silu":
            return F.silu(x)
        return F.gelu(x, approximate="tanh" if self.act == "gelu_tanh" else "none")

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if self.gate_up is not None:
            g, u = self.gate_up(x).chunk(2, dim=-1)
            return self.down(self._act(g) * u)
        assert self.up is not None  # fuse() clears it only where gate_up replaces it
        if self.gate is not None:
            return self.down(self._act(self.gate(x)) * self.up(x))
        return self.down(self._act(self.up(x)))


class Block(nn.Module):
    def __init__(self, cfg: ModelConfig, layer: int) -> None:
        super().__init__()
        self.attn_norm = Norm(cfg.n_embd, cfg.norm, cfg.norm_eps)
        self.attn = Attention(cfg, layer)
        self.ffn_norm = Norm(cfg.n_embd, cfg.norm, cfg.norm_eps)
        self.ffn = FeedForward(cfg)
        self.post_attn_norm = Norm(cfg.n_embd, cfg.norm, cfg.norm_eps) if cfg.sandwich_norms else None
        self.post_ffn_norm = Norm(cfg.n_embd, cfg.norm, cfg.norm_eps) if cfg.sandwich_norms else None

    def forward(self, x: torch.Tensor, pos0: int | torch.Tensor, cache: KVCache,
                rope: tuple[torch.Tensor, torch.Tensor] | None, kv_len: int = 0) -> torch.Tensor:
        h = self.attn(self.attn_norm(x), pos0, cache, rope, kv_len)
        if self.post_attn_norm is not None:
            h = self.post_attn_norm(h)
        x = x + h
        h = self.ffn(self.ffn_norm(x))
        if self.post_ffn_norm is not None:
            h = self.post_ffn_norm(h)
        return x + h


class GPT(nn.Module):
    def __init__(self, cfg: ModelConfig) -> None:
        super().__init__()
        self.cfg = cfg
        self.tok_emb = nn.Embedding(cfg.vocab_size, cfg.n_embd)
        self.pos_emb = nn.Embedding(cfg.context_length, cfg.n_embd) if cfg.positions == "learned" else None
        self.blocks = nn.ModuleList(Block(cfg, i) for i in range(cfg.n_layer))
        self.out_norm = Norm(cfg.n_embd, cfg.norm, cfg.norm_eps)
        # quantize.py may swap in its own head
        self.lm_head: nn.Linear | Int8Linear | RefinedInt4Head | None = (
            None if cfg.tied_head else nn.Linear(cfg.n_embd, cfg.vocab_size, bias=False)
        )
        self.cache: KVCache | None = None
        self.compute_dtype = torch.float32  # activations; the head may be stored differently
        self._rope: dict[str, tuple[torch.Tensor, torch.Tensor]] = {}

    # -- set-up ---------------------------------------------------------------------------
    def setup_cache(self, max_len: int, batch: int = 1) -> None:
        """Allocate the KV cache and RoPE tables for sequences up to max_len tokens."""
        w = self.tok_emb.weight
        if self.cfg.positions == "learned":
            max_len = min(max_len, self.cfg.context_length)
        self.cache = KVCache(self.cfg, max_len, batch, self.compute_dtype, w.device)
        self._rope = {}
        cfg = self.cfg
        if cfg.positions == "rope":
            self._rope["global"] = rope_tables(max_len, cfg.rope_dim, cfg.rope_base, w.device, cfg.rope_scale)
            self._rope["local"] = rope_tables(max_len, cfg.rope_dim, cfg.rope_base_local, w.device)

    @property
    def max_len(self) -> int:
        return self.cache.max_len if self.cache is not None else 0

    def head_weight(self) -> torch.Tensor:
        return self.tok_emb.weight if self.lm_head is None else self.lm_head.weight

    # -- running --------------------------------------------------------------------------
    def forward(self, tokens: torch.Tensor, pos0: int | torch.Tensor = 0, all_logits: bool = False,
                kv_len: int = 0) -> torch.Tensor:
        """tokens [B, T] at positions pos0.. -> float32 logits [B, T, V] (or [B, V] for the
        last position only, which is all generation needs: the head is the largest matmul).

        A static-shape decode step passes pos0 as a tensor [1] and kv_len, the number of cache
        slots to attend over (> the position): no Python value in it changes between steps."""
        cfg, cache = self.cfg, self.cache
        assert cache is not None, "call setup_cache() first"
        T = tokens.shape[1]
        if isinstance(pos0, torch.Tensor):  # a static-shape step
            if T != 1 or not 0 < kv_len <= cache.max_len:
                raise ValueError("a static-shape step takes one token and 0 < kv_len <= the cache")
        elif pos0 + T > cache.max_len:
            raise ValueError(f"sequence of {pos0 + T} tokens exceeds the cache ({cache.max_len})")
        x = self.tok_emb(tokens).to(self.compute_dtype)
        if cfg.embed_scale:
            x = (x.float() * math.sqrt(cfg.n_embd)).to(x.dtype)
        if self.pos_emb is not None:
            where = pos0 if isinstance(pos0, torch.Tensor) else torch.arange(pos0, pos0 + T, device=tokens.device)
            x = x + self.pos_emb(where)[None]
        for i, block in enumerate(self.blocks):
            rope = None
            if cfg.positions == "rope":
                rope = self._rope["local" if cfg.sliding_layers[i] else "global"]
            x = block(x, pos0, cache, rope, kv_len)
        x = self.out_norm(x if all_logits else x[:, -1])
        return self.project(x)

    def project(self, x: torch.Tensor) -> torch.Tensor:
        if self.lm_head is not None:
            w = getattr(self.lm_head, "weight", None)
            if isinstance(self.lm_head, nn.Linear) and w is not None and w.dtype != x.dtype:
                return self.lm_head(x.to(w.dtype)).float()
            return self.lm_head(x).float()
        w = self.tok_emb.weight
        return F.linear(x.to(w.dtype), w).float()


def build_model(cfg: ModelConfig, state: dict[str, torch.Tensor], device: torch.device | str,
                dtype: torch.dtype, fuse: bool = True, head_dtype: torch.dtype | None = None) -> GPT:
    """A GPT holding `state` on `device`: matrices in `dtype`, norm weights kept in float32
    (Gemma's are 1 + small values; bfloat16 would round them visibly). `fuse` joins Q/K/V
    and gate/up into single matmuls: at batch 1 every operator costs launch overhead.
    `head_dtype` stores the output head (and a tied embedding) differently: float16 beside
    bfloat16 on CPU is both faster there and 8x finer (docs/torch.md)."""
    with torch.device("meta"):
        model = GPT(cfg)
    norms = {f"{n}.{p}" for n, m in model.named_modules() if isinstance(m, Norm) for p in ("weight", "bias")}
    expected = {k for k, _ in model.named_parameters()}
    missing, unexpected = expected - set(state), set(state) - expected
    if missing or unexpected:
        what = f"missing {sorted(missing)[0]}" if missing else f"unexpected {sorted(unexpected)[0]}"
        raise ValueError(f"checkpoint does not fit the model ({what})")
    head_keys = {"lm_head.weight"} if not cfg.tied_head else {"tok_emb.weight"}

    def target(k: str) -> torch.dtype:
        if k in norms:
            return torch.float32
        return head_dtype if (head_dtype is not None and k in head_keys) else dtype

    converted = {k: v.to(device=device, dtype=target(k)) for k, v in state.items()}
    model.load_state_dict(converted, assign=True, strict=True)
    model.compute_dtype = dtype
    if fuse:
        for block in model.blocks:
            assert isinstance(block, Block)  # a ModuleList yields plain Modules to the type checker
            block.attn.fuse()
            block.ffn.fuse()
    return model.eval().requires_grad_(False)


def _concat_linear(parts: list[nn.Linear]) -> nn.Linear:
    w = torch.cat([p.weight for p in parts], dim=0)
    out = nn.Linear(w.shape[1], w.shape[0], bias=parts[0].bias is not None, device=w.device, dtype=w.dtype)
    out.weight = nn.Parameter(w, requires_grad=False)
    if parts[0].bias is not None:
        out.bias = nn.Parameter(torch.cat([p.bias for p in parts]), requires_grad=False)
    return out
