"""The history store on real SQLite files: schema, migrations, search, streaming, faults,
and two processes writing the same file at once."""

from __future__ import annotations

import json
import os
import sqlite3
import stat
import subprocess
import sys

import pytest

from aigc_chat import history_store
from aigc_chat.chat_types import GenerationResult
from aigc_chat.errors import UsageError
from aigc_chat.history import HistoryError
from aigc_chat.history_export import render
from aigc_chat.history_recorder import ReplyRecorder
from aigc_chat.history_schema import SCHEMA_VERSION
from aigc_chat.history_store import HistoryStore, default_path, fts_query
from tests.fake_clock import FakeClock, TimeModule


@pytest.fixture
def store(isolated_dirs):
    s = HistoryStore()
    yield s
    s.close()


def _fts_ok(conn: sqlite3.Connection) -> None:
    """FTS5's own check that each index matches its content table exactly."""
    for table in ("messages_fts", "titles_fts", "blobs_fts"):
        conn.execute(f"INSERT INTO {table}({table}, rank) VALUES ('integrity-check', 1)")
    assert conn.execute("PRAGMA integrity_check").fetchone()[0] == "ok"


def test_file_is_private_wal_and_current_schema(store, isolated_dirs):
    path = default_path()
    assert path.parent == isolated_dirs["data"]
    cid = store.create_conversation()
    store.add_message(cid, "user", "hello")
    assert stat.S_IMODE(path.stat().st_mode) == 0o600
    assert stat.S_IMODE(path.parent.stat().st_mode) == 0o700
    for side in (path.with_name(path.name + "-wal"), path.with_name(path.name + "-shm")):
        assert side.exists() and stat.S_IMODE(side.stat().st_mode) == 0o600
    conn = store.connection
    assert conn.execute("PRAGMA journal_mode").fetchone()[0] == "wal"
    assert conn.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
    assert conn.execute("PRAGMA busy_timeout").fetchone()[0] >= 5000


def test_loose_mode_on_an_existing_file_is_tightened(isolated_dirs):
    path = default_path()
    path.parent.mkdir(parents=True)
    path.touch(mode=0o644)
    os.chmod(path, 0o644)
    HistoryStore().close()
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


# The first released layout, written out by hand as an old build would have left it.
V1_SCHEMA = """
CREATE TABLE conversations (id INTEGER PRIMARY KEY, title TEXT NOT NULL DEFAULT '',
    model TEXT NOT NULL DEFAULT '', backend TEXT NOT NULL DEFAULT '',
    settings TEXT NOT NULL DEFAULT '{}', created_at REAL NOT NULL, updated_at REAL NOT NULL);
CREATE TABLE messages (id INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role TEXT NOT NULL, content TEXT NOT NULL DEFAULT '', created_at REAL NOT NULL,
    finish_reason TEXT, stats TEXT NOT NULL DEFAULT '{}');
CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
CREATE INDEX conversations_by_update ON conversations(updated_at, id);
PRAGMA user_version = 1;
"""


def test_a_version_2_file_from_the_last_release_gets_attachments_in_place(isolated_dirs):
    """The file the release before attachments wrote (schema 2: kinds, meta, search): every
    row is kept and searchable, and files can be attached from then on."""
    from aigc_chat.history_schema import MIGRATIONS

    path = default_path()
    path.parent.mkdir(parents=True)
    old = sqlite3.connect(path)
    for step in (0, 1):
        MIGRATIONS[step](old)
        old.execute(f"PRAGMA user_version = {step + 1}")
    old.execute("INSERT INTO conversations VALUES (3, 'Herons', '', '', '{}', 10.0, 20.0)")
    old.execute("INSERT INTO messages (id, conversation_id, role, content, created_at, kind, meta)"
                " VALUES (1, 3, 'user', 'how do herons hunt', 10.0, 'text', '{}')")
    old.commit()
    old.close()
    with HistoryStore() as s:
        assert s.connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION == 5
        (msg,) = s.get_conversation(3).messages
        assert msg.content == "how do herons hunt" and msg.attachments == ()
        assert [h.message_id for h in s.search("hunt")] == [1]
        mid = s.add_message(3, "user", "see the file", attachments=[("notes.txt", "they stand still")])
        assert [h.message_id for h in s.search("stand still")] == [mid]
        _fts_ok(s.connection)


