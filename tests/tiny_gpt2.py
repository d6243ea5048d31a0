"""A GPT-2 checkpoint in the Hugging Face layout, built here with random weights.

Small enough to build in a second (2 layers of 32 wide, a 300-token byte-level BPE trained
on a fixed corpus), shared by the CPU checkpoint tests (test_torch_checkpoints.py) and the
CUDA ones (test_torch_cuda.py, through conftest's `hf_dir`). Needs numpy, tokenizers and
safetensors; torch is not needed to write it.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np

D, L, H, CTX = 32, 2, 4, 64  # width, layers, heads, context
CORPUS = ("hello world, the quick brown fox jumps over the lazy dog. " * 20
          + "def f(x):\n    return x + 1\n" * 10 + "café naïve 東京 ✓\n" * 5)


def make_tokenizer(path: Path) -> int:
    """Train a byte-level BPE on CORPUS, save it as tokenizer.json at `path`; its vocab size."""
    from tokenizers import Tokenizer, decoders, models, pre_tokenizers, trainers

    tok = Tokenizer(models.BPE())
    tok.pre_tokenizer = pre_tokenizers.ByteLevel(add_prefix_space=False)
    tok.decoder = decoders.ByteLevel()
    trainer = trainers.BpeTrainer(vocab_size=300, special_tokens=["<|endoftext|>"],
                                  initial_alphabet=pre_tokenizers.ByteLevel.alphabet(), show_progress=False)
    tok.train_from_iterator([CORPUS], trainer)
    tok.save(str(path))
    return tok.get_vocab_size()


def hf_tensors(vocab: int, seed: int = 0) -> dict[str, np.ndarray]:
    """Random GPT-2 weights in HF's layout (Conv1D: [in, out])."""
    rng = np.random.default_rng(seed)
    r = lambda *s: (rng.standard_normal(s) * 0.2).astype(np.float32)  # noqa: E731
    t = {"wte.weight": r(vocab, D), "wpe.weight": r(CTX, D),
         "ln_f.weight": 1 + r(D), "ln_f.bias": r(D)}
    for i in range(L):
        h = f"h.{i}."
        t.update({h + "ln_1.weight": 1 + r(D), h + "ln_1.bias": r(D),
                  h + "attn.c_attn.weight": r(D, 3 * D), h + "attn.c_attn.bias": r(3 * D),
                  h + "attn.c_proj.weight": r(D, D), h + "attn.c_proj.bias": r(D),
                  h + "ln_2.weight": 1 + r(D), h + "ln_2.bias": r(D),
                  h + "mlp.c_fc.weight": r(D, 4 * D), h + "mlp.c_fc.bias": r(4 * D),
                  h + "mlp.c_proj.weight": r(4 * D, D), h + "mlp.c_proj.bias": r(D)})
    return t


def write_hf_gpt2(folder: Path, seed: int = 0) -> dict[str, np.ndarray]:
    """tokenizer.json, model.safetensors and config.json of a random GPT-2 in `folder`; the
    tensors written, for an independent reference to compute from."""
    from safetensors.numpy import save_file

    vocab = make_tokenizer(folder / "tokenizer.json")
    t = hf_tensors(vocab, seed)
    save_file(t, str(folder / "model.safetensors"))
    (folder / "config.json").write_text(json.dumps({
        "model_type": "gpt2", "n_embd": D, "n_layer": L, "n_head": H, "n_positions": CTX,
        "vocab_size": vocab, "layer_norm_epsilon": 1e-5, "activation_function": "gelu_new",
    }))
    return t
