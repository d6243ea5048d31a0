"""Stepping over a header's string arrays in bulk (numpy) gives exactly what the exact loop gives.

`gguf_info._prove_short_strings` finds the chain of length prefixes with vector operations and
proves it link by link; anything it cannot prove (an empty string, one of 256 bytes or more,
seven zeros inside a string, the end of the file) is left to the exact loop. These tests hold
the two paths side by side: on random byte strings (with tiny chunks, so that every link
crosses a chunk boundary somewhere), on files written by the `gguf` package's GGUFWriter with
the awkward strings in their vocabularies, on the real bundled models, and on the same files
truncated or with a corrupt length, where both must fail with the same one line.
"""

from __future__ import annotations

import random
from pathlib import Path

import numpy as np
import pytest
from gguf import GGUFReader, GGUFWriter

from aigc_chat import gguf_info
from aigc_chat.errors import ModelError
from aigc_chat.gguf_info import read_gguf_info

AWKWARD = ["", "a" * 255, "b" * 256, "c" * 300, "d" * 65_535, "e" * 65_536, "f" * 70_000,
           "nul\x00\x00\x00\x00\x00\x00\x00\x00inside", "\x00", "\x01" + "\x00" * 7, "▁héllo wörld", "x"]


def _exact_chain(buf: bytes, pos: int, count: int) -> int:
    """The reference: where `count` strings from `pos` end, one u64 length at a time (every
    length inside the buffer; the last string's bytes need not be, the caller checks that)."""
    for _ in range(count):
        assert pos + 8 <= len(buf)
        pos += 8 + int.from_bytes(buf[pos : pos + 8], "little")
    return pos


def _strings(rng: random.Random, n: int) -> bytes:
    out = bytearray()
    for _ in range(n):
        r = rng.random()
        if r < 0.03:
            data = b""
        elif r < 0.05:
            data = bytes(rng.choice([255, 256, 257, 300, 65_536 + 3]) * [ord("q")])
        elif r < 0.08:
            data = b"z" + b"\x00" * rng.randint(1, 12) + b"y"  # a false candidate inside
        else:
            data = bytes(rng.randint(1, 255) for _ in range(rng.randint(1, 24)))
        out += len(data).to_bytes(8, "little") + data
    return bytes(out)


