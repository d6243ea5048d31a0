"""Files the user or a download put where we look are read safely: never a FIFO (which blocks an
`open()` until a writer comes, forever), never a link to /dev/zero (read until memory runs out),
and never more than a bound.

Real FIFOs and real links to /dev/zero, in the places discovery reads (Ollama manifests,
`models-index.json`), our cache (the default model's stamp) and a torch checkpoint folder;
the CLI runs as users run it, under a memory cap and a timeout, so the old behaviour (a hang,
or gigabytes) fails the test instead of taking the machine with it.
"""

from __future__ import annotations

import json
import os
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from aigc_chat import discovery
from aigc_chat.errors import AigcError, ModelError
from tests.capped import release, run_capped, within
from tests.tiny_gguf import CHATML, write_tiny_gguf

DIGEST = "d" * 64


@pytest.fixture
def fifos() -> Iterator[list[Path]]:
    made: list[Path] = []
    yield made
    for f in made:
        release(f)


@pytest.fixture
def ollama(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, fifos: list[Path]) -> Path:
    """An Ollama store with one good model, a manifest that is a FIFO and one that is a link
    to /dev/zero; nothing else anywhere, and a cache dir of the test's own."""
    for var in ("HF_HUB_CACHE", "LLAMA_CACHE"):
        monkeypatch.setenv(var, str(tmp_path / "nothing" / var))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "nothing" / "hf"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    monkeypatch.setenv("AIGC_CHAT_CACHE_DIR", str(tmp_path / "cache"))
    root = tmp_path / "ollama"
    monkeypatch.setenv("OLLAMA_MODELS", str(root))
    (root / "blobs").mkdir(parents=True)
    write_tiny_gguf(root / "blobs" / f"sha256-{DIGEST}", "llama", seed=5, extra={"tokenizer.chat_template": CHATML})
    lib = root / "manifests" / "registry.ollama.ai" / "library"
    (lib / "goodmodel").mkdir(parents=True)
    (lib / "goodmodel" / "latest").write_text(json.dumps({"layers": [
        {"mediaType": "application/vnd.ollama.image.model", "digest": f"sha256:{DIGEST}"}]}))
    (lib / "pipe").mkdir()
    os.mkfifo(lib / "pipe" / "latest")
    fifos.append(lib / "pipe" / "latest")
    (lib / "zero").mkdir()
    (lib / "zero" / "latest").symlink_to("/dev/zero")
    return root


def test_discovery_passes_a_fifo_and_a_dev_zero_manifest(ollama: Path) -> None:
    entries = within(20, lambda: discovery.scan(None))
    by_name = {e.name: e for e in entries if e.source == "ollama"}
    assert by_name["goodmodel:latest"].kind == "chat"
    assert by_name["pipe:latest"].kind == "unreadable" and "FIFO" in by_name["pipe:latest"].error
    assert by_name["zero:latest"].kind == "unreadable" and "character device" in by_name["zero:latest"].error
    # `--model NAME` resolves past them too
    assert within(20, lambda: discovery.resolve("goodmodel", None)) == ollama / "blobs" / f"sha256-{DIGEST}"


def test_models_command_lists_past_them(cli: str, ollama: Path) -> None:
    done = run_capped(cli, "models", "--all")
    assert done.returncode == 0, done.stderr
    lines = done.stdout.splitlines()
    assert any(line.startswith("goodmodel:latest ") for line in lines), done.stdout
    pipe = next(line for line in lines if line.startswith("pipe:latest "))
    assert "unreadable" in pipe and "FIFO" in pipe
    assert "Traceback" not in done.stderr


@pytest.mark.parametrize("kind", ["fifo", "dev-zero", "huge"])
def test_an_index_that_is_not_a_file_is_passed_by(cli: str, ollama: Path, tmp_path: Path, fifos: list[Path],
                                                  kind: str) -> None:
    """models-index.json in our cache dir: a FIFO, a link to /dev/zero, or over the bound; the
    listing reads the headers again and writes a new index in its place."""
    index = tmp_path / "cache" / "models-index.json"
    index.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(index)
        fifos.append(index)
    elif kind == "dev-zero":
        index.symlink_to("/dev/zero")
    else:
        with open(index, "wb") as fh:
            fh.truncate(discovery._MAX_INDEX + 1)  # sparse: costs no disk
    done = run_capped(cli, "models")
    assert done.returncode == 0, done.stderr
    assert "goodmodel:latest" in done.stdout
    assert index.is_file() and not index.is_symlink()
    assert json.loads(index.read_text())["version"] == discovery.INDEX_VERSION  # replaced by a good one
    # and `--model NAME` (config show resolves it, without loading a model)
    if kind == "fifo":
        index.unlink()
        os.mkfifo(index)
    done = run_capped(cli, "config", "show", "--model", "goodmodel")
    assert done.returncode == 0, done.stderr


