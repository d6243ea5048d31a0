"""`aigc-chat history ...` as scripts use it: the installed command on a real history file."""

from __future__ import annotations

import json
import os
import shutil
import stat
import subprocess

import pytest

from aigc_chat.history_store import HistoryStore, default_path
from tests.conftest import run_cli

EVIL = "before \x1b]0;pwned\x07\x1b[2J\x1b[31mred\x1b[0m after \x9b1m"


@pytest.fixture
def filled(isolated_dirs):
    """Two conversations: an old plain one and a newer one whose text carries escapes."""
    with HistoryStore() as s:
        a = s.create_conversation(model="/models/gemma-3-270m.gguf", backend="llama",
                                  settings={"system_prompt": "Be brief."})
        s.add_message(a, "user", "How do pelicans fish?")
        s.add_message(a, "assistant", "Pelicans scoop fish with their pouch.", finish_reason="stop",
                      stats={"completion_tokens": 8, "decode_tokens_per_s": 42.5})
        b = s.create_conversation(model="other.gguf", backend="llama")
        s.add_message(b, "user", f"title {EVIL}\nsecond line")
        s.add_message(b, "assistant", f"reply {EVIL} [bold]not markup[/bold] AND more")
    return a, b


def _clean(text: str) -> None:
    assert "\x1b" not in text and "\x07" not in text and "\x9b" not in text


def test_list_is_newest_first_tab_separated_and_sanitised(cli, filled):
    a, b = filled
    r = run_cli(cli, "history", "list")
    assert r.returncode == 0 and r.stderr == ""
    rows = [line.split("\t") for line in r.stdout.splitlines()]
    assert [int(row[0]) for row in rows] == [b, a]
    assert all(len(row) == 4 for row in rows)
    assert rows[1][2] == "gemma-3-270m" and rows[1][3] == "How do pelicans fish?"
    assert rows[0][1][:2] == "20" and rows[0][3].startswith("title before")
    _clean(r.stdout)
    r = run_cli(cli, "history", "list", "--limit", "1", "--json")
    obj = json.loads(r.stdout)
    assert obj["id"] == b and obj["messages"] == 2 and "\x1b]0;pwned" in obj["title"]


def test_list_without_a_history_prints_nothing_and_creates_nothing(cli, isolated_dirs):
    r = run_cli(cli, "history", "list")
    assert (r.returncode, r.stdout, r.stderr) == (0, "", "")
    assert not default_path().exists()


def test_show_prints_the_conversation_sanitised(cli, filled):
    a, b = filled
    r = run_cli(cli, "history", "show", str(a))
    assert r.returncode == 0
    assert "How do pelicans fish?" in r.stdout and "Pelicans scoop fish" in r.stdout
    assert "Be brief." in r.stdout and "stop, 8 tok, 42.5 tok/s" in r.stdout
    r = run_cli(cli, "history", "show", str(b))
    assert r.returncode == 0 and "[bold]not markup[/bold]" in r.stdout
    _clean(r.stdout)


def test_search_is_literal_with_snippets(cli, filled):
    a, b = filled
    r = run_cli(cli, "history", "search", "pelicans")
    assert r.returncode == 0
    lines = r.stdout.splitlines()
    assert lines and all(line.startswith(f"{a}\t") for line in lines)
    assert any("«Pelicans»" in line or "«pelicans»" in line for line in lines)
    r = run_cli(cli, "history", "search", "[bold]", "AND")
    assert r.returncode == 0 and r.stdout.startswith(f"{b}\t") and "«AND»" in r.stdout
    _clean(r.stdout)
    for query in ('"', "*", "AND", "OR", "NEAR(", "a:b", "'"):
        r = run_cli(cli, "history", "search", query)
        assert r.returncode in (0, 1) and r.stderr == "", (query, r.stderr)
    r = run_cli(cli, "history", "search", "walrus")
    assert (r.returncode, r.stdout) == (1, "")  # like grep: 1 when nothing matched
    r = run_cli(cli, "history", "search", "pelicans", "--json")
    hit = json.loads(r.stdout.splitlines()[0])
    assert hit["conversation_id"] == a and hit["message_id"] > 0


