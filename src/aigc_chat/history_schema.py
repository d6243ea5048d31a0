"""The history file's schema: each migration is a function, applied in order, as simonw/llm's
migrations.py does; the schema version is how many have run.

`PRAGMA user_version` records the version; `MIGRATIONS[n]` takes a file from version n to
n + 1, so an older file is upgraded in place the first time a newer build opens it, and a
file of the current version is not touched. A migration never changes once released: a new
layout is a new function at the end.

Each runs its SQL statement by statement inside `upgrade`'s one transaction (executescript
would commit it half-way), so a failed or interrupted upgrade leaves the file as it was.
"""

from __future__ import annotations

import sqlite3
from collections.abc import Callable
from contextlib import suppress
from pathlib import Path

from aigc_chat.history import HistoryError

Migration = Callable[[sqlite3.Connection], None]
MIGRATIONS: list[Migration] = []


def migration(fn: Migration) -> Migration:
    """Register `fn` as the next migration (the order of definition is the order applied)."""
    MIGRATIONS.append(fn)
    return fn


def split_sql(script: str) -> list[str]:
    """Split a migration into statements (executescript would commit our transaction)."""
    statements: list[str] = []
    buf = ""
    for line in script.splitlines(keepends=True):
        buf += line
        if sqlite3.complete_statement(buf):
            if buf.strip():
                statements.append(buf.strip())
            buf = ""
    if buf.strip():
        statements.append(buf.strip())
    return statements


def run_sql(conn: sqlite3.Connection, script: str) -> None:
    for statement in split_sql(script):
        conn.execute(statement)


@migration
def m001_initial(conn: sqlite3.Connection) -> None:
    """The first released layout (no message kinds, no search)."""
    run_sql(conn, """
CREATE TABLE conversations (
    id          INTEGER PRIMARY KEY,
    title       TEXT NOT NULL DEFAULT '',
    model       TEXT NOT NULL DEFAULT '',
    backend     TEXT NOT NULL DEFAULT '',
    settings    TEXT NOT NULL DEFAULT '{}',
    created_at  REAL NOT NULL,
    updated_at  REAL NOT NULL
);
CREATE TABLE messages (
    id              INTEGER PRIMARY KEY,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role            TEXT NOT NULL,
    content         TEXT NOT NULL DEFAULT '',
    created_at      REAL NOT NULL,
    finish_reason   TEXT,
    stats           TEXT NOT NULL DEFAULT '{}'
);
CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
CREATE INDEX conversations_by_update ON conversations(updated_at, id);
""")


@migration
def m002_kinds_and_search(conn: sqlite3.Connection) -> None:
    """Message kinds (inline GAN samples) with their metadata, and full-text search."""
    run_sql(conn, """
ALTER TABLE messages ADD COLUMN kind TEXT NOT NULL DEFAULT 'text';
ALTER TABLE messages ADD COLUMN meta TEXT NOT NULL DEFAULT '{}';
CREATE VIRTUAL TABLE messages_fts USING fts5(
    content, content='messages', content_rowid='id', tokenize='unicode61 remove_diacritics 2', prefix='3'
);
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
END;
CREATE VIRTUAL TABLE titles_fts USING fts5(
    title, content='conversations', content_rowid='id', tokenize='unicode61 remove_diacritics 2', prefix='3'
);
CREATE TRIGGER titles_fts_insert AFTER INSERT ON conversations BEGIN
    INSERT INTO titles_fts(rowid, title) VALUES (new.id, new.title);
END;
CREATE TRIGGER titles_fts_delete AFTER DELETE ON conversations BEGIN
    INSERT INTO titles_fts(titles_fts, rowid, title) VALUES ('delete', old.id, old.title);
END;
CREATE TRIGGER titles_fts_update AFTER UPDATE OF title ON conversations BEGIN
    INSERT INTO titles_fts(titles_fts, rowid, title) VALUES ('delete', old.id, old.title);
    INSERT INTO titles_fts(rowid, title) VALUES (new.id, new.title);
END;
INSERT INTO messages_fts(messages_fts) VALUES ('rebuild');
INSERT INTO titles_fts(titles_fts) VALUES ('rebuild');
""")