def test_a_version_1_file_is_migrated_in_place(isolated_dirs):
    path = default_path()
    path.parent.mkdir(parents=True)
    old = sqlite3.connect(path)
    old.executescript(V1_SCHEMA)
    old.execute("INSERT INTO conversations VALUES (7, 'Old talk', 'm.gguf', 'llama', "
                "'{\"system_prompt\": \"be brief\"}', 100.0, 200.0)")
    old.execute("INSERT INTO messages VALUES (1, 7, 'user', 'tell me about pelicans', 100.0, NULL, '{}')")
    old.execute("INSERT INTO messages VALUES (2, 7, 'assistant', 'Pelicans are large birds.', 101.0, "
                "'stop', '{\"completion_tokens\": 6}')")
    old.commit()
    old.close()

    with HistoryStore() as s:
        assert s.connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        conv = s.get_conversation(7)
        assert conv.summary.title == "Old talk" and conv.settings == {"system_prompt": "be brief"}
        assert [(m.role, m.kind, m.meta) for m in conv.messages] == [("user", "text", {}), ("assistant", "text", {})]
        assert conv.messages[1].stats == {"completion_tokens": 6}
        # Rows written before search existed are searchable, titles too.
        assert sorted(h.message_id for h in s.search("pelicans")) == [1, 2]
        assert [h.message_id for h in s.search("old talk")] == [0]
        # And the triggers keep new writes in step.
        mid = s.add_message(7, "user", "and flamingos?")
        assert [h.message_id for h in s.search("flamingos")] == [mid]
        _fts_ok(s.connection)


def test_a_file_from_a_newer_build_is_refused_clearly(isolated_dirs):
    path = default_path()
    path.parent.mkdir(parents=True)
    conn = sqlite3.connect(path)
    conn.execute(f"PRAGMA user_version = {SCHEMA_VERSION + 5}")
    conn.close()
    with pytest.raises(HistoryError, match="newer aigc-chat"):
        HistoryStore()


def test_a_corrupt_file_is_one_clear_error(isolated_dirs):
    path = default_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"this is not sqlite at all\n" * 400)
    with pytest.raises(HistoryError) as err:
        HistoryStore()
    assert "not a history database" in str(err.value) and str(path) in str(err.value)
    assert "\n" not in str(err.value)


def test_disk_full_is_a_history_error_and_the_store_stays_usable(store):
    cid = store.create_conversation()
    store.add_message(cid, "user", "small")
    pages = store.connection.execute("PRAGMA page_count").fetchone()[0]
    store.connection.execute(f"PRAGMA max_page_count = {pages + 2}")  # SQLite's own SQLITE_FULL
    with pytest.raises(HistoryError, match="full"):
        store.add_message(cid, "assistant", "x " * 200_000)
    assert [m.content for m in store.get_conversation(cid).messages] == ["small"]
    store.connection.execute("PRAGMA max_page_count = 1073741823")
    store.add_message(cid, "assistant", "fits now")
    assert len(store.get_conversation(cid).messages) == 2
    _fts_ok(store.connection)


def test_conversations_titles_order_and_counts(store, monkeypatch):
    # the store stamps rows with time.time(): a fake one, stepped, orders them for certain
    clock = FakeClock(1_700_000_000.0)
    monkeypatch.setattr(history_store, "time", TimeModule(clock))
    a = store.create_conversation(model="a.gguf", backend="llama", settings={"k": 1})
    long_first = "\n  First   line of the question that goes on and on and on, longer than sixty chars\nmore"
    store.add_message(a, "user", long_first)
    clock.advance(1.0)
    b = store.create_conversation("Given title")
    store.add_message(b, "user", "ignored for the title")
    clock.advance(1.0)
    store.add_message(a, "assistant", "answer")  # a is now the most recently active
    listed = store.list_conversations()
    assert [c.id for c in listed] == [a, b]
    assert listed[0].message_count == 2 and listed[1].message_count == 1
    assert listed[0].title.startswith("First line of the question") and len(listed[0].title) <= 60
    assert listed[0].title.endswith("…")
    assert listed[1].title == "Given title"
    assert [c.id for c in store.list_conversations(limit=1, offset=1)] == [b]
    assert store.latest_conversation_id() == a
    assert store.get_conversation(a).settings == {"k": 1}
    store.update_settings(a, {"k": 2}, model="c.gguf")
    conv = store.get_conversation(a)
    assert conv.settings == {"k": 2} and conv.summary.model == "c.gguf" and conv.summary.backend == "llama"
    with pytest.raises(UsageError, match="no conversation 999"):
        store.get_conversation(999)
    with pytest.raises(UsageError, match="no conversation 999"):
        store.add_message(999, "user", "x")


def test_gan_messages_keep_kind_and_meta(store):
    cid = store.create_conversation()
    mid = store.add_message(cid, "assistant", "digit 7", kind="gan",
                            meta={"checkpoint": "digits", "seed": 3, "label": 7})
    m = store.get_conversation(cid).messages[0]
    assert (m.id, m.kind, m.meta) == (mid, "gan", {"checkpoint": "digits", "seed": 3, "label": 7})


