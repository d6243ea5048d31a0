"""GGUF checkpoints (llama and gemma3 architectures) -> ModelConfig + float32 tensors.

Metadata and the tensor table come from `aigc_chat.gguf_info` (a header walk that skips the
262k-entry vocabulary arrays) instead of `gguf.GGUFReader`, which takes 10-25 s on Gemma's
vocabulary here. Tensor data is memory-mapped and dequantised with `gguf.quants`, except
Q8_0, the type of Gemma's 168M-parameter embedding, which is done in torch (much faster).
"""

from __future__ import annotations

import math
from pathlib import Path
from typing import Any

import numpy as np
import torch

from aigc_chat.backends.torch_gpt.model import ModelConfig
from aigc_chat.errors import ModelError
from aigc_chat.gguf_info import GGUFInfo, read_gguf_info
from aigc_chat.safe_open import open_regular

SUPPORTED = ("llama", "gemma3")
# Gemma 3: every sixth layer (5, 11, 17, ...) attends globally, the others in a window.
GEMMA3_SWA_PATTERN = 6
GEMMA3_LOCAL_ROPE_BASE = 10_000.0

_BLOCK_NAMES = {
    "attn_norm": "attn_norm.weight",
    "attn_q": "attn.wq.weight",
    "attn_k": "attn.wk.weight",
    "attn_v": "attn.wv.weight",
    "attn_output": "attn.wo.weight",
    "attn_q_norm": "attn.q_norm.weight",
    "attn_k_norm": "attn.k_norm.weight",
    "post_attention_norm": "post_attn_norm.weight",
    "ffn_norm": "ffn_norm.weight",
    "ffn_gate": "ffn.gate.weight",
    "ffn_up": "ffn.up.weight",
    "ffn_down": "ffn.down.weight",
    "post_ffw_norm": "post_ffn_norm.weight",
}


