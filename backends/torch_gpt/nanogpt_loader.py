"""nanoGPT `ckpt.pt` files: {'model': state_dict, 'model_args': {...}, ...}.

Loaded with `torch.load(weights_only=True)`: the unpickler accepts tensors and plain
containers only, so a file that wants to run code on load is refused, not executed.
nanoGPT trains with the GPT-2 tokenizer; its tokenizer.json must sit next to ckpt.pt.
"""

from __future__ import annotations

import pickle
from pathlib import Path

import torch

from aigc_chat.backends.torch_gpt.checkpoint import Checkpoint
from aigc_chat.backends.torch_gpt.hf_gpt2_loader import EOS_TEXT, gpt2_config, gpt2_state
from aigc_chat.backends.torch_gpt.tokenizer import HFTokenizer
from aigc_chat.errors import ModelError
from aigc_chat.safe_open import open_regular


def load_nanogpt(path: Path) -> Checkpoint:
    try:
        with open_regular(path, "model", ModelError) as fh:  # never a FIFO or a device
            ckpt = torch.load(fh, map_location="cpu", weights_only=True)
    except pickle.UnpicklingError as exc:
        first = str(exc).splitlines()[0][:160] if str(exc) else ""
        raise ModelError(f"{path}: refused, the checkpoint wants to run code when loaded ({first})") from None
    except (RuntimeError, EOFError, OSError, ValueError) as exc:
        raise ModelError(f"{path}: not a readable torch checkpoint ({str(exc).splitlines()[0][:120]})") from None
    if (not isinstance(ckpt, dict) or not isinstance(ckpt.get("model"), dict)
            or not isinstance(ckpt.get("model_args"), dict)):
        raise ModelError(f"{path}: not a nanoGPT checkpoint (expected a dict with 'model' and 'model_args')")
    args = dict(ckpt["model_args"])
    args.setdefault("activation_function", "gelu")  # nanoGPT uses exact GELU (nn.GELU())
    args.setdefault("layer_norm_epsilon", 1e-5)
    cfg = gpt2_config(args, path)
    state = gpt2_state(ckpt["model"], cfg, conv1d=False, where=path)
    tok_candidates = (path.parent / "tokenizer.json", path.parent.parent / "tokenizer.json")
    tok_path = next((p for p in tok_candidates if p.is_file()), None)
    if tok_path is None:
        raise ModelError(f"{path}: no tokenizer.json next to the checkpoint (nanoGPT uses GPT-2's; copy it there)")
    tok = HFTokenizer(tok_path, eos_text=EOS_TEXT)
    if tok.vocab_size > cfg.vocab_size:
        raise ModelError(f"{tok_path}: {tok.vocab_size} tokens but the model has {cfg.vocab_size}")
    return Checkpoint(path, "nanogpt", path.parent.name or path.stem, cfg, state, tok, None,
                      {"architecture": "gpt2", "iter_num": ckpt.get("iter_num")})