def test_search_index_follows_updates_and_deletes(store):
    cid = store.create_conversation("Sea")
    mid = store.add_message(cid, "assistant", "the walrus sleeps")
    other = store.add_message(cid, "user", "a walrus question")
    assert {h.message_id for h in store.search("walrus")} == {mid, other}
    store.update_message(mid, "the narwhal swims")
    assert {h.message_id for h in store.search("walrus")} == {other}
    assert [h.message_id for h in store.search("narwhal")] == [mid]
    store.delete_message(mid)
    assert store.search("narwhal") == []
    store.rename(cid, "Arctic animals")
    assert [(h.conversation_id, h.message_id) for h in store.search("arctic")] == [(cid, 0)]
    store.rename(cid, "Polar animals")
    assert store.search("arctic") == []
    _fts_ok(store.connection)
    store.delete_conversation(cid)
    assert store.search("walrus") == [] and store.search("polar") == []
    assert store.connection.execute("SELECT count(*) FROM messages").fetchone()[0] == 0
    _fts_ok(store.connection)
    with pytest.raises(UsageError):
        store.delete_conversation(cid)


@pytest.mark.parametrize("query", ['[bold]', "AND", "OR NOT", "*", '"', 'say "hi', "NEAR(a b)",
                                   "col:umn", "^start", "a+b-c", "(", "''", "-", "\\", "\x00"])
def test_search_takes_user_text_literally(store, query):
    cid = store.create_conversation()
    store.add_message(cid, "user", f"text with {query} inside and [bold] markup")
    for prefix in (False, True):
        hits = store.search(query, prefix=prefix)  # never raises
        assert all(h.conversation_id == cid for h in hits)


def test_search_matches_literal_words_with_snippets(store):
    cid = store.create_conversation("Notes")
    store.add_message(cid, "user", "Please render [bold]this[/bold] AND that, " + "filler " * 40 + "end")
    store.add_message(cid, "assistant", "Nothing to see here")
    hits = store.search("AND")
    assert len(hits) == 1 and "«AND»" in hits[0].snippet and len(hits[0].snippet) < 200
    assert store.search("bold this")[0].snippet.count("«") == 3  # [bold]this[/bold]
    assert store.search("see", mark=("<", ">"))[0].snippet == "Nothing to <see> here"
    assert store.search("not there") == []
    assert store.search("   ") == []
    assert [h.message_id for h in store.search("noth", prefix=True)] != []
    assert store.search("noth") == []
    assert store.search("no", prefix=True) == []  # under 3 characters: whole words only
    assert fts_query('a "b" *') == '"a" """b""" "*"'


def test_reply_recorder_writes_at_most_once_per_interval_then_finalises(store):
    cid = store.create_conversation()
    clock = FakeClock()
    rec = ReplyRecorder(store, cid, interval=0.5, clock=clock)
    mid = rec.start()

    def stored() -> str:
        return store.get_conversation(cid).messages[0].content

    assert stored() == "" and store.get_conversation(cid).messages[0].finish_reason is None
    rec.feed("Hel")
    clock.advance(0.25)
    rec.feed("Hello")
    assert stored() == ""  # within the interval: nothing written yet
    clock.advance(0.3)
    rec.feed("Hello wor")  # past the interval: written
    assert stored() == "Hello wor"
    clock.advance(0.25)
    rec.feed("Hello world")
    assert stored() == "Hello wor"  # the next interval has only just begun
    rec.finish(GenerationResult("Hello world!", "cancelled", prompt_tokens=5, completion_tokens=4,
                                time_to_first_token=0.1, decode_tokens_per_s=20.0, total_time=0.3))
    m = store.get_conversation(cid).messages[0]
    assert (m.id, m.content, m.finish_reason) == (mid, "Hello world!", "cancelled")
    assert m.stats["completion_tokens"] == 4 and m.stats["decode_tokens_per_s"] == 20.0
    assert [h.message_id for h in store.search("world")] == [mid]


def test_reply_recorder_drops_a_failed_empty_reply(store):
    cid = store.create_conversation()
    rec = ReplyRecorder(store, cid)
    rec.start()
    rec.finish(GenerationResult("", "error", error="engine died"))
    assert store.get_conversation(cid).messages == []
    rec2 = ReplyRecorder(store, cid)
    rec2.finish(GenerationResult("partial", "error", error="engine died"))  # never started: created now
    m = store.get_conversation(cid).messages[0]
    assert (m.content, m.finish_reason, m.stats["error"]) == ("partial", "error", "engine died")


def test_export_markdown_is_sanitised_and_json_is_exact(store):
    cid = store.create_conversation(model="m.gguf", backend="llama", settings={"system_prompt": "Be terse."})
    evil = "ok \x1b]52;c;ZXZpbA==\x07 \x1b[2J done \u202e"
    store.add_message(cid, "user", "hi")
    store.add_message(cid, "assistant", evil, finish_reason="length")
    md = render(store.get_conversation(cid), "markdown")
    assert "\x1b" not in md and "\x07" not in md and "ok" in md and "done" in md
    assert "## System" in md and "Be terse." in md and "[length]" in md
    js = render(store.get_conversation(cid), "json")
    assert js.isascii()
    data = json.loads(js)
    assert data["messages"][1]["content"] == evil and data["settings"]["system_prompt"] == "Be terse."
    with pytest.raises(UsageError):
        render(store.get_conversation(cid), "pdf")


