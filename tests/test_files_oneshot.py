"""Files in a one-shot question (`-f`), on real llama.cpp and the real store: what is sent,
what is stored (once), what is found, and every file that must be refused (one line, exit 2,
nothing stored)."""

from __future__ import annotations

import json
import os
import sqlite3
from pathlib import Path

import pytest

from aigc_chat.history_store import HistoryStore, default_path
from tests.conftest import run_cli
from tests.tiny_gguf import write_chain_gguf

FAST = ("--temperature", "0", "--max-tokens", "4")


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_chain_gguf(tmp_path_factory.mktemp("chain") / "chain.gguf", list("Sure."))


def files(tmp_path: Path) -> tuple[Path, Path]:
    a = tmp_path / "app.py"
    a.write_text("def pelican():\n    return 'pouch'\n")
    b = tmp_path / "notes.txt"
    b.write_text("The heron waits motionless.\n")
    return a, b


def stored() -> list:
    with HistoryStore(readonly=True) as s:
        return [s.get_conversation(c.id) for c in s.list_conversations()]


@pytest.mark.slow
def test_two_files_and_stdin_reach_the_real_model_and_the_store(cli: str, default_path: Path, tmp_path: Path) -> None:
    a, b = files(tmp_path)
    plain = run_cli(cli, "--prompt", "What do they say?", *FAST, "--json", "--no-history", input="Context first.")
    with_files = run_cli(cli, "-f", str(a), "--file", str(b), "--prompt", "What do they say?", *FAST, "--json",
                         input="Context first.")
    assert plain.returncode == 0 and with_files.returncode == 0, with_files.stderr
    grown = json.loads(with_files.stdout)["usage"]["prompt_tokens"] - json.loads(plain.stdout)["usage"]["prompt_tokens"]
    assert grown > 20  # both files were in the prompt
    (conv,) = stored()
    user = conv.messages[0]
    assert user.content == "Context first.\n\nWhat do they say?"  # what was typed, files apart
    assert [(f.name, f.content) for f in user.attachments] == [(str(a), a.read_text()), (str(b), b.read_text())]


def test_stdin_as_a_named_file_and_an_empty_question(cli: str, chain: Path) -> None:
    r = run_cli(cli, "--model", str(chain), "-f", "-", "--prompt", "", *FAST, input="line one\nline two\n")
    assert r.returncode == 0, r.stderr
    (conv,) = stored()
    assert [(f.name, f.content) for f in conv.messages[0].attachments] == [("stdin", "line one\nline two\n")]
    assert conv.summary.title == "stdin"
    r = run_cli(cli, "--model", str(chain), "-f", "-", "--prompt", "-", input="x")
    assert r.returncode == 2 and "not both" in r.stderr


def test_a_file_is_stored_once_and_found_by_search(cli: str, chain: Path, tmp_path: Path) -> None:
    a, _ = files(tmp_path)
    for flags in ((), ("--continue",), ()):
        r = run_cli(cli, "--model", str(chain), *flags, "-f", str(a), "--prompt", "look", *FAST)
        assert r.returncode == 0, r.stderr
    db = sqlite3.connect(default_path())
    assert db.execute("SELECT count(*) FROM blobs").fetchone()[0] == 1  # three messages, one copy
    assert db.execute("SELECT count(*) FROM attachments").fetchone()[0] == 3
    db.close()
    hits = run_cli(cli, "history", "search", "pouch", "--json")
    assert hits.returncode == 0
    found = [json.loads(line) for line in hits.stdout.splitlines()]
    assert len({h["conversation_id"] for h in found}) == 2 and "«pouch»" in found[0]["snippet"]
    show = run_cli(cli, "history", "show", str(found[0]["conversation_id"]))
    assert f"[file] {a}" in show.stdout
    exported = run_cli(cli, "history", "export", str(found[0]["conversation_id"]), "--format", "json")
    assert json.loads(exported.stdout)["messages"][0]["attachments"][0]["content"] == a.read_text()
    # deleting every message that attached it deletes the file's text too
    for cid in {h["conversation_id"] for h in found}:
        assert run_cli(cli, "history", "delete", str(cid)).returncode == 0
    db = sqlite3.connect(default_path())
    assert db.execute("SELECT count(*) FROM blobs").fetchone()[0] == 0
    db.close()


def _refused(cli: str, chain: Path, path: str, why: str) -> None:
    r = run_cli(cli, "--model", str(chain), "-f", path, "--prompt", "hi", *FAST, timeout=60)
    assert r.returncode == 2, (path, r.returncode, r.stderr)
    assert r.stderr.count("\n") == 1 and why in r.stderr and "Traceback" not in r.stderr, r.stderr
    assert not default_path().exists() or stored() == []  # no half-written conversation


def test_every_file_that_must_be_refused(cli: str, chain: Path, tmp_path: Path) -> None:
    binary = tmp_path / "a.bin"
    binary.write_bytes(b"ab\x00cd")
    latin = tmp_path / "latin1.txt"
    latin.write_bytes("caf\xe9".encode("latin-1"))
    big = tmp_path / "huge.txt"
    with big.open("wb") as fh:  # sparse: over the cap without writing it
        fh.truncate((4 << 20) + 1)
    fifo = tmp_path / "pipe"
    os.mkfifo(fifo)
    long = tmp_path / "long.txt"
    long.write_text("pelican " * 400)  # ~400+ tokens: the chain model's context is 256
    for path, why in ((binary, "a.bin is a binary file"), (latin, "latin1.txt is not UTF-8 text"),
                      (big, "over the 4.0 MiB limit"), (fifo, "not a regular file"),
                      (tmp_path / "missing.txt", "not found"), (tmp_path, "is a directory"),
                      (long, "tokens, more than the")):
        _refused(cli, chain, str(path), why)
    if os.geteuid() != 0:  # root reads anything
        locked = tmp_path / "locked.txt"
        locked.write_text("x")
        locked.chmod(0)
        _refused(cli, chain, str(locked), "permission denied")


def test_a_bom_is_dropped_and_the_text_kept(cli: str, chain: Path, tmp_path: Path) -> None:
    f = tmp_path / "bom.txt"
    f.write_bytes(b"\xef\xbb\xbfhello\n")
    assert run_cli(cli, "--model", str(chain), "-f", str(f), "--prompt", "hi", *FAST).returncode == 0
    assert stored()[0].messages[0].attachments[0].content == "hello\n"


def test_files_need_the_one_shot_mode(cli: str, tmp_path: Path) -> None:
    a, _ = files(tmp_path)
    r = run_cli(cli, "-f", str(a))
    assert r.returncode == 2 and "/file PATH" in r.stderr
