"""Recognise a checkpoint by its shape on disk and hand it to the loader for its format."""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aigc_chat.errors import ModelError
from aigc_chat.safe_open import open_regular

if TYPE_CHECKING:
    import torch

    from aigc_chat.backends.torch_gpt.model import ModelConfig
    from aigc_chat.backends.torch_gpt.tokenizer import Tokenizer

FORMATS = (
    "GGUF (llama, gemma3), a Hugging Face GPT-2 folder (config.json, model.safetensors, tokenizer.json) "
    "or a nanoGPT ckpt.pt"
)


@dataclass
class Checkpoint:
    path: Path
    format: str  # "gguf", "hf-gpt2", "nanogpt"
    name: str
    config: ModelConfig
    state: dict[str, torch.Tensor]
    tokenizer: Tokenizer
    chat_template: str | None  # the file's own Jinja template, if any
    details: dict[str, Any]


def detect_format(path: Path) -> str:
    """'gguf', 'hf-gpt2' or 'nanogpt', or a ModelError naming what is accepted."""
    if not path.exists():
        raise ModelError(f"model not found: {path}")
    if path.is_dir():
        if (path / "config.json").is_file():
            return "hf-gpt2"
        if (path / "ckpt.pt").is_file():
            return "nanogpt"
        raise ModelError(f"{path}: no config.json or ckpt.pt in this folder (the torch backend reads {FORMATS})")
    if path.name == "config.json":
        return "hf-gpt2"
    try:
        with open_regular(path, "model", ModelError) as fh:  # never a FIFO or a device
            head = fh.read(4)
    except OSError as exc:
        raise ModelError(f"cannot read {path}: {exc.strerror or exc}") from None
    if head == b"GGUF":
        return "gguf"
    if head[:2] == b"PK" or path.suffix in (".pt", ".pth"):
        return "nanogpt"  # torch.save writes a zip archive
    raise ModelError(f"{path}: not a checkpoint the torch backend reads ({FORMATS})")


def open_checkpoint(path: Path) -> Checkpoint:
    fmt = detect_format(path)
    if fmt == "gguf":
        from aigc_chat.backends.torch_gpt.gguf_loader import load_gguf
        from aigc_chat.backends.torch_gpt.tokenizer import GGUFTokenizer

        cfg, state, info = load_gguf(path)
        tok = GGUFTokenizer(info.path)
        if tok.vocab_size != cfg.vocab_size:
            raise ModelError(f"{path}: malformed GGUF, {tok.vocab_size} tokens but an embedding of {cfg.vocab_size}")
        return Checkpoint(info.path, fmt, info.name, cfg, state, tok, info.chat_template,
                          {"architecture": info.architecture, "file_bytes": info.file_size,
                           **({"context_note": info.context_note} if info.context_note else {})})
    if fmt == "hf-gpt2":
        from aigc_chat.backends.torch_gpt.hf_gpt2_loader import load_hf_gpt2

        return load_hf_gpt2(path if path.is_dir() else path.parent)
    from aigc_chat.backends.torch_gpt.nanogpt_loader import load_nanogpt

    return load_nanogpt(path / "ckpt.pt" if path.is_dir() else path)