def gguf_config(info: GGUFInfo) -> ModelConfig:
    """The model shape and variant flags, read from the file's metadata."""
    arch = info.architecture
    if arch not in SUPPORTED:
        raise ModelError(
            f"{info.path}: the torch backend does not support architecture {arch!r} "
            f"(supported: {', '.join(SUPPORTED)} GGUF files, GPT-2 and nanoGPT checkpoints)"
        )

    def need(key: str) -> int:
        value = info.get(key)
        if value is None:
            raise ModelError(f"{info.path}: malformed GGUF, metadata {arch}.{key} is missing")
        return int(value)

    n_embd, n_head = need("embedding_length"), need("attention.head_count")
    n_kv = int(info.get("attention.head_count_kv") or n_head)
    head_dim = int(info.get("attention.key_length") or n_embd // n_head)
    n_layer = need("block_count")
    emb = next((t for t in info.tensors if t[0] == "token_embd.weight"), None)
    if emb is None:
        raise ModelError(f"{info.path}: malformed GGUF, tensor token_embd.weight is missing")
    vocab = int(emb[1][1])
    scaling = info.get("rope.scaling.type")
    factor = float(info.get("rope.scaling.factor") or 1.0)
    if scaling not in (None, "none", "linear"):
        raise ModelError(f"{info.path}: RoPE scaling {scaling!r} is not supported by the torch backend")
    common: dict[str, Any] = {  # the fields both families share; each adds its own below
        "arch": arch, "vocab_size": vocab, "n_embd": n_embd, "n_layer": n_layer, "n_head": n_head,
        "n_kv_head": n_kv, "head_dim": head_dim, "ffn_dim": need("feed_forward_length"),
        "context_length": int(info.context_length or 4096),
        "norm": "rms", "norm_eps": float(info.get("attention.layer_norm_rms_epsilon") or 1e-5),
        "positions": "rope", "rope_base": float(info.get("rope.freq_base") or 10_000.0),
        "rope_dim": int(info.get("rope.dimension_count") or head_dim),
        "rope_scale": 1.0 / factor if scaling == "linear" else 1.0,
        "tied_head": not any(t[0] == "output.weight" for t in info.tensors),
    }
    if arch == "llama":
        # The converter permutes Q/K rows so that llama.cpp's adjacent-pair rotation applies.
        return ModelConfig(**common, rope_neox=False, gated_ffn=True, activation="silu")
    window = int(info.get("attention.sliding_window") or 0)
    pattern = info.get("attention.sliding_window_pattern")
    if isinstance(pattern, list) and len(pattern) == n_layer:
        sliding = tuple(bool(x) for x in pattern)
    else:
        period = int(pattern) if isinstance(pattern, int) and pattern > 0 else GEMMA3_SWA_PATTERN
        sliding = tuple(i % period < period - 1 for i in range(n_layer))
    return ModelConfig(
        **common, rope_neox=True, rope_base_local=GEMMA3_LOCAL_ROPE_BASE,
        sliding_window=window, sliding_layers=sliding if window else (),
        qk_norm=True, sandwich_norms=True, embed_scale=True, gated_ffn=True,
        activation="gelu_tanh", attn_scale=1.0 / math.sqrt(head_dim),
    )


def load_gguf(path: str | Path) -> tuple[ModelConfig, dict[str, torch.Tensor], GGUFInfo]:
    """Read a GGUF file into a config and a float32 state dict for `GPT`."""
    info = read_gguf_info(path)
    cfg = gguf_config(info)
    state: dict[str, torch.Tensor] = {}
    with open_regular(info.path, "model file", ModelError) as fh:  # the file the header came from, checked again
        mm = np.memmap(fh, dtype=np.uint8, mode="r")
        try:
            for name, dims, ttype, offset in info.tensors:
                key = _state_key(name, info.path)
                if key is None:
                    continue
                start = info.data_offset + offset
                state[key] = _dequantize(mm, start, [int(d) for d in dims], ttype, name, info.path)
        finally:
            del mm
    expected = _expected_keys(cfg)
    missing = sorted(expected - set(state))
    if missing:
        raise ModelError(f"{info.path}: malformed GGUF, tensor for {missing[0]} is missing")
    for key, shape in _expected_shapes(cfg).items():
        if tuple(state[key].shape) != shape:
            raise ModelError(
                f"{info.path}: malformed GGUF, {key} has shape {tuple(state[key].shape)}, expected {shape}"
            )
    return cfg, state, info


def _state_key(name: str, path: Path) -> str | None:
    if name == "token_embd.weight":
        return "tok_emb.weight"
    if name == "output_norm.weight":
        return "out_norm.weight"
    if name == "output.weight":
        return "lm_head.weight"
    if name.startswith("blk."):
        parts = name.split(".")
        if len(parts) == 4 and parts[3] == "weight" and parts[2] in _BLOCK_NAMES:
            return f"blocks.{int(parts[1])}.{_BLOCK_NAMES[parts[2]]}"
    if name in ("rope_freqs.weight",):
        raise ModelError(f"{path}: per-dimension RoPE frequencies are not supported by the torch backend")
    return None  # tensors llama.cpp also ignores for inference


def _expected_keys(cfg: ModelConfig) -> set[str]:
    return set(_expected_shapes(cfg))


def _expected_shapes(cfg: ModelConfig) -> dict[str, tuple[int, ...]]:
    d, hd, f = cfg.n_embd, cfg.head_dim, cfg.ffn_dim
    out: dict[str, tuple[int, ...]] = {"tok_emb.weight": (cfg.vocab_size, d), "out_norm.weight": (d,)}
    if not cfg.tied_head:
        out["lm_head.weight"] = (cfg.vocab_size, d)
    for i in range(cfg.n_layer):
        p = f"blocks.{i}."
        out.update({
            p + "attn_norm.weight": (d,), p + "ffn_norm.weight": (d,),
            p + "attn.wq.weight": (cfg.n_head * hd, d), p + "attn.wk.weight": (cfg.n_kv_head * hd, d),
            p + "attn.wv.weight": (cfg.n_kv_head * hd, d), p + "attn.wo.weight": (d, cfg.n_head * hd),
            p + "ffn.gate.weight": (f, d), p + "ffn.up.weight": (f, d), p + "ffn.down.weight": (d, f),
        })
        if cfg.qk_norm:
            out[p + "attn.q_norm.weight"] = (hd,)
            out[p + "attn.k_norm.weight"] = (hd,)
        if cfg.sandwich_norms:
            out[p + "post_attn_norm.weight"] = (d,)
            out[p + "post_ffn_norm.weight"] = (d,)
    return out


def _dequantize(mm: np.ndarray, start: int, dims: list[int], ttype: int, name: str, path: Path) -> torch.Tensor:
    from gguf.constants import GGML_QUANT_SIZES, GGMLQuantizationType
    from gguf.quants import dequantize

    qtype = GGMLQuantizationType(ttype)
    block, type_size = GGML_QUANT_SIZES[qtype]
    shape = tuple(reversed(dims))  # GGUF lists the fastest-moving dimension first
    n = math.prod(dims)
    row = dims[0]
    nbytes = n // block * type_size
    raw = mm[start : start + nbytes]
    if raw.size != nbytes:
        raise ModelError(f"{path} is truncated (tensor {name})")
    if qtype == GGMLQuantizationType.F32:
        return torch.from_numpy(raw.view(np.float32).reshape(shape).copy())
    if qtype == GGMLQuantizationType.F16:
        return torch.from_numpy(raw.view(np.float16).reshape(shape).astype(np.float32))
    if qtype == GGMLQuantizationType.BF16:
        return torch.from_numpy(raw.copy()).view(torch.bfloat16).reshape(shape).float()
    if qtype == GGMLQuantizationType.Q8_0:
        blocks = torch.from_numpy(raw.reshape(-1, type_size).copy())
        scale = blocks[:, :2].contiguous().view(torch.float16).float()
        q = blocks[:, 2:].contiguous().view(torch.int8).float()
        return (q * scale).reshape(shape)
    try:
        out = dequantize(raw.reshape(-1, row // block * type_size), qtype)
    except NotImplementedError:
        raise ModelError(f"{path}: tensor {name} has type {qtype.name}, which gguf cannot dequantize") from None
    return torch.from_numpy(np.ascontiguousarray(out, dtype=np.float32).reshape(shape))