def test_export_markdown_json_and_output_file(cli, filled, tmp_path):
    a, b = filled
    r = run_cli(cli, "history", "export", str(b), "--format", "markdown")
    assert r.returncode == 0 and "## Assistant" in r.stdout and "after" in r.stdout
    _clean(r.stdout)
    r = run_cli(cli, "history", "export", str(b), "--format", "json")
    assert r.returncode == 0 and r.stdout.isascii()
    data = json.loads(r.stdout)
    assert data["messages"][1]["content"] == f"reply {EVIL} [bold]not markup[/bold] AND more"
    out = tmp_path / "conv.md"
    r = run_cli(cli, "history", "export", str(a), "-f", "markdown", "--output", str(out))
    assert (r.returncode, r.stdout) == (0, "")
    assert "Pelicans scoop fish" in out.read_text() and stat.S_IMODE(out.stat().st_mode) == 0o600
    r = run_cli(cli, "history", "export", str(a), "--output", str(tmp_path / "no" / "dir" / "x.md"))
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "cannot write" in r.stderr


def test_rename_and_delete(cli, filled):
    a, b = filled
    assert run_cli(cli, "history", "rename", str(a), "Bird", "questions").returncode == 0
    with HistoryStore() as s:
        assert s.get_conversation(a).summary.title == "Bird questions"
    assert run_cli(cli, "history", "delete", str(b)).returncode == 0
    r = run_cli(cli, "history", "list")
    assert [line.split("\t")[0] for line in r.stdout.splitlines()] == [str(a)]
    r = run_cli(cli, "history", "search", "markup")
    assert r.returncode == 1  # the deleted conversation is gone from the index too


def test_bad_ids_and_missing_conversations_are_one_line(cli, filled):
    for args in (("show", "999"), ("export", "999"), ("delete", "999"), ("rename", "999", "x")):
        r = run_cli(cli, "history", *args)
        assert r.returncode == 2 and r.stderr == "aigc-chat: error: no conversation 999\n", args
    for args in (("show", "abc"), ("show", "-3"), ("export", "1", "--format", "pdf"), ("list", "--limit", "0"), ()):
        r = run_cli(cli, "history", *args)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and "Traceback" not in r.stderr, args


def test_corrupt_or_newer_history_is_one_line_and_exit_1(cli, isolated_dirs):
    path = default_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(os.urandom(8192))
    r = run_cli(cli, "history", "list")
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "not a history database" in r.stderr and str(path) in r.stderr
    path.unlink()
    import sqlite3

    conn = sqlite3.connect(path)
    conn.execute("PRAGMA user_version = 99")
    conn.close()
    r = run_cli(cli, "history", "search", "x")
    assert r.returncode == 1 and r.stderr.count("\n") == 1 and "newer aigc-chat" in r.stderr


def test_permission_denied_is_one_line(cli, filled):
    data = default_path().parent
    if os.geteuid() != 0:
        os.chmod(data, 0o000)
        prefix: list[str] = []
    elif shutil.which("setpriv"):  # root ignores modes: run as nobody instead
        prefix = ["setpriv", "--reuid=65534", "--regid=65534", "--clear-groups"]
    else:
        pytest.skip("running as root without setpriv")
    try:
        r = subprocess.run([*prefix, cli, "history", "list"], capture_output=True, text=True,
                           timeout=120, stdin=subprocess.DEVNULL)
    finally:
        os.chmod(data, 0o700)
    assert r.returncode == 1 and r.stdout == ""
    assert r.stderr.count("\n") == 1 and "Permission denied" in r.stderr and "Traceback" not in r.stderr
