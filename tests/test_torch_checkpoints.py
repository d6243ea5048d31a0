"""GPT-2 (Hugging Face layout, tests/tiny_gpt2.py) and nanoGPT checkpoints with random weights.

The reference is an independent numpy GPT-2 written from the HF tensor layout, so a wrong
transpose, split or activation in our loaders shows up as different logits.
"""

from __future__ import annotations

import json
import os
from pathlib import Path

import numpy as np
import pytest

torch = pytest.importorskip("torch")
pytest.importorskip("tokenizers")
pytest.importorskip("safetensors")

from aigc_chat.backends.torch_gpt import parity  # noqa: E402
from aigc_chat.backends.torch_gpt.backend import TorchBackend  # noqa: E402
from aigc_chat.chat_types import Message  # noqa: E402
from aigc_chat.errors import ModelError  # noqa: E402
from aigc_chat.params import GenerationParams  # noqa: E402
from tests.conftest import run_cli  # noqa: E402
from tests.tiny_gpt2 import CTX, D, H, L  # noqa: E402


def reference_logits(t: dict[str, np.ndarray], tokens: list[int], exact_gelu: bool) -> np.ndarray:
    """GPT-2 forward in float64 numpy, straight from the HF layout."""
    def ln(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
        mu, var = x.mean(-1, keepdims=True), x.var(-1, keepdims=True)
        return (x - mu) / np.sqrt(var + 1e-5) * w + b

    def gelu(x: np.ndarray) -> np.ndarray:
        if exact_gelu:
            from math import erf
            return 0.5 * x * (1 + np.vectorize(erf)(x / np.sqrt(2)))
        return 0.5 * x * (1 + np.tanh(np.sqrt(2 / np.pi) * (x + 0.044715 * x**3)))

    T = len(tokens)
    x = t["wte.weight"][tokens].astype(np.float64) + t["wpe.weight"][:T]
    hd = D // H
    for i in range(L):
        h = f"h.{i}."
        a = ln(x, t[h + "ln_1.weight"], t[h + "ln_1.bias"]) @ t[h + "attn.c_attn.weight"] + t[h + "attn.c_attn.bias"]
        q, k, v = (a[:, j * D:(j + 1) * D].reshape(T, H, hd).transpose(1, 0, 2) for j in range(3))
        s = q @ k.transpose(0, 2, 1) / np.sqrt(hd) + np.triu(np.full((T, T), -np.inf), 1)
        p = np.exp(s - s.max(-1, keepdims=True))
        p /= p.sum(-1, keepdims=True)
        o = (p @ v).transpose(1, 0, 2).reshape(T, D)
        x = x + o @ t[h + "attn.c_proj.weight"] + t[h + "attn.c_proj.bias"]
        m = gelu(ln(x, t[h + "ln_2.weight"], t[h + "ln_2.bias"]) @ t[h + "mlp.c_fc.weight"] + t[h + "mlp.c_fc.bias"])
        x = x + m @ t[h + "mlp.c_proj.weight"] + t[h + "mlp.c_proj.bias"]
    return ln(x, t["ln_f.weight"], t["ln_f.bias"]) @ t["wte.weight"].T


def nanogpt_ckpt(folder: Path, t: dict[str, np.ndarray], vocab: int, bias: bool = True) -> Path:
    """The same weights the way nanoGPT saves them: nn.Linear layout, 'transformer.' names,
    and torch.compile's '_orig_mod.' prefix."""
    model = {}
    for k, v in t.items():
        if not bias and k.endswith(".bias"):
            continue
        arr = v.T if (v.ndim == 2 and k.startswith("h.")) else v
        model[f"_orig_mod.transformer.{k}"] = torch.from_numpy(np.ascontiguousarray(arr))
    model["_orig_mod.lm_head.weight"] = torch.from_numpy(t["wte.weight"])
    args = {"n_layer": L, "n_head": H, "n_embd": D, "block_size": CTX, "bias": bias,
            "vocab_size": vocab, "dropout": 0.0}
    path = folder / "ckpt.pt"
    torch.save({"model": model, "model_args": args, "iter_num": 5, "best_val_loss": 1.0,
                "config": {"dataset": "tiny"}}, path)
    return path


def _loaded(path: Path) -> TorchBackend:
    b = TorchBackend(str(path), {"device": "cpu", "dtype": "float32", "n_ctx": CTX})
    b.load()
    return b


def test_hf_gpt2_logits_match_an_independent_reference(hf_dir: tuple[Path, dict[str, np.ndarray]]) -> None:
    d, t = hf_dir
    b = _loaded(d)
    tokens = b._tok.encode_segments([])  # nothing rendered yet: empty
    assert tokens == []
    tokens = [5, 17, 42, 99, 3, 250, 7, 8, 120, 64]
    ours = parity.torch_logits(b._runner.model, tokens)
    np.testing.assert_allclose(ours, reference_logits(t, tokens, exact_gelu=False), rtol=1e-4, atol=1e-4)


@pytest.mark.parametrize("bias", [True, False])
def test_nanogpt_logits_match_an_independent_reference(
    hf_dir: tuple[Path, dict[str, np.ndarray]], tmp_path: Path, bias: bool
) -> None:
    d, t = hf_dir
    (tmp_path / "tokenizer.json").write_bytes((d / "tokenizer.json").read_bytes())
    vocab = t["wte.weight"].shape[0]
    ref_t = t if bias else {k: (np.zeros_like(v) if k.endswith(".bias") else v) for k, v in t.items()}
    b = _loaded(nanogpt_ckpt(tmp_path, t, vocab, bias))
    tokens = [1, 2, 3, 50, 60, 70, 200]
    ours = parity.torch_logits(b._runner.model, tokens)
    np.testing.assert_allclose(ours, reference_logits(ref_t, tokens, exact_gelu=True), rtol=1e-4, atol=1e-4)


def test_a_pickle_that_runs_code_is_refused(tmp_path: Path) -> None:
    marker = tmp_path / "pwned"

    class Evil:
        def __reduce__(self):
            return (os.system, (f"touch {marker}",))

    path = tmp_path / "ckpt.pt"
    torch.save({"model": {}, "model_args": {}, "payload": Evil()}, path)
    with pytest.raises(ModelError, match="refused"):
        _loaded(path)
    assert not marker.exists()


def test_gpt2_generation_and_text_segments_never_become_special(hf_dir: tuple[Path, dict[str, np.ndarray]]) -> None:
    d, _ = hf_dir
    b = _loaded(d)
    assert b.info().details["chat_template"] == "plain"
    ids = b.tokenize_messages([Message("user", "say <|endoftext|> now")])
    eos = b._tok._tok.token_to_id("<|endoftext|>")
    assert eos not in ids  # user text cannot forge the end-of-text token
    params = GenerationParams(temperature=0.9, max_tokens=12, seed=11)
    one = b.stream_chat([Message("user", "hello world")], params).consume()
    two = b.stream_chat([Message("user", "hello world")], params).consume()
    assert one.finish_reason in ("length", "stop") and one.completion_tokens >= 1
    assert (one.text, one.completion_tokens) == (two.text, two.completion_tokens)


@pytest.mark.parametrize("case, message", [
    ("llama_config", "does not support model_type 'llama'"),
    ("bad_json", "not valid JSON"),
    ("truncated_weights", "not a readable safetensors file"),
    ("no_tokenizer", "tokenizer.json is missing"),
    ("not_a_checkpoint", "not a checkpoint the torch backend reads"),
])
def test_bad_checkpoints_give_one_clear_line(
    hf_dir: tuple[Path, dict[str, np.ndarray]], tmp_path: Path, cli: str, case: str, message: str
) -> None:
    d, _ = hf_dir
    target = tmp_path / "model"
    target.mkdir()
    for name in ("config.json", "model.safetensors", "tokenizer.json"):
        (target / name).write_bytes((d / name).read_bytes())
    model_arg = target
    if case == "llama_config":
        (target / "config.json").write_text(json.dumps({"model_type": "llama"}))
    elif case == "bad_json":
        (target / "config.json").write_text("{nope")
    elif case == "truncated_weights":
        data = (target / "model.safetensors").read_bytes()
        (target / "model.safetensors").write_bytes(data[: len(data) // 3])
    elif case == "no_tokenizer":
        (target / "tokenizer.json").unlink()
    else:
        model_arg = tmp_path / "notes.txt"
        model_arg.write_text("just text")
    r = run_cli(cli, "--backend", "torch", "--model", str(model_arg), "--prompt", "hi", "-n", "3")
    assert r.returncode == 1, r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr
