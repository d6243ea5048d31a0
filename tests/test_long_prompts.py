"""A prompt far past the context is refused after counting about the context's worth of it,
not tokenised whole in one native call (issue 22, item 7); tokenize buffers are sized from the
text (item 3). Real llama.cpp on a tiny GGUF; what is measured is the work done (bytes handed
to llama_tokenize), not time."""

from __future__ import annotations

import base64
import random
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aigc_chat.backends.llama_tokens import CHUNK, TooLong, tokenize, tokenize_segments
from aigc_chat.chat_types import Message
from aigc_chat.errors import UsageError
from aigc_chat.params import GenerationParams
from aigc_chat.templates import Segment
from tests.conftest import run_cli
from tests.tiny_gguf import CHATML, write_chain_gguf

BIG = base64.b64encode(random.Random(7).randbytes(2_250_000)).decode()  # 3 MB, as in the report
FAST = ("--no-history", "--temperature", "0", "--max-tokens", "3")


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_chain_gguf(tmp_path_factory.mktemp("long") / "chain.gguf", list("ok"), template=CHATML,
                            context_length=4096)


@pytest.fixture(scope="module")
def backend(chain: Path) -> Iterator[Any]:
    from aigc_chat.backends.llama_cpp_backend import LlamaCppBackend

    b = LlamaCppBackend(str(chain), {"n_ctx": 1024})
    b.load()
    yield b
    b.close()


@pytest.fixture
def tokenised(monkeypatch: pytest.MonkeyPatch) -> list[int]:
    """Bytes handed to llama.cpp's tokenizer, call by call, whichever binding calls it."""
    import llama_cpp

    seen: list[int] = []
    orig = llama_cpp.llama_cpp.llama_tokenize

    def counting(vocab: Any, text: bytes, n: int, *args: Any) -> int:
        seen.append(n)
        return int(orig(vocab, text, n, *args))

    monkeypatch.setattr(llama_cpp.llama_cpp, "llama_tokenize", counting)
    monkeypatch.setattr(llama_cpp, "llama_tokenize", counting)
    return seen


def test_a_huge_prompt_is_refused_after_counting_a_little_of_it(backend: Any, tokenised: list[int]) -> None:
    result = backend.stream_chat([Message("user", BIG)], GenerationParams(max_tokens=3)).consume()
    assert result.finish_reason == "error"
    assert result.error.startswith("the conversation (more than ") and "does not fit the context (1024" in result.error
    assert sum(tokenised) < 4 * CHUNK  # of 3 MB; it was tokenised whole, then refused


def test_counting_a_huge_file_stops_past_the_context(backend: Any, tokenised: list[int]) -> None:
    """The count `-f` and the TUI's /file make (Conversation.count_file): past the context it
    is an estimate from the part counted, large enough to refuse the file."""
    from aigc_chat.attachments import Attachment
    from aigc_chat.config import Config
    from aigc_chat.conversation import Conversation

    conv = Conversation(Config(path=Path("/nonexistent/config.toml")), None)
    conv.attach_backend(backend, external=True)
    with pytest.raises(UsageError, match=r"big\.txt is [\d,]+ tokens, more than the [\d,]+ left"):
        conv.count_file(Attachment("big.txt", BIG))
    assert sum(tokenised) < 4 * CHUNK
    estimate = backend.count_tokens([Message("user", BIG)])
    assert 1_000_000 < estimate < 4_000_000  # 3 MB of base64: about a token per 1-3 bytes


def test_a_long_prompt_that_fits_gets_the_same_tokens_as_before(backend: Any, chain: Path) -> None:
    import llama_cpp

    llm = backend._llm
    words = " ".join(random.Random(1).choice(["hello", "world", "the", "a", "in", "lol", "é", "日本"])
                     for _ in range(20_000))
    data = words.encode()
    assert len(data) > 2 * CHUNK
    whole = llm.tokenize(data, add_bos=True, special=True)  # llama-cpp-python's own call
    assert tokenize(llama_cpp, llm._model.vocab, data, True, True) == whole
    segs = [Segment(words, True)]
    assert tokenize_segments(llama_cpp, llm._model.vocab, segs, limit=len(whole) + 1) == whole
    with pytest.raises(TooLong) as err:
        tokenize_segments(llama_cpp, llm._model.vocab, segs, limit=len(whole) // 3)
    assert err.value.counted > len(whole) // 3 and err.value.estimate >= err.value.counted


def test_one_shot_refuses_megabytes_on_stdin_and_in_a_file(cli: str, chain: Path, tmp_path: Path) -> None:
    r = run_cli(cli, "--model", str(chain), "-p", "-", *FAST, input=BIG, timeout=120)
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "does not fit the context" in r.stderr, r.stderr
    f = tmp_path / "big.txt"
    f.write_text(BIG)
    r = run_cli(cli, "--model", str(chain), "-f", str(f), "-p", "what is it?", *FAST, timeout=120)
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "big.txt is" in r.stderr, r.stderr