@migration
def m003_attachments(conn: sqlite3.Connection) -> None:
    """Files attached to messages. A file's text is kept once however many messages
    attach it (`blobs`, unique by sha256), searchable like messages; a blob goes with the last
    message that attached it."""
    run_sql(conn, """
CREATE TABLE blobs (
    id      INTEGER PRIMARY KEY,
    sha256  TEXT NOT NULL UNIQUE,
    content TEXT NOT NULL
);
CREATE TABLE attachments (
    message_id INTEGER NOT NULL REFERENCES messages(id) ON DELETE CASCADE,
    position   INTEGER NOT NULL,
    name       TEXT NOT NULL,
    blob_id    INTEGER NOT NULL REFERENCES blobs(id),
    PRIMARY KEY (message_id, position)
);
CREATE INDEX attachments_blob ON attachments(blob_id);
CREATE TRIGGER attachments_of_deleted_message AFTER DELETE ON messages BEGIN
    DELETE FROM attachments WHERE message_id = old.id;
END;
CREATE TRIGGER blobs_unused AFTER DELETE ON attachments BEGIN
    DELETE FROM blobs WHERE id = old.blob_id
        AND NOT EXISTS (SELECT 1 FROM attachments WHERE blob_id = old.blob_id);
END;
CREATE VIRTUAL TABLE blobs_fts USING fts5(
    content, content='blobs', content_rowid='id', tokenize='unicode61 remove_diacritics 2', prefix='3'
);
CREATE TRIGGER blobs_fts_insert AFTER INSERT ON blobs BEGIN
    INSERT INTO blobs_fts(rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER blobs_fts_delete AFTER DELETE ON blobs BEGIN
    INSERT INTO blobs_fts(blobs_fts, rowid, content) VALUES ('delete', old.id, old.content);
END;
""")


@migration
def m004_trees(conn: sqlite3.Connection) -> None:
    """Conversations as trees (aigc_chat.tree). A message has a parent; a conversation
    has the leaf of the path it shows. Older files were one chain in id order (a regenerate or an
    edit deleted what it replaced), so each message's parent is the one before it."""
    run_sql(conn, """
ALTER TABLE messages ADD COLUMN parent_id INTEGER;
ALTER TABLE conversations ADD COLUMN current_leaf INTEGER;
UPDATE messages SET parent_id = (
    SELECT max(p.id) FROM messages p WHERE p.conversation_id = messages.conversation_id AND p.id < messages.id
);
UPDATE conversations SET current_leaf = (
    SELECT max(m.id) FROM messages m WHERE m.conversation_id = conversations.id
);
CREATE INDEX messages_by_parent ON messages(parent_id);
""")


