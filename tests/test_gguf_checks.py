"""Files are checked before llama.cpp sees them: one clear line, never a crash."""

import pytest

from aigc_chat.errors import ModelError
from aigc_chat.gguf_info import read_gguf_info
from tests.bad_ggufs import truncated, write_gguf
from tests.conftest import run_cli


def _write(path, data):
    path.write_bytes(data)
    return path


def test_valid_file_metadata(tmp_path):
    info = read_gguf_info(write_gguf(tmp_path / "ok.gguf"))
    assert info.architecture == "llama"
    assert info.context_length == 128
    assert info.tensor_count == 3


def test_real_default_model_metadata(default_path):
    info = read_gguf_info(default_path)  # SmolLM2-135M-Instruct: llama architecture, ChatML
    assert info.architecture == "llama"
    assert info.context_length == 8192
    assert "<|im_start|>" in info.chat_template
    assert info.array_lengths["tokenizer.ggml.tokens"] == 49152
    assert not [k for k in info.metadata if k.startswith("general.sampling.")]


def test_real_gemma_metadata(gemma_path):
    info = read_gguf_info(gemma_path)
    assert info.architecture == "gemma3"
    assert info.block_count == 18
    assert info.get("attention.sliding_window") == 512
    assert info.array_lengths["tokenizer.ggml.tokens"] == 262144


@pytest.mark.parametrize(
    "make,message",
    [
        (lambda p: p / "missing.gguf", "model file not found"),
        (lambda p: p, "is a directory"),
        (lambda p: _write(p / "x.gguf", b""), "not a GGUF file (empty)"),
        (lambda p: _write(p / "x.gguf", b"hello world"), "not a GGUF file"),
        (lambda p: truncated(write_gguf(p / "t.gguf"), 0.6), "is truncated"),
        (lambda p: truncated(write_gguf(p / "t.gguf"), 0.01), "truncated or corrupt"),
        (lambda p: write_gguf(p / "u.gguf", arch="notanarch"), "unsupported model architecture 'notanarch'"),
    ],
)
def test_bad_files_give_one_clear_error(tmp_path, make, message):
    with pytest.raises(ModelError, match=message.replace("(", r"\(").replace(")", r"\)")):
        read_gguf_info(make(tmp_path))


def test_corrupt_header_counts(tmp_path):
    path = write_gguf(tmp_path / "c.gguf")
    data = bytearray(path.read_bytes())
    data[8:16] = (2**40).to_bytes(8, "little")  # tensor count
    path.write_bytes(bytes(data))
    with pytest.raises(ModelError, match="corrupt"):
        read_gguf_info(path)


@pytest.mark.parametrize("kind", ["missing", "text", "truncated", "arch"])
def test_cli_reports_bad_model_in_one_line(tmp_path, cli, kind):
    path = {
        "missing": lambda: tmp_path / "nope.gguf",
        "text": lambda: _write(tmp_path / "t.gguf", b"not a model"),
        "truncated": lambda: truncated(write_gguf(tmp_path / "tr.gguf")),
        "arch": lambda: write_gguf(tmp_path / "a.gguf", arch="notanarch"),
    }[kind]()
    r = run_cli(cli, "--model", str(path), "--prompt", "hi")
    assert r.returncode == 1
    assert r.stdout == ""
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aigc-chat: error:"), r.stderr
    assert "Traceback" not in r.stderr
