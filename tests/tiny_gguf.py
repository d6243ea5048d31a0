"""Write tiny F32 GGUF models (llama and gemma3 architectures) with random weights.

Small enough to build in milliseconds and run in llama.cpp and our torch model side by side,
large enough to exercise what differs between the families: grouped-query attention, a head
size unequal to n_embd / n_head, Gemma's sliding window (6 layers, so layer 5 is global) and
its four norms per block. The vocabulary is a SentencePiece-style one: control tokens, the
256 byte tokens, single characters and a few merges, so real text tokenises in both engines.

Also here, so that every test builds its GGUF files one way: `write_chain_gguf`, a model
whose greedy reply is exactly the tokens the test chose (long pieces, split UTF-8, escape
bytes), and `write_raw_gguf`, a non-chat file (an embedding model, a projector, a split
part) for the model finder.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import Any

import numpy as np

ARCHS = ("llama", "gemma3")
_CHARS = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'\"-:;()\n")
_MERGES = ["▁t", "he", "▁the", "▁a", "in", "er", "▁w", "or", "▁h", "▁hello", "▁world", "ll", "lo"]

# Token types, as in gguf.TokenType.
NORMAL, UNKNOWN, CONTROL, BYTE = 1, 2, 3, 6

# A ChatML chat template, for tiny files that must count as chat models.
CHATML = ("{% for m in messages %}<|im_start|>{{ m['role'] }}\n{{ m['content'] }}<|im_end|>\n"
          "{% endfor %}{% if add_generation_prompt %}<|im_start|>assistant\n{% endif %}")


def vocab(arch: str, pieces: list[str] | None = None) -> tuple[list[str], list[float], list[int], dict[str, int]]:
    """Tokens, scores, types and the special ids for the given architecture: the control
    tokens, the 256 byte tokens, then `pieces` (by default "▁", single characters and a few
    merges) as normal tokens."""
    if arch == "gemma3":
        head = [("<pad>", CONTROL), ("<eos>", CONTROL), ("<bos>", CONTROL), ("<unk>", UNKNOWN),
                ("<start_of_turn>", CONTROL), ("<end_of_turn>", CONTROL)]
        ids = {"pad": 0, "eos": 1, "bos": 2, "unk": 3}
    else:
        head = [("<unk>", UNKNOWN), ("<s>", CONTROL), ("</s>", CONTROL)]
        ids = {"unk": 0, "bos": 1, "eos": 2}
    tokens = [t for t, _ in head]
    types = [k for _, k in head]
    scores = [0.0] * len(head)
    for b in range(256):
        tokens.append(f"<0x{b:02X}>")
        types.append(BYTE)
        scores.append(0.0)
    if pieces is None:
        pieces = ["▁", *_CHARS, *_MERGES]
    for i, p in enumerate(pieces):
        tokens.append(p)
        types.append(NORMAL)
        # Longer merges score higher, as SentencePiece's unigram/BPE scores roughly do.
        scores.append(-1000.0 + 10.0 * len(p) - 0.001 * i)
    return tokens, scores, types, ids


def write_tiny_gguf(path: str | Path, arch: str = "llama", seed: int = 0, *,
                    n_layer: int | None = None, sliding_window: int = 4,
                    context_length: int = 256, name: str | None = None,
                    extra: dict | None = None) -> Path:
    """Write a random tiny model of `arch` to `path` and return the path. `extra` adds
    metadata keys (str, bool, int as uint32, float as float32): a chat template, sampling
    recommendations, a general.type."""
    import gguf

    if arch not in ARCHS:
        raise ValueError(f"arch must be one of {ARCHS}")
    rng = np.random.default_rng(seed)
    path = Path(path)
    gemma = arch == "gemma3"
    n_embd, n_head, n_kv = 64, 4, 2
    head_dim = 32 if gemma else n_embd // n_head
    ffn = 128
    n_layer = n_layer or (6 if gemma else 2)
    tokens, scores, types, ids = vocab(arch)

    w = gguf.GGUFWriter(str(path), arch)
    w.add_name(name or f"tiny-{arch}")
    _add_metadata(w, extra or {})
    _add_shape(w, context_length=context_length, n_embd=n_embd, n_layer=n_layer, ffn=ffn,
               n_head=n_head, n_kv=n_kv, head_dim=head_dim, gemma=gemma, sliding_window=sliding_window)
    _add_tokenizer(w, tokens, scores, types, ids, space_prefix=not gemma)

    def mat(out_dim: int, in_dim: int) -> np.ndarray:
        return (rng.standard_normal((out_dim, in_dim)) / np.sqrt(in_dim)).astype(np.float32)

    def norm(dim: int) -> np.ndarray:
        return (1.0 + 0.1 * rng.standard_normal(dim)).astype(np.float32)

    embd = rng.standard_normal((len(tokens), n_embd)) * (0.05 if gemma else 1.0)
    w.add_tensor("token_embd.weight", embd.astype(np.float32))
    for i in range(n_layer):
        p = f"blk.{i}."
        _add_block(w, p, mat, norm, n_embd=n_embd, n_head=n_head, n_kv=n_kv, head_dim=head_dim, ffn=ffn)
        if gemma:
            w.add_tensor(p + "attn_q_norm.weight", norm(head_dim))
            w.add_tensor(p + "attn_k_norm.weight", norm(head_dim))
            w.add_tensor(p + "post_attention_norm.weight", norm(n_embd))
            w.add_tensor(p + "post_ffw_norm.weight", norm(n_embd))
    w.add_tensor("output_norm.weight", norm(n_embd))
    if not gemma:
        w.add_tensor("output.weight", mat(len(tokens), n_embd))
    return _save(w, path)


# -- the parts every writer here shares -------------------------------------------------------

def _add_metadata(w: Any, extra: dict[str, Any]) -> None:
    """Extra keys, typed as llama.cpp reads them: str, bool, int as uint32, float as float32."""
    for key, value in extra.items():
        if isinstance(value, str):
            w.add_string(key, value)
        elif isinstance(value, bool):
            w.add_bool(key, value)
        elif isinstance(value, int):
            w.add_uint32(key, value)
        else:
            w.add_float32(key, float(value))


def _add_shape(w: Any, *, context_length: int, n_embd: int, n_layer: int, ffn: int, n_head: int,
               n_kv: int, head_dim: int, gemma: bool, sliding_window: int = 4) -> None:
    """The hyperparameters of a llama or gemma3 model."""
    w.add_context_length(context_length)
    w.add_embedding_length(n_embd)
    w.add_block_count(n_layer)
    w.add_feed_forward_length(ffn)
    w.add_head_count(n_head)
    w.add_head_count_kv(n_kv)
    w.add_layer_norm_rms_eps(1e-6 if gemma else 1e-5)
    if gemma:
        w.add_key_length(head_dim)
        w.add_value_length(head_dim)
        w.add_sliding_window(sliding_window)
        w.add_rope_freq_base(1_000_000.0)
    else:
        w.add_rope_dimension_count(head_dim)
        w.add_rope_freq_base(10_000.0)


def _add_tokenizer(w: Any, tokens: list[str], scores: list[float], types: list[int], ids: dict[str, int],
                   space_prefix: bool) -> None:
    """A SentencePiece ("llama") vocabulary that adds BOS, not EOS."""
    w.add_tokenizer_model("llama")
    w.add_token_list(tokens)
    w.add_token_scores(scores)
    w.add_token_types(types)
    w.add_bos_token_id(ids["bos"])
    w.add_eos_token_id(ids["eos"])
    w.add_unk_token_id(ids["unk"])
    if "pad" in ids:
        w.add_pad_token_id(ids["pad"])
    w.add_add_bos_token(True)
    w.add_add_eos_token(False)
    w.add_add_space_prefix(space_prefix)


def _add_block(w: Any, p: str, mat: Callable[[int, int], np.ndarray], norm: Callable[[int], np.ndarray], *,
               n_embd: int, n_head: int, n_kv: int, head_dim: int, ffn: int) -> None:
    """One llama block's tensors under prefix `p`, made by `mat` and `norm` in this order."""
    w.add_tensor(p + "attn_norm.weight", norm(n_embd))
    w.add_tensor(p + "attn_q.weight", mat(n_head * head_dim, n_embd))
    w.add_tensor(p + "attn_k.weight", mat(n_kv * head_dim, n_embd))
    w.add_tensor(p + "attn_v.weight", mat(n_kv * head_dim, n_embd))
    w.add_tensor(p + "attn_output.weight", mat(n_embd, n_head * head_dim))
    w.add_tensor(p + "ffn_norm.weight", norm(n_embd))
    w.add_tensor(p + "ffn_gate.weight", mat(ffn, n_embd))
    w.add_tensor(p + "ffn_up.weight", mat(ffn, n_embd))
    w.add_tensor(p + "ffn_down.weight", mat(n_embd, ffn))


