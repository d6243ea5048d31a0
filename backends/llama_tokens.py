"""llama.cpp tokenisation sized by the text, and bounded by the context.

Two faults of going through `Llama.tokenize` (docs/bad-input.md):

- It allocates a buffer of the model's *training* context for every call, whatever the text:
  a file whose header claims 2^28 tokens costs 1 GiB per call, 2^31-1 costs 8 GiB, and
  2^32-1 fails outright. Here the buffer is sized from the text (a token covers at least
  one byte almost always; llama.cpp says how many it needs when that is not enough).
- A prompt far past the context was tokenised whole before it was refused, in one native
  call that Ctrl-C cannot interrupt (3 MB of base64 takes over a minute on Gemma's
  tokenizer). With `limit`, a long text is first counted in chunks, stopping as soon as it is
  surely past the limit, so refusing it costs about `limit` tokens of work and Ctrl-C is
  seen between chunks; a text that fits is then tokenised whole, as before, so its tokens
  (and the KV cache reuse that depends on them) do not change.

Shared by the llama backend and the torch backend's GGUF tokenizer.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

CHUNK = 32 << 10  # bytes per counting step: a few tens of ms of tokenising at worst
SLACK = 16  # tokens a chunk boundary may add or save (a cut merge, a space prefix, a split special token)


class TooLong(Exception):
    """The text is surely longer than the limit. `counted`: tokens in the part counted (more
    than the limit); `estimate`: that, scaled to the whole text."""

    def __init__(self, counted: int, estimate: int) -> None:
        super().__init__(f"more than {counted} tokens")
        self.counted = counted
        self.estimate = estimate


def tokenize(llama_cpp: Any, vocab: Any, data: bytes, add_bos: bool, special: bool) -> list[int]:
    """llama.cpp's tokens for `data`, with a buffer sized from its length."""
    size = len(data) + 16
    while True:
        buf = (llama_cpp.llama_token * size)()
        n = int(llama_cpp.llama_tokenize(vocab, data, len(data), buf, size, add_bos, special))
        if n >= 0:
            return buf[:n]
        if -n <= size:  # cannot happen; never loop on a library that says so
            raise RuntimeError(f"llama.cpp could not tokenise the text ({n})")
        size = -n


def count_over(llama_cpp: Any, vocab: Any, data: bytes, special: bool, limit: int, start: int = 0) -> int:
    """Count `data` in chunks; raise TooLong once it is surely more than `limit` tokens
    (`start` tokens surely counted before it). Returns a floor of the tokens so far when it
    may fit."""
    total, pos, cuts = 0, 0, 0
    while pos < len(data):
        end = _cut(data, pos)
        total += len(tokenize(llama_cpp, vocab, data[pos:end], False, special))
        pos, cuts = end, cuts + 1
        sure = start + total - SLACK * cuts
        if sure > limit:
            raise TooLong(sure, start + total * len(data) // pos)
    return max(start, start + total - SLACK * cuts)


def tokenize_segments(llama_cpp: Any, vocab: Any, segments: Sequence[Any], limit: int | None = None) -> list[int]:
    """The merged segments' tokens, BOS on the first, markup parsed as special tokens and
    text not (what LlamaCppBackend.tokenize_messages has always done). With `limit`:
    TooLong, cheaply, for a prompt surely longer than that."""
    encoded = [(seg.text.encode("utf-8", "replace"), seg.special) for seg in segments]
    if limit is not None and sum(len(d) for d, _ in encoded) > CHUNK:
        counted = 0  # a floor: only the long segments are counted
        for data, special in encoded:
            if len(data) > CHUNK:
                counted = count_over(llama_cpp, vocab, data, special, limit, counted)
    tokens: list[int] = []
    for i, (data, special) in enumerate(encoded):
        tokens += tokenize(llama_cpp, vocab, data, i == 0, special)
    return tokens


def _cut(data: bytes, pos: int) -> int:
    """Where the chunk from `pos` ends: at a newline or space in its second half when there
    is one, else on a UTF-8 character boundary."""
    end = pos + CHUNK
    if end >= len(data):
        return len(data)
    for sep in (b"\n", b" "):
        at = data.rfind(sep, pos + CHUNK // 2, end)
        if at > 0:
            return at + 1
    while end > pos + 1 and data[end] & 0xC0 == 0x80:  # a continuation byte: back to the lead
        end -= 1
    return end

