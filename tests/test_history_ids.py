"""Conversation and message ids never come back after a delete (schema 5: AUTOINCREMENT), so a
script that remembered "conversation 18" can never read another one. Files of schema 3 (the
fixture the release before trees wrote) and 4 are migrated in place: every row and column,
the trees, the attachments, the full-text indexes and the triggers come through."""

from __future__ import annotations

import shutil
import sqlite3
from pathlib import Path

from aigc_chat.history_schema import MIGRATIONS, SCHEMA_VERSION
from aigc_chat.history_store import HistoryStore

FIXTURE = Path(__file__).parent / "fixtures" / "history-v3.sqlite3"


def _rows(path: Path) -> dict[str, list[tuple]]:
    conn = sqlite3.connect(path)
    try:
        out = {}
        for table in ("conversations", "messages", "attachments", "blobs"):
            cols = [r[1] for r in conn.execute(f"PRAGMA table_info({table})")]
            out[table] = [tuple(zip(cols, row, strict=True))
                          for row in conn.execute(f"SELECT * FROM {table} ORDER BY rowid")]
        return out
    finally:
        conn.close()


def _schema(path: Path) -> dict[tuple[str, str], str]:
    conn = sqlite3.connect(path)
    try:
        return {(t, n): s for t, n, s in conn.execute("SELECT type, name, sql FROM sqlite_master")
                if not n.startswith("sqlite_autoindex")}
    finally:
        conn.close()


def _check_whole(path: Path, before: dict[str, list[tuple]]) -> None:
    """Opened: schema 5, the same objects as a new file, every row as it was, indexes valid."""
    with HistoryStore(path), HistoryStore(tmp_fresh := path.with_name("fresh.sqlite3")):
        pass
    assert _schema(path) == _schema(tmp_fresh)
    after = _rows(path)
    for table, rows in before.items():
        assert [dict(r) for r in after[table]] == [dict(r) for r in rows], table
    with HistoryStore(path) as store:
        conn = store.connection
        assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
        assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert conn.execute("PRAGMA foreign_key_check").fetchall() == []
        assert conn.execute("PRAGMA foreign_keys").fetchone()[0] == 1
        for fts in ("messages_fts", "titles_fts", "blobs_fts"):
            conn.execute(f"INSERT INTO {fts}({fts}) VALUES ('integrity-check')")
        assert {h.conversation_id for h in store.search("Paris")} == {1}
        assert [h.message_id for h in store.search("line two")] == [3]  # inside the attached file
        assert [h.conversation_id for h in store.search("GAN night")] == [2]


def _v4_file(path: Path) -> None:
    """The fixture taken to schema 4 exactly as a schema-4 build did, with a branch added."""
    shutil.copyfile(FIXTURE, path)
    conn = sqlite3.connect(path, isolation_level=None)
    MIGRATIONS[3](conn)
    conn.execute("PRAGMA user_version = 4")
    # a regenerated reply beside message 2, shown: a tree, not a chain
    conn.execute("INSERT INTO messages (conversation_id, role, content, created_at, parent_id)"
                 " VALUES (1, 'assistant', 'Paris, of course.', 5.0, 1)")
    conn.execute("UPDATE conversations SET current_leaf = last_insert_rowid() WHERE id = 1")
    conn.close()


def test_schema_3_fixture_is_migrated_whole(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    shutil.copyfile(FIXTURE, path)
    before = _rows(path)
    with HistoryStore(path):
        pass
    # schema 4 added parent_id and current_leaf: the old columns are all there unchanged
    after = _rows(path)
    for table, rows in before.items():
        assert [dict(r) for r in rows] == [
            {k: v for k, v in dict(r).items() if k not in ("parent_id", "current_leaf")} for r in after[table]]
    _check_whole(path, after)


def test_schema_4_file_is_migrated_whole(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    _v4_file(path)
    before = _rows(path)
    assert any(dict(r)["parent_id"] == 1 and dict(r)["id"] == 11 for r in before["messages"])
    _check_whole(path, before)
    with HistoryStore(path) as store:
        conv = store.get_conversation(1)
        assert conv.messages[-1].content == "Paris, of course." and conv.leaf_id == 11


def test_ids_never_come_back_after_a_delete(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    _v4_file(path)  # a migrated file, and a new one below
    for p in (path, tmp_path / "new.sqlite3"):
        with HistoryStore(p) as store:
            a = store.create_conversation("remember me")
            m = store.add_message(a, "user", "my id is remembered")
            store.delete_conversation(a)
            b = store.create_conversation("someone else")
            n = store.add_message(b, "user", "another message")
            assert b > a and n > m
        with HistoryStore(p) as store:  # and not after reopening either
            store.delete_conversation(b)
            c = store.create_conversation("third")
            assert c > b and store.add_message(c, "user", "x") > n
            # deleting a conversation still takes its messages and files with it
            store.add_message(c, "user", "with a file", attachments=[("f.txt", "unique text")])
            store.delete_conversation(c)
            conn = store.connection
            assert conn.execute("SELECT count(*) FROM messages WHERE conversation_id = ?", (c,)).fetchone()[0] == 0
            assert conn.execute("SELECT count(*) FROM blobs WHERE content = 'unique text'").fetchone()[0] == 0
