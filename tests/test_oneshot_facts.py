"""What a one-shot run tells is true (issue 27): a piped run is titled by the question, `--json`
says where the answer was stored, `-p -` on a terminal says so, a UTF-16 file is named as such.
Real llama.cpp on a tiny GGUF, the real store, the installed command."""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from aigc_chat.history_store import HistoryStore
from tests.conftest import run_cli
from tests.tiny_gguf import write_chain_gguf

FAST = ("--temperature", "0", "--max-tokens", "4")


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_chain_gguf(tmp_path_factory.mktemp("chain") / "chain.gguf", list("Sure."))


def test_a_piped_run_is_titled_by_the_question(cli: str, chain: Path) -> None:
    r = run_cli(cli, "--model", str(chain), "--prompt", "Summarise these notes", *FAST,
                input="Project Falcon notes\nmore lines\n")
    assert r.returncode == 0, r.stderr
    with HistoryStore(readonly=True) as s:
        (summary,) = s.list_conversations()
    assert summary.title == "Summarise these notes"


def test_json_gives_the_ids_a_script_can_carry_on_from(cli: str, chain: Path) -> None:
    r = run_cli(cli, "--model", str(chain), "--prompt", "hi", *FAST, "--json")
    assert r.returncode == 0, r.stderr
    obj = json.loads(r.stdout)
    with HistoryStore(readonly=True) as s:
        (summary,) = s.list_conversations()
        conv = s.get_conversation(summary.id)
    assert obj["conversation_id"] == summary.id
    assert [obj["question_id"], obj["reply_id"]] == [m.id for m in conv.messages]
    # and it can be carried on with that id
    again = run_cli(cli, "--model", str(chain), "--conversation", str(obj["conversation_id"]),
                    "--prompt", "more", *FAST, "--json")
    assert again.returncode == 0, again.stderr
    assert json.loads(again.stdout)["conversation_id"] == summary.id
    off = json.loads(run_cli(cli, "--model", str(chain), "--no-history", "--prompt", "hi", *FAST, "--json").stdout)
    assert (off["conversation_id"], off["question_id"], off["reply_id"]) == (None, None, None)


@pytest.mark.parametrize("args", [["-p", "-"], ["-f", "-", "-p", "hi"]], ids=["prompt", "file"])
def test_stdin_on_a_terminal_is_said_not_waited_on(cli: str, chain: Path, args: list[str]) -> None:
    main, tty = os.openpty()
    try:
        r = subprocess.run([cli, "--model", str(chain), *args], stdin=tty, capture_output=True,
                           text=True, timeout=60)
    finally:
        os.close(tty)
        os.close(main)
    assert r.returncode == 2 and "stdin is a terminal" in r.stderr and r.stderr.count("\n") == 1, r.stderr


def test_utf16_stdin_is_named_not_sent_as_noise(cli: str, chain: Path) -> None:
    r = run_cli(cli, "--model", str(chain), "-p", "-", *FAST, input="Summarise this.\n".encode("utf-16"))
    err = r.stderr.decode()
    assert r.returncode == 2 and "UTF-16" in err and "iconv" in err and err.count("\n") == 1, err


@pytest.mark.parametrize("encoding", ["utf-16", "utf-16-le", "utf-16-be"])
def test_a_utf16_file_is_refused_as_utf16_with_how_to_convert(cli: str, chain: Path, tmp_path: Path,
                                                               encoding: str) -> None:
    f = tmp_path / "notes.txt"
    f.write_bytes("Notes about the heron.\n".encode(encoding))
    r = run_cli(cli, "--model", str(chain), "-f", str(f), "--prompt", "hi", *FAST)
    assert r.returncode == 2 and r.stderr.count("\n") == 1, r.stderr
    assert "UTF-16" in r.stderr and "iconv -f UTF-16" in r.stderr and "binary" not in r.stderr
