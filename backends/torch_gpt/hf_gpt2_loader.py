"""GPT-2 family checkpoints in the Hugging Face layout: config.json, model.safetensors,
tokenizer.json. Safetensors holds only tensors, so loading runs no code from the file.

HF's GPT-2 stores its projections as Conv1D, [in, out]: they are transposed to Linear's
[out, in], and the fused c_attn is split into Q, K and V.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import torch

from aigc_chat.backends.torch_gpt.checkpoint import Checkpoint
from aigc_chat.backends.torch_gpt.model import ModelConfig
from aigc_chat.backends.torch_gpt.tokenizer import HFTokenizer
from aigc_chat.errors import ModelError
from aigc_chat.safe_open import open_regular, read_regular

CONFIG_LIMIT = 16 << 20  # a config.json is a few KB

EOS_TEXT = "<|endoftext|>"
_ACTIVATIONS = {"gelu_new": "gelu_tanh", "gelu_pytorch_tanh": "gelu_tanh", "gelu": "gelu"}


def gpt2_config(raw: dict[str, Any], where: Path) -> ModelConfig:
    """ModelConfig for a GPT-2 shaped model from HF config.json or nanoGPT model_args keys."""
    try:
        n_embd, n_layer, n_head = int(raw["n_embd"]), int(raw["n_layer"]), int(raw["n_head"])
        vocab = int(raw["vocab_size"])
        size = raw.get("n_positions") or raw.get("block_size") or raw.get("n_ctx")
        ctx = int(size)  # type: ignore[arg-type]  # None (no size key): its TypeError is reported below
    except (KeyError, TypeError, ValueError) as exc:
        raise ModelError(f"{where}: malformed GPT-2 config ({exc.__class__.__name__}: {exc})") from None
    if n_embd % n_head:
        raise ModelError(f"{where}: malformed GPT-2 config (n_embd {n_embd} is not a multiple of n_head {n_head})")
    act = raw.get("activation_function", "gelu_new")
    if act not in _ACTIVATIONS:
        raise ModelError(f"{where}: activation {act!r} is not supported (gelu_new, gelu)")
    return ModelConfig(
        arch="gpt2", vocab_size=vocab, n_embd=n_embd, n_layer=n_layer, n_head=n_head,
        n_kv_head=n_head, head_dim=n_embd // n_head, ffn_dim=int(raw.get("n_inner") or 4 * n_embd),
        context_length=ctx, norm="layer", norm_eps=float(raw.get("layer_norm_epsilon", 1e-5)),
        positions="learned", gated_ffn=False, activation=_ACTIVATIONS[act], bias=True,
        tied_head=True,
    )


def gpt2_state(tensors: dict[str, torch.Tensor], cfg: ModelConfig, conv1d: bool,
               where: Path) -> dict[str, torch.Tensor]:
    """Map GPT-2 tensor names (HF or nanoGPT spelling) onto our module names.

    conv1d: projections stored [in, out] (HF) rather than [out, in] (nanoGPT's nn.Linear).
    Missing biases (nanoGPT with bias=False) become zeros, which is what "no bias" computes.
    """
    t = {k.removeprefix("_orig_mod.").removeprefix("transformer."): v for k, v in tensors.items()}

    def get(name: str, shape: tuple[int, ...], optional_bias: bool = False) -> torch.Tensor:
        if name not in t:
            if optional_bias:
                return torch.zeros(shape)
            raise ModelError(f"{where}: malformed checkpoint, tensor {name} is missing")
        v = t[name].float()
        if v.dim() == 2 and conv1d and name.startswith("h."):  # Conv1D projections only
            v = v.t()
        if tuple(v.shape) != shape:
            raise ModelError(f"{where}: malformed checkpoint, {name} has shape {tuple(v.shape)}, expected {shape}")
        return v.contiguous()

    d, f, V = cfg.n_embd, cfg.ffn_dim, cfg.vocab_size
    if "lm_head.weight" in t and "wte.weight" in t and not torch.equal(t["lm_head.weight"], t["wte.weight"]):
        raise ModelError(f"{where}: untied lm_head weights are not supported for GPT-2 checkpoints")
    state = {
        "tok_emb.weight": t["wte.weight"].float() if "wte.weight" in t else get("wte.weight", (V, d)),
        "pos_emb.weight": get("wpe.weight", (cfg.context_length, d)),
        "out_norm.weight": get("ln_f.weight", (d,)),
        "out_norm.bias": get("ln_f.bias", (d,), True),
    }
    if tuple(state["tok_emb.weight"].shape) != (V, d):
        raise ModelError(f"{where}: malformed checkpoint, wte.weight has shape {tuple(state['tok_emb.weight'].shape)}")
    for i in range(cfg.n_layer):
        h, p = f"h.{i}.", f"blocks.{i}."
        qkv_w = get(h + "attn.c_attn.weight", (3 * d, d))
        qkv_b = get(h + "attn.c_attn.bias", (3 * d,), True)
        for j, name in enumerate(("wq", "wk", "wv")):
            state[p + f"attn.{name}.weight"] = qkv_w[j * d : (j + 1) * d].contiguous()
            state[p + f"attn.{name}.bias"] = qkv_b[j * d : (j + 1) * d].contiguous()
        state.update({
            p + "attn.wo.weight": get(h + "attn.c_proj.weight", (d, d)),
            p + "attn.wo.bias": get(h + "attn.c_proj.bias", (d,), True),
            p + "attn_norm.weight": get(h + "ln_1.weight", (d,)),
            p + "attn_norm.bias": get(h + "ln_1.bias", (d,), True),
            p + "ffn_norm.weight": get(h + "ln_2.weight", (d,)),
            p + "ffn_norm.bias": get(h + "ln_2.bias", (d,), True),
            p + "ffn.up.weight": get(h + "mlp.c_fc.weight", (f, d)),
            p + "ffn.up.bias": get(h + "mlp.c_fc.bias", (f,), True),
            p + "ffn.down.weight": get(h + "mlp.c_proj.weight", (d, f)),
            p + "ffn.down.bias": get(h + "mlp.c_proj.bias", (d,), True),
        })
    return state


def load_hf_gpt2(folder: Path) -> Checkpoint:
    cfg_path, weights, tok_path = folder / "config.json", folder / "model.safetensors", folder / "tokenizer.json"
    for p in (cfg_path, weights, tok_path):
        if not p.exists():  # present but not a regular file (a FIFO, a device): refused when read
            raise ModelError(
                f"{folder}: {p.name} is missing (a GPT-2 folder needs config.json, model.safetensors, tokenizer.json)"
            )
    try:  # regular files only, and bounded: a FIFO or a link to /dev/zero is refused at once
        raw = json.loads(read_regular(cfg_path, CONFIG_LIMIT, "model config", ModelError).decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError) as exc:
        raise ModelError(f"{cfg_path}: not valid JSON ({exc})") from None
    except RecursionError:  # json recurses per level: [[[[… a few KB deep
        raise ModelError(f"{cfg_path}: not valid JSON (nested too deeply)") from None
    if not isinstance(raw, dict):
        raise ModelError(f"{cfg_path}: not a model config")
    model_type = raw.get("model_type")
    if model_type != "gpt2":
        raise ModelError(
            f"{cfg_path}: the torch backend does not support model_type {model_type!r} "
            "(supported: gpt2 folders, nanoGPT ckpt.pt, llama and gemma3 GGUF files)"
        )
    cfg = gpt2_config(raw, cfg_path)
    open_regular(weights, "model weights", ModelError).close()  # safetensors would block on a FIFO
    try:
        from safetensors.torch import load_file

        tensors = load_file(str(weights))
    except Exception as exc:  # noqa: BLE001 - safetensors raises its own error types
        raise ModelError(f"{weights}: not a readable safetensors file ({str(exc).splitlines()[0][:120]})") from None
    state = gpt2_state(tensors, cfg, conv1d=True, where=weights)
    tok = HFTokenizer(tok_path, eos_text=EOS_TEXT)
    if tok.vocab_size > cfg.vocab_size:
        raise ModelError(f"{tok_path}: {tok.vocab_size} tokens but the model has {cfg.vocab_size}")
    return Checkpoint(folder, "hf-gpt2", str(raw.get("_name_or_path") or folder.name), cfg, state, tok,
                      None, {"architecture": "gpt2"})
