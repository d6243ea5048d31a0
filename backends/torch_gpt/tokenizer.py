"""Tokenizers for the torch backend, both driven by the same rendered template segments.

For GGUF files the tokenizer is llama.cpp's own, loaded vocabulary-only (no weights, about a
second for Gemma's 262k tokens): it is the one exact equivalent of what the llama backend
does, so both backends send identical token ids. This makes llama-cpp-python a requirement
of the torch backend for GGUF files (not for GPT-2 / nanoGPT checkpoints).

For Hugging Face checkpoints, `tokenizer.json` goes through the `tokenizers` library.

`token_bytes` gives a token's raw bytes, which may end inside a UTF-8 sequence; the backend
yields them as they are and ChatStream decodes them (and flushes the decoder at every end).
"""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import Any, Protocol

from aigc_chat.errors import ModelError, UsageError
from aigc_chat.safe_open import read_regular
from aigc_chat.templates import Segment, merge_segments


class Tokenizer(Protocol):
    bos_text: str
    eos_text: str
    vocab_size: int

    def encode_segments(self, segments: Sequence[Segment], limit: int | None = None) -> list[int]:
        """The segments' tokens. With `limit`, a tokenizer may raise
        aigc_chat.backends.llama_tokens.TooLong for a text surely longer, without finishing."""
        ...

    def token_bytes(self, token: int) -> bytes: ...

    def is_eog(self, token: int) -> bool: ...


class GGUFTokenizer:
    """llama.cpp's tokenizer for a GGUF file, with the same calls the llama backend makes."""

    def __init__(self, path: Path) -> None:
        from aigc_chat.backends.llama_cpp_backend import (
            TokenPieces,
            import_llama_cpp,
            install_quiet_logger,
            last_log_error,
            no_template_compile,
        )

        llama_cpp = import_llama_cpp()
        install_quiet_logger(llama_cpp)
        try:
            with no_template_compile(llama_cpp):
                self._llm = llama_cpp.Llama(model_path=str(path), vocab_only=True, n_ctx=256, verbose=False)
        except (ValueError, RuntimeError, OSError) as exc:
            raise ModelError(f"llama.cpp could not read the vocabulary of {path}: {last_log_error() or exc}") from None
        self._vocab = self._llm._model.vocab
        self._llama_cpp = llama_cpp
        self._pieces = TokenPieces(llama_cpp, self._vocab)  # the llama backend's renderer
        self.vocab_size = int(self._llm.n_vocab())
        self.bos_text = self._pieces.special_text(self._llm.token_bos())
        self.eos_text = self._pieces.special_text(self._llm.token_eos())

    def encode_segments(self, segments: Sequence[Segment], limit: int | None = None) -> list[int]:
        """Exactly LlamaCppBackend.tokenize_messages: BOS on the first merged segment, with
        buffers sized from the text (not from the file's claimed context), and a prompt
        surely past `limit` refused after counting about that many tokens."""
        from aigc_chat.backends.llama_tokens import tokenize_segments

        return tokenize_segments(self._llama_cpp, self._vocab, merge_segments(segments), limit)

    def token_bytes(self, token: int) -> bytes:
        return self._pieces(token)

    def is_eog(self, token: int) -> bool:
        from aigc_chat.backends.llama_cpp_backend import ends_turn

        return ends_turn(self._llama_cpp, self._vocab, token)  # the llama backend's rule

    def close(self) -> None:
        self._llm.close()


def _byte_decoder() -> dict[str, int]:
    """The printable-character alphabet byte-level BPE uses for raw bytes, inverted."""
    keep = list(range(ord("!"), ord("~") + 1)) + list(range(0xA1, 0xAD)) + list(range(0xAE, 0x100))
    chars = list(keep)
    extra = 0
    for b in range(256):
        if b not in keep:
            keep.append(b)
            chars.append(256 + extra)
            extra += 1
    return {chr(c): b for b, c in zip(keep, chars, strict=True)}


TOKENIZER_LIMIT = 256 << 20  # tokenizer.json: GPT-2's is 1.4 MB, the largest vocabularies ~35 MB


class HFTokenizer:
    """A `tokenizer.json` (GPT-2 family). Text segments never produce special tokens."""

    def __init__(self, path: Path, eos_text: str = "", bos_text: str = "") -> None:
        try:
            from tokenizers import Tokenizer as _Tok
        except ImportError:
            raise UsageError("the torch backend needs tokenizers: pip install 'aigc-chat[torch]'") from None
        # regular files only, bounded: a FIFO would block the library's read, /dev/zero never end
        text = read_regular(path, TOKENIZER_LIMIT, "tokenizer", ModelError).decode("utf-8", errors="replace")
        try:
            self._tok: Any = _Tok.from_str(text)
        except Exception as exc:  # noqa: BLE001 - the library raises plain Exception
            raise ModelError(f"{path}: not a usable tokenizer.json ({str(exc).splitlines()[0][:120]})") from None
        self.vocab_size = int(self._tok.get_vocab_size(with_added_tokens=True))
        self.eos_text, self.bos_text = eos_text, bos_text
        self._eos_id = self._tok.token_to_id(eos_text) if eos_text else None
        decoder = type(self._tok.decoder).__name__ if self._tok.decoder is not None else ""
        self._bytes = _byte_decoder() if decoder == "ByteLevel" else None

    def encode_segments(self, segments: Sequence[Segment], limit: int | None = None) -> list[int]:
        tokens: list[int] = []
        for seg in merge_segments(segments):
            self._tok.encode_special_tokens = not seg.special
            try:
                tokens += self._tok.encode(seg.text, add_special_tokens=False).ids
            finally:
                self._tok.encode_special_tokens = False
        return tokens

    def token_bytes(self, token: int) -> bytes:
        piece = self._tok.id_to_token(token)
        if piece is None:
            return b""
        if self._bytes is not None and all(c in self._bytes for c in piece):
            return bytes(self._bytes[c] for c in piece)
        return self._tok.decode([token], skip_special_tokens=False).encode("utf-8")

    def is_eog(self, token: int) -> bool:
        return self._eos_id is not None and token == self._eos_id

    def close(self) -> None:
        pass