@pytest.mark.parametrize("chunk", [gguf_info._CHUNK, 64, 23])
@pytest.mark.parametrize("seed", range(12))
def test_the_proof_never_claims_a_wrong_position(monkeypatch, seed, chunk):
    monkeypatch.setattr(gguf_info, "_CHUNK", chunk)
    rng = random.Random(seed)
    n = rng.randint(1, 3000)
    buf = _strings(rng, n) + bytes(rng.randint(0, 255) for _ in range(rng.randint(0, 40)))
    cut = len(buf) if seed % 3 else rng.randint(0, len(buf))  # a third of them truncated
    buf = buf[:cut]
    for count in (n, n + 5, max(1, n // 2)):
        done, pos = gguf_info._prove_short_strings(memoryview(buf), 0, count)
        assert 0 <= done <= count
        assert pos == _exact_chain(buf, 0, done), (seed, count, done)


def test_the_proof_covers_ordinary_vocabularies_in_one_pass():
    """Without awkward strings nothing is left to the loop (else the speed-up would be gone)."""
    buf = b"".join(len(t).to_bytes(8, "little") + t for t in (f"tok{i}".encode() for i in range(20_000)))
    done, pos = gguf_info._prove_short_strings(memoryview(buf + b"\x15" + b"\x00" * 7), 0, 20_000)
    assert (done, pos) == (20_000, len(buf))


def test_random_bytes_are_never_proven_wrong():
    rng = np.random.default_rng(0)
    for density in (0.5, 0.9, 0.99):  # the share of zero bytes
        raw = rng.integers(1, 256, 200_000, dtype=np.uint8)
        raw[rng.random(raw.size) < density] = 0
        raw[0], raw[1:8] = 5, 0
        buf = raw.tobytes()
        done, pos = gguf_info._prove_short_strings(memoryview(buf), 0, 50_000)
        assert done >= 1 and pos == _exact_chain(buf, 0, done)


def _write(path: Path, tokens: list[str], merges: list[str], extra: list[str] | None = None) -> Path:
    w = GGUFWriter(str(path), "llama")
    w.add_name("walk test")
    w.add_context_length(4096)
    w.add_block_count(1)
    w.add_tokenizer_model("gpt2")
    w.add_token_list(tokens)
    w.add_token_types([1] * len(tokens))
    w.add_token_merges(merges)
    if extra is not None:
        w.add_array("test.long_strings", extra)
    w.add_chat_template("{{ messages[0]['content'] }}")  # after the arrays, as converters write it
    w.add_tensor("token_embd.weight", np.zeros((8, 4), dtype=np.float32))
    w.add_tensor("output.weight", np.ones((4, 8), dtype=np.float16))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def _vocab(n: int, awkward: bool) -> tuple[list[str], list[str]]:
    tokens = [f"tok{i}" for i in range(n)]
    if awkward:
        for i, t in enumerate(AWKWARD):
            tokens[(i * 997) % n] = t
    merges = [f"t{i} k{i}" for i in range(n - 7)]
    return tokens, merges


def _read(path: Path, bulk: bool, monkeypatch: pytest.MonkeyPatch) -> gguf_info.GGUFInfo | str:
    """The parse, or its one-line error, with the bulk path on or off."""
    with monkeypatch.context() as m:
        if not bulk:
            m.setattr(gguf_info, "_BULK_MIN_STRINGS", 1 << 62)
        try:
            return read_gguf_info(path, check_architecture=False)
        except ModelError as exc:
            return f"ModelError: {exc}"


@pytest.fixture(scope="module")
def awkward_file(tmp_path_factory: pytest.TempPathFactory) -> Path:
    tokens, merges = _vocab(3000, awkward=True)
    return _write(tmp_path_factory.mktemp("walk") / "awkward.gguf", tokens, merges,
                  extra=["s" * 70_000, "", "t" * 300] * 100)


@pytest.mark.parametrize("awkward", [False, True])
@pytest.mark.parametrize("chunk", [gguf_info._CHUNK, 100])
def test_a_gguf_writer_file_parses_the_same_both_ways(tmp_path, monkeypatch, awkward, chunk):
    tokens, merges = _vocab(5000, awkward)
    path = _write(tmp_path / "v.gguf", tokens, merges, extra=["s" * 70_000, "", "t" * 300] * 100 if awkward else None)
    monkeypatch.setattr(gguf_info, "_CHUNK", chunk)
    fast, slow = _read(path, True, monkeypatch), _read(path, False, monkeypatch)
    assert isinstance(fast, gguf_info.GGUFInfo), fast
    assert fast == slow
    assert fast.array_lengths["tokenizer.ggml.tokens"] == 5000
    assert fast.chat_template == "{{ messages[0]['content'] }}"
    # and both agree with the gguf package's own reader on where the tensors are
    reader = GGUFReader(str(path))
    assert fast.data_offset == reader.data_offset
    assert [(t[0], t[3]) for t in fast.tensors] == [(t.name, int(t.data_offset) - reader.data_offset)
                                                    for t in reader.tensors]


def test_the_awkward_file_needs_the_exact_loop(awkward_file, monkeypatch):
    """The awkward strings really do reach the loop: the bulk path alone does not get there."""
    fast = _read(awkward_file, True, monkeypatch)
    assert isinstance(fast, gguf_info.GGUFInfo) and fast == _read(awkward_file, False, monkeypatch)
    assert fast.array_lengths["test.long_strings"] == 300
    calls: list[int] = []
    real = gguf_info._Cursor._skip_exact
    monkeypatch.setattr(gguf_info._Cursor, "_skip_exact",
                        lambda self, pos, count: calls.append(count) or real(self, pos, count))
    read_gguf_info(awkward_file, check_architecture=False)
    assert sum(calls) >= 300  # none of test.long_strings can be proven in bulk


def test_truncated_anywhere_fails_the_same_way(awkward_file, tmp_path, monkeypatch):
    data = awkward_file.read_bytes()
    start = data.index(b"tokenizer.ggml.tokens")
    rng = random.Random(1)
    cuts = sorted({start + 30, start + 37, len(data) - 1, len(data) // 2,
                   *(rng.randint(start, len(data) - 1) for _ in range(40))})
    cut_file = tmp_path / "cut.gguf"
    for cut in cuts:
        cut_file.write_bytes(data[:cut])
        fast, slow = _read(cut_file, True, monkeypatch), _read(cut_file, False, monkeypatch)
        assert fast == slow, cut
        assert isinstance(fast, str) and "truncated" in fast, (cut, fast)


def test_a_corrupt_length_fails_the_same_way(tmp_path, monkeypatch):
    tokens, merges = _vocab(4000, awkward=False)
    data = _write(tmp_path / "ok.gguf", tokens, merges).read_bytes()
    header = data.index(b"tok1234") - 8
    assert data[header : header + 8] == (7).to_bytes(8, "little")
    broken = tmp_path / "broken.gguf"
    for byte, value in ((7, 1), (2, 1), (1, 3), (0, 0), (0, 200)):  # huge, +65536, +768, empty, longer
        bad = bytearray(data)
        bad[header + byte] = value
        broken.write_bytes(bytes(bad))
        fast, slow = _read(broken, True, monkeypatch), _read(broken, False, monkeypatch)
        assert fast == slow, (byte, value)
    bad = bytearray(data)
    bad[header + 7] = 1
    broken.write_bytes(bytes(bad))
    with pytest.raises(ModelError, match=r"truncated or corrupt \(GGUF header ends early\)"):
        read_gguf_info(broken)


def test_the_real_models_parse_the_same_both_ways(default_path, monkeypatch):
    fast, slow = _read(default_path, True, monkeypatch), _read(default_path, False, monkeypatch)
    assert isinstance(fast, gguf_info.GGUFInfo) and fast == slow
    assert fast.array_lengths["tokenizer.ggml.merges"] == 48_900


def test_gemma_parses_the_same_both_ways(gemma_path, monkeypatch):
    fast, slow = _read(gemma_path, True, monkeypatch), _read(gemma_path, False, monkeypatch)
    assert isinstance(fast, gguf_info.GGUFInfo) and fast == slow
