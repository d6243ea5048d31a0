"""A history that cannot be written is still readable: the store opens it read-only (mode=ro,
or immutable=1 when WAL's -shm cannot be created), and `aigc-chat history list/show/search/
export` work on a read-only file and on a read-only directory; rename and delete say why not
in one line. Real files, really read-only (tests/history_faults.read_only)."""

from __future__ import annotations

import json
import os
import sqlite3

import pytest

from aigc_chat.history import HistoryError
from aigc_chat.history_store import HistoryStore, default_path
from tests.conftest import run_cli
from tests.history_faults import read_only


@pytest.fixture
def saved(isolated_dirs):
    with HistoryStore() as s:
        cid = s.create_conversation(model="m.gguf", backend="llama")
        s.add_message(cid, "user", "How do pelicans fish?")
        s.add_message(cid, "assistant", "They scoop fish with their pouch.", finish_reason="stop")
    path = default_path()
    assert sorted(os.listdir(path.parent)) == [path.name]  # closed cleanly: no -wal, no -shm
    return cid


@pytest.mark.parametrize("what", ["file", "directory"])
def test_the_store_reads_a_read_only_history_and_refuses_to_write(saved, what):
    path = default_path()
    before = path.read_bytes()
    with read_only(path if what == "file" else path.parent):
        with pytest.raises(HistoryError) as err:
            HistoryStore()
        assert str(path) in str(err.value)
        with HistoryStore.open_for_reading() as s:
            assert s.readonly
            if what == "directory":
                assert s.immutable  # the -shm cannot be created: immutable=1
            assert [c.title for c in s.list_conversations()] == ["How do pelicans fish?"]
            assert s.get_conversation(saved).messages[1].content == "They scoop fish with their pouch."
            assert [h.conversation_id for h in s.search("pouch")] == [saved]
            with pytest.raises(HistoryError, match="read-only"):
                s.add_message(saved, "user", "more")
    assert path.read_bytes() == before


@pytest.mark.parametrize("what", ["file", "directory"])
def test_history_commands_read_a_read_only_history(cli, saved, what, tmp_path):
    path = default_path()
    with read_only(path if what == "file" else path.parent):
        r = run_cli(cli, "history", "list")
        assert (r.returncode, r.stderr) == (0, ""), r.stderr
        assert r.stdout.split("\t")[0] == str(saved) and "How do pelicans fish?" in r.stdout
        r = run_cli(cli, "history", "show", str(saved))
        assert r.returncode == 0 and "scoop fish" in r.stdout, r.stderr
        r = run_cli(cli, "history", "search", "pouch")
        assert r.returncode == 0 and r.stdout.startswith(f"{saved}\t"), r.stderr
        r = run_cli(cli, "history", "export", str(saved), "--format", "json")
        assert r.returncode == 0 and json.loads(r.stdout)["messages"][0]["content"] == "How do pelicans fish?"
        out = tmp_path / "out.md"
        r = run_cli(cli, "history", "export", str(saved), "-o", str(out))
        assert r.returncode == 0 and "scoop fish" in out.read_text()
        for args in (("rename", str(saved), "New", "title"), ("delete", str(saved))):
            r = run_cli(cli, "history", *args)
            assert r.returncode == 1 and r.stdout == "" and r.stderr.count("\n") == 1, (args, r.stderr)
            assert f"cannot {args[0]} conversation {saved}" in r.stderr and "cannot be written" in r.stderr
            assert str(path) in r.stderr and "Traceback" not in r.stderr
    with HistoryStore() as s:  # nothing was changed
        assert [c.title for c in s.list_conversations()] == ["How do pelicans fish?"]


def test_read_only_open_of_a_corrupt_or_old_file_is_one_clear_error(isolated_dirs):
    path = default_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"not a database at all\n" * 300)
    with pytest.raises(HistoryError, match="not a history database"):
        HistoryStore(readonly=True)
    with pytest.raises(HistoryError, match="not a history database"):
        HistoryStore.open_for_reading()
    path.unlink()
    conn = sqlite3.connect(path)
    conn.execute("CREATE TABLE conversations (id INTEGER PRIMARY KEY)")
    conn.execute("PRAGMA user_version = 1")
    conn.close()
    with pytest.raises(HistoryError, match="read-only and needs an upgrade"):
        HistoryStore(readonly=True)
    with pytest.raises(HistoryError, match="does not exist"):
        HistoryStore(path.with_name("missing.sqlite3"), readonly=True)