WRITER = """
import sys, time
from pathlib import Path
from aigc_chat.history_store import HistoryStore
path, name, n, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
while not go.exists():
    time.sleep(0.005)
s = HistoryStore(path)          # both open (and migrate) a file that does not exist yet
mine = s.create_conversation(f"writer {name}")
shared = int(sys.argv[5]) if len(sys.argv) > 5 else mine
for i in range(n):
    s.add_message(mine, "user", f"{name} message {i} token{name}")
    s.add_message(shared, "assistant", f"{name} shared {i}")
s.rename(mine, f"writer {name} done")
s.close()
print("ok")
"""


def test_two_processes_writing_at_once_lose_nothing(tmp_path):
    path = tmp_path / "data" / "history.sqlite3"
    with HistoryStore(path) as s:
        assert s.create_conversation("shared") == 1
    go = tmp_path / "go"
    n = 150
    procs = [
        subprocess.Popen([sys.executable, "-c", WRITER, str(p), name, str(n), str(go), "1"],
                         stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        for p, name in ((path, "A"), (path, "B"))
    ]
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    with HistoryStore(path) as s:
        convs = {c.title: c for c in s.list_conversations()}
        assert convs["writer A done"].message_count == n and convs["writer B done"].message_count == n
        shared = s.get_conversation(1).messages
        assert len(shared) == 2 * n
        for name in "AB":  # each writer's messages arrive complete and in its own order
            mine = [m.content for m in shared if m.content.startswith(name)]
            assert mine == [f"{name} shared {i}" for i in range(n)]
        assert len(s.search("tokena", limit=1000)) == n and len(s.search("tokenb", limit=1000)) == n
        _fts_ok(s.connection)


def test_two_processes_creating_a_new_file_at_once(tmp_path):
    path = tmp_path / "new" / "history.sqlite3"
    go = tmp_path / "go"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), name, "20", str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in "AB"]
    go.touch()
    outs = [p.communicate(timeout=120) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    with HistoryStore(path) as s:
        assert s.connection.execute("PRAGMA user_version").fetchone()[0] == SCHEMA_VERSION
        assert sorted(c.message_count for c in s.list_conversations()) == [40, 40]
        _fts_ok(s.connection)
    assert stat.S_IMODE(path.stat().st_mode) == 0o600


def test_deleting_a_message_applies_the_trees_rules_to_the_rows(store):
    """delete_message is MessageTree.remove on the rows: what followed the message follows its
    parent, and a path that ended at it ends at the newest message left under its parent (or,
    for a top message, the newest in the conversation); a path ending elsewhere stays."""
    cid = store.create_conversation()
    q = store.add_message(cid, "user", "q")
    a1 = store.add_message(cid, "assistant", "a1", parent=q)
    q2 = store.add_message(cid, "user", "q2", parent=a1)
    a2 = store.add_message(cid, "assistant", "a2", parent=q)  # a1's alternative, shown
    store.delete_message(a1)
    conv = store.get_conversation(cid)
    assert {m.id: m.parent_id for m in conv.all_messages} == {q: None, q2: q, a2: q}
    assert conv.leaf_id == a2 and [m.id for m in conv.messages] == [q, a2]
    store.set_current_leaf(cid, q2)
    a3 = store.add_message(cid, "assistant", "a3", parent=q)  # newer than q2, under q
    store.set_current_leaf(cid, q2)
    store.delete_message(q2)  # shown: the newest message left under q
    assert store.get_conversation(cid).leaf_id == a3
    store.set_current_leaf(cid, q)
    store.delete_message(q)  # a top message: its replies become top messages, the newest shown
    conv = store.get_conversation(cid)
    assert {m.id: m.parent_id for m in conv.all_messages} == {a2: None, a3: None}
    assert conv.leaf_id == a3 and conv.branch_count == 2


def test_a_current_file_opens_untouched(isolated_dirs):
    """A schema-5 file is opened without running any migration: its bytes are the same after
    an open and a close (a migration run again, or one too many, would change them)."""
    from aigc_chat.history_schema import MIGRATIONS

    assert SCHEMA_VERSION == len(MIGRATIONS) == 5
    with HistoryStore() as s:
        cid = s.create_conversation("Kept")
        s.add_message(cid, "user", "hello")
    path = default_path()
    before = path.read_bytes()
    with HistoryStore() as s:
        assert s.get_conversation(cid).summary.title == "Kept"
    assert path.read_bytes() == before