@migration
def m005_ids_never_reused(conn: sqlite3.Connection) -> None:
    """Ids never come back. Without AUTOINCREMENT, SQLite gives a new row the largest
    id + 1, so deleting the newest conversation handed its id (and its messages' ids) to the next
    one, and a script that remembered "conversation 18" read someone else's. SQLite adds
    AUTOINCREMENT only by rebuilding a table: both are copied with every column and id, the old
    ones dropped (their triggers and indexes with them) and all of those made again. The FTS
    indexes are external-content tables keyed by the same ids, so they stay valid as they are.
    Foreign keys are off while this runs (upgrade), or dropping a table would cascade."""
    run_sql(conn, """
CREATE TABLE conversations_v5 (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    title        TEXT NOT NULL DEFAULT '',
    model        TEXT NOT NULL DEFAULT '',
    backend      TEXT NOT NULL DEFAULT '',
    settings     TEXT NOT NULL DEFAULT '{}',
    created_at   REAL NOT NULL,
    updated_at   REAL NOT NULL,
    current_leaf INTEGER
);
INSERT INTO conversations_v5 (id, title, model, backend, settings, created_at, updated_at, current_leaf)
    SELECT id, title, model, backend, settings, created_at, updated_at, current_leaf FROM conversations;
CREATE TABLE messages_v5 (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    conversation_id INTEGER NOT NULL REFERENCES conversations(id) ON DELETE CASCADE,
    role            TEXT NOT NULL,
    content         TEXT NOT NULL DEFAULT '',
    created_at      REAL NOT NULL,
    finish_reason   TEXT,
    stats           TEXT NOT NULL DEFAULT '{}',
    kind            TEXT NOT NULL DEFAULT 'text',
    meta            TEXT NOT NULL DEFAULT '{}',
    parent_id       INTEGER
);
INSERT INTO messages_v5 (id, conversation_id, role, content, created_at, finish_reason, stats, kind, meta, parent_id)
    SELECT id, conversation_id, role, content, created_at, finish_reason, stats, kind, meta, parent_id FROM messages;
DROP TABLE messages;
DROP TABLE conversations;
ALTER TABLE conversations_v5 RENAME TO conversations;
ALTER TABLE messages_v5 RENAME TO messages;
CREATE INDEX messages_by_conversation ON messages(conversation_id, id);
CREATE INDEX conversations_by_update ON conversations(updated_at, id);
CREATE INDEX messages_by_parent ON messages(parent_id);
CREATE TRIGGER messages_fts_insert AFTER INSERT ON messages BEGIN
    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER messages_fts_delete AFTER DELETE ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
END;
CREATE TRIGGER messages_fts_update AFTER UPDATE OF content ON messages BEGIN
    INSERT INTO messages_fts(messages_fts, rowid, content) VALUES ('delete', old.id, old.content);
    INSERT INTO messages_fts(rowid, content) VALUES (new.id, new.content);
END;
CREATE TRIGGER titles_fts_insert AFTER INSERT ON conversations BEGIN
    INSERT INTO titles_fts(rowid, title) VALUES (new.id, new.title);
END;
CREATE TRIGGER titles_fts_delete AFTER DELETE ON conversations BEGIN
    INSERT INTO titles_fts(titles_fts, rowid, title) VALUES ('delete', old.id, old.title);
END;
CREATE TRIGGER titles_fts_update AFTER UPDATE OF title ON conversations BEGIN
    INSERT INTO titles_fts(titles_fts, rowid, title) VALUES ('delete', old.id, old.title);
    INSERT INTO titles_fts(rowid, title) VALUES (new.id, new.title);
END;
CREATE TRIGGER attachments_of_deleted_message AFTER DELETE ON messages BEGIN
    DELETE FROM attachments WHERE message_id = old.id;
END;
""")


SCHEMA_VERSION = len(MIGRATIONS)


def refuse_newer(path: Path, version: int) -> None:
    """A file written by a newer build is never changed (nor read: its rows may mean more)."""
    if version > SCHEMA_VERSION:
        raise HistoryError(
            f"the history {path} was written by a newer aigc-chat "
            f"(schema {version}, this one knows {SCHEMA_VERSION})",
            path=path, reason="it was written by a newer aigc-chat",
        )


def upgrade(conn: sqlite3.Connection, path: Path) -> None:
    """Bring the open file `path` to SCHEMA_VERSION: nothing when it is there already; the
    missing migrations in one write transaction otherwise (another process may be upgrading
    the same file: the second one finds it done). sqlite3 errors are the caller's to word."""
    version = conn.execute("PRAGMA user_version").fetchone()[0]
    if version == SCHEMA_VERSION:
        return
    refuse_newer(path, version)
    # Off for the table rebuilds (m005): a DROP TABLE would otherwise delete in cascade.
    # The pragma is a no-op inside a transaction, so it goes before BEGIN.
    conn.execute("PRAGMA foreign_keys = OFF")
    conn.execute("BEGIN IMMEDIATE")  # another process may be migrating the same file
    try:
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        refuse_newer(path, version)
        for step in range(version, SCHEMA_VERSION):
            MIGRATIONS[step](conn)
            conn.execute(f"PRAGMA user_version = {step + 1}")
        conn.execute("COMMIT")
    except BaseException:
        with suppress(sqlite3.Error):
            conn.execute("ROLLBACK")
        raise
    finally:
        with suppress(sqlite3.Error):
            conn.execute("PRAGMA foreign_keys = ON")