def _save(w: Any, path: Path) -> Path:
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def write_tiny_ggufs(folder: Path, seed: int = 0) -> dict[str, Path]:
    """One tiny model of each architecture in `folder`: {"llama": path, "gemma3": path}."""
    return {a: write_tiny_gguf(Path(folder) / f"tiny-{a}.gguf", a, seed=seed) for a in ARCHS}


# -- a model that says exactly what the test wants ----------------------------------------------

NL32 = "\n" + "▁" * 32          # a newline and 32 spaces: 33 bytes
DASH64 = "-" * 64               # 64 bytes
HINDI = "▁प्रधानमंत्री"            # 37 bytes
LONG = [NL32, DASH64, HINDI, "▁" + "=" * 40]
_CHAIN_CHARS = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'\"-:;()[]/<>|_\n")


def chain_vocab(extra: Sequence[str] = ()) -> tuple[list[str], list[float], list[int], dict[str, int]]:
    """The chain model's vocabulary: llama's control and byte tokens, single characters,
    pieces longer than 32 bytes (`LONG`), and `extra` pieces a test needs."""
    base = ["▁", *_CHAIN_CHARS, "▁h", "▁hi", *LONG]
    return vocab("llama", [*base, *(p for p in extra if p not in base)])


def write_chain_gguf(path: Path, chain: list[str], *, extra: Sequence[str] = (),
                     template: str | None = None, context_length: int = 256) -> Path:
    """A llama-architecture GGUF that, greedy, answers any prompt with `chain` then EOS.

    Embeddings are one-hot (n_embd >= vocabulary), every layer's weights are zero so the
    residual stream carries the current token's embedding untouched, and the output matrix
    maps token s to its successor: chain[k] -> chain[k+1], the last -> EOS, any other token
    (the end of whatever prompt) -> chain[0]. `chain` names tokens of `chain_vocab(extra)`;
    `template` is written as the file's chat template."""
    import gguf

    tokens, scores, types, special = chain_vocab(extra)
    ids = {t: i for i, t in enumerate(tokens)}
    seq = [ids[t] for t in chain]
    assert len(set(seq)) == len(seq), "each chain token must have one successor"
    n_vocab = len(tokens)
    n_embd = 64 * ((n_vocab + 63) // 64)
    n_head, n_kv, ffn = 4, 2, 64
    head_dim = n_embd // n_head
    w = gguf.GGUFWriter(str(path), "llama")
    w.add_name("tiny-chain")
    _add_shape(w, context_length=context_length, n_embd=n_embd, n_layer=1, ffn=ffn, n_head=n_head, n_kv=n_kv,
               head_dim=head_dim, gemma=False)
    _add_tokenizer(w, tokens, scores, types, special, space_prefix=True)
    if template is not None:
        w.add_chat_template(template)
    embd = np.zeros((n_vocab, n_embd), np.float32)
    embd[np.arange(n_vocab), np.arange(n_vocab)] = 1.0
    out = np.zeros((n_vocab, n_embd), np.float32)
    out[seq[0], :n_vocab] = 1.0
    for a, b in zip(seq, [*seq[1:], special["eos"]], strict=True):
        out[:, a] = 0.0
        out[b, a] = 1.0
    w.add_tensor("token_embd.weight", embd)
    _add_block(w, "blk.0.", lambda *shape: np.zeros(shape, np.float32), lambda dim: np.ones(dim, np.float32),
               n_embd=n_embd, n_head=n_head, n_kv=n_kv, head_dim=head_dim, ffn=ffn)
    w.add_tensor("output_norm.weight", np.ones(n_embd, np.float32))
    w.add_tensor("output.weight", out)
    return _save(w, path)


# -- files that are not chat models ---------------------------------------------------------------

def write_raw_gguf(path: Path, arch: str, kv: dict[str, str | int] | None = None,
                   split: tuple[int, int] | None = None) -> Path:
    """A small non-chat GGUF (an embedding model, a projector, a later split part): one
    tensor, `kv` as strings or uint32, and `split` = (part index, part count)."""
    import gguf

    path.parent.mkdir(parents=True, exist_ok=True)
    w = gguf.GGUFWriter(str(path), arch)
    for key, value in (kv or {}).items():
        w.add_string(key, value) if isinstance(value, str) else w.add_uint32(key, value)
    if split:
        w.add_uint16("split.no", split[0])
        w.add_uint16("split.count", split[1])
    w.add_tensor(f"t{split[0] if split else 0}.weight", np.zeros((4, 8), dtype=np.float32))
    return _save(w, path)


if __name__ == "__main__":  # pragma: no cover - handy for poking at the files by hand
    import sys

    for a in ARCHS:
        print(write_tiny_gguf(Path(sys.argv[1] if len(sys.argv) > 1 else ".") / f"tiny-{a}.gguf", a))