def test_a_hostile_index_entry_cannot_redirect_a_model(ollama: Path, tmp_path: Path) -> None:
    """An index entry's facts may only set facts: not the path, the name or the source."""
    within(20, lambda: discovery.scan(None))
    index = tmp_path / "cache" / "models-index.json"
    data = json.loads(index.read_text())
    for entry in data["files"].values():
        entry["facts"].update({"path": "/etc/passwd", "name": "evil", "kind": 7, "architecture": ["x"]})
    index.write_text(json.dumps(data))
    good = next(e for e in within(20, lambda: discovery.scan(None)) if e.source == "ollama" and e.kind != "unreadable")
    assert good.name == "goodmodel:latest" and good.path.endswith(DIGEST)
    assert good.kind in discovery.KINDS and isinstance(good.architecture, str)  # wrong types are left out


def test_the_default_models_stamp_is_never_waited_on(tmp_path: Path, monkeypatch: pytest.MonkeyPatch,
                                                     fifos: list[Path]) -> None:
    from aigc_chat import default_model

    monkeypatch.setenv("AIGC_CHAT_CACHE_DIR", str(tmp_path / "cache"))
    target = default_model.model_dir() / "some-model.gguf"
    target.parent.mkdir(parents=True)
    target.write_bytes(b"GGUF")
    stamp = default_model._stamp_path(target)
    os.mkfifo(stamp)
    fifos.append(stamp)
    assert within(10, lambda: default_model._stamp_ok(target, "0" * 64)) is False
    within(10, lambda: default_model._write_stamp(target, "0" * 64))  # replaces it, not blocked writing to it
    assert within(10, lambda: default_model._stamp_ok(target, "0" * 64)) is True
    stamp.unlink()
    stamp.symlink_to("/dev/zero")
    assert within(10, lambda: default_model._stamp_ok(target, "0" * 64)) is False


def test_torch_checkpoint_folder_files_are_checked(hf_dir: tuple[Path, Any], tmp_path: Path,
                                                   fifos: list[Path]) -> None:
    """A GPT-2 folder whose config.json, tokenizer.json or weights are a FIFO or /dev/zero:
    one line naming the file, at once."""
    import shutil

    from aigc_chat.backends.torch_gpt.hf_gpt2_loader import load_hf_gpt2

    src, _ = hf_dir
    for name in ("config.json", "tokenizer.json", "model.safetensors"):
        for hostile in ("fifo", "dev-zero"):
            folder = tmp_path / f"{name}-{hostile}"
            shutil.copytree(src, folder)
            (folder / name).unlink()
            if hostile == "fifo":
                os.mkfifo(folder / name)
                fifos.append(folder / name)
            else:
                (folder / name).symlink_to("/dev/zero")
            with pytest.raises(ModelError) as err:
                within(20, lambda folder=folder: load_hf_gpt2(folder))
            said = str(err.value)
            assert name in said and ("FIFO" in said or "character device" in said), said


def test_safe_reads_refuse_before_reading(tmp_path: Path, fifos: list[Path]) -> None:
    """The primitive every read above uses: regular files only, bounded."""
    from aigc_chat.safe_open import read_regular

    pipe = tmp_path / "pipe"
    os.mkfifo(pipe)
    fifos.append(pipe)
    for path in (pipe, Path("/dev/zero")):
        with pytest.raises(AigcError):
            within(5, lambda path=path: read_regular(path, 1 << 20))


@pytest.mark.parametrize("kind", ["fifo", "dev-zero"])
def test_a_history_file_that_is_not_a_file_is_refused_at_once(cli: str, isolated_dirs: dict[str, Path],
                                                              fifos: list[Path], kind: str) -> None:
    """SQLite would wait for ever on a FIFO where the history goes (`history list` and every
    one-shot run hung); a device gave "disk I/O error"."""
    from aigc_chat.history_store import default_path

    path = default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    if kind == "fifo":
        os.mkfifo(path)
        fifos.append(path)
    else:
        path.symlink_to("/dev/zero")
    for args in (("history", "list"), ("history", "show", "1")):
        done = run_capped(cli, *args, timeout=30)
        assert done.returncode == 1, done.stderr
        lines = done.stderr.strip().splitlines()
        assert len(lines) == 1 and ("FIFO" in lines[0] or "character device" in lines[0]), done.stderr
