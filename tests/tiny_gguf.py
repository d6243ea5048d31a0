"""Write tiny F32 GGUF models (llama and gemma3 architectures) with random weights.

Small enough to build in milliseconds and run in llama.cpp and our torch model side by side,
large enough to exercise what differs between the families: grouped-query attention, a head
size unequal to n_embd / n_head, Gemma's sliding window (6 layers, so layer 5 is global) and
its four norms per block. The vocabulary is a SentencePiece-style one: control tokens, the
256 byte tokens, single characters and a few merges, so real text tokenises in both engines.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np

ARCHS = ("llama", "gemma3")
_CHARS = list("abcdefghijklmnopqrstuvwxyzABCDEFGHIJKLMNOPQRSTUVWXYZ0123456789.,!?'\"-:;()\n")
_MERGES = ["▁t", "he", "▁the", "▁a", "in", "er", "▁w", "or", "▁h", "▁hello", "▁world", "ll", "lo"]

# Token types, as in gguf.TokenType.
NORMAL, UNKNOWN, CONTROL, BYTE = 1, 2, 3, 6


def vocab(arch: str) -> tuple[list[str], list[float], list[int], dict[str, int]]:
    """Tokens, scores, types and the special ids for the given architecture."""
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
    pieces = ["▁"] + _CHARS + _MERGES
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
    for key, value in (extra or {}).items():
        if isinstance(value, str):
            w.add_string(key, value)
        elif isinstance(value, bool):
            w.add_bool(key, value)
        elif isinstance(value, int):
            w.add_uint32(key, value)
        else:
            w.add_float32(key, float(value))
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
    w.add_add_space_prefix(not gemma)

    def mat(out_dim: int, in_dim: int) -> np.ndarray:
        return (rng.standard_normal((out_dim, in_dim)) / np.sqrt(in_dim)).astype(np.float32)

    def norm(dim: int) -> np.ndarray:
        return (1.0 + 0.1 * rng.standard_normal(dim)).astype(np.float32)

    w.add_tensor("token_embd.weight", (rng.standard_normal((len(tokens), n_embd)) * (0.05 if gemma else 1.0)).astype(np.float32))
    for i in range(n_layer):
        p = f"blk.{i}."
        w.add_tensor(p + "attn_norm.weight", norm(n_embd))
        w.add_tensor(p + "attn_q.weight", mat(n_head * head_dim, n_embd))
        w.add_tensor(p + "attn_k.weight", mat(n_kv * head_dim, n_embd))
        w.add_tensor(p + "attn_v.weight", mat(n_kv * head_dim, n_embd))
        w.add_tensor(p + "attn_output.weight", mat(n_embd, n_head * head_dim))
        w.add_tensor(p + "ffn_norm.weight", norm(n_embd))
        w.add_tensor(p + "ffn_gate.weight", mat(ffn, n_embd))
        w.add_tensor(p + "ffn_up.weight", mat(ffn, n_embd))
        w.add_tensor(p + "ffn_down.weight", mat(n_embd, ffn))
        if gemma:
            w.add_tensor(p + "attn_q_norm.weight", norm(head_dim))
            w.add_tensor(p + "attn_k_norm.weight", norm(head_dim))
            w.add_tensor(p + "post_attention_norm.weight", norm(n_embd))
            w.add_tensor(p + "post_ffw_norm.weight", norm(n_embd))
    w.add_tensor("output_norm.weight", norm(n_embd))
    if not gemma:
        w.add_tensor("output.weight", mat(len(tokens), n_embd))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


if __name__ == "__main__":  # pragma: no cover - handy for poking at the files by hand
    import sys

    for a in ARCHS:
        print(write_tiny_gguf(Path(sys.argv[1] if len(sys.argv) > 1 else ".") / f"tiny-{a}.gguf", a))
