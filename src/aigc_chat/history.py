"""Saved conversations: one SQLite file in the data dir, shared safely by several processes.

Why SQLite and why these settings:
- WAL lets a TUI read the history while a one-shot run in another terminal writes to it;
  every write is a short `BEGIN IMMEDIATE` transaction, and `busy_timeout` makes the other
  process wait for it instead of failing, so two writers lose nothing.
- `PRAGMA user_version` records the schema; `_MIGRATIONS[n]` takes a file from version n
  to n + 1, so an older file is upgraded in place the first time a newer build opens it.
- Two external-content FTS5 indexes (messages, conversation titles) kept in step by
  triggers, so search never drifts from the rows, whatever front end wrote them.
- The file is created 0600 in a 0700 directory before SQLite opens it (SQLite gives its
  -wal and -shm files the same mode): conversations are nobody else's business.
- A history that cannot be written (a read-only file, directory or mount) can still be read:
  `HistoryStore(path, readonly=True)` opens it `mode=ro`, and, when even that fails because
  WAL's -shm file cannot be created next to it, `immutable=1` (no locks, no WAL: safe then,
  since no process can be writing a WAL file there either). `open_for_reading` tries the
  normal open first and falls back to that.

Every sqlite3 failure leaves this module as a `HistoryError` with one readable line.
"""

from __future__ import annotations

import errno
import hashlib
import json
import os
import sqlite3
import stat
import threading
import time
import urllib.parse
from collections.abc import Callable, Iterator, Sequence
from concurrent.futures import Future
from contextlib import contextmanager, suppress
from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING, Any

from aigc_chat.errors import AigcError, UsageError

if TYPE_CHECKING:
    from aigc_chat.chat_types import GenerationResult

DB_NAME = "history.sqlite3"
BUSY_TIMEOUT_MS = 15_000
TITLE_CHARS = 60
PREFIX_MIN = 3  # the FTS tables keep a 3-character prefix index (prefix='3')
SEARCH_WINDOW = 5000  # matches ranked per search, newest first (see _ranked)
SEARCH_MAX_WORDS = 32  # different words in one search (fts_query): more is refused, not slow
SEARCH_MAX_CHARS = 1000

# Version 1: the first released layout (no message kinds, no search).
_V1 = """
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
"""

# Version 2: message kinds (inline GAN samples) with their metadata, and full-text search.
_V2 = """
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
"""

# Version 3: files attached to messages. A file's text is kept once however many messages
# attach it (`blobs`, unique by sha256), searchable like messages; a blob goes with the last
# message that attached it.
_V3 = """
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
"""

# Version 4: conversations as trees (aigc_chat.tree). A message has a parent; a conversation
# has the leaf of the path it shows. Older files were one chain in id order (a regenerate or an
# edit deleted what it replaced), so each message's parent is the one before it.
_V4 = """
ALTER TABLE messages ADD COLUMN parent_id INTEGER;
ALTER TABLE conversations ADD COLUMN current_leaf INTEGER;
UPDATE messages SET parent_id = (
    SELECT max(p.id) FROM messages p WHERE p.conversation_id = messages.conversation_id AND p.id < messages.id
);
UPDATE conversations SET current_leaf = (
    SELECT max(m.id) FROM messages m WHERE m.conversation_id = conversations.id
);
CREATE INDEX messages_by_parent ON messages(parent_id);
"""

# Version 5: ids never come back. Without AUTOINCREMENT, SQLite gives a new row the largest
# id + 1, so deleting the newest conversation handed its id (and its messages' ids) to the next
# one, and a script that remembered "conversation 18" read someone else's. SQLite adds
# AUTOINCREMENT only by rebuilding a table: both are copied with every column and id, the old
# ones dropped (their triggers and indexes with them) and all of those made again. The FTS
# indexes are external-content tables keyed by the same ids, so they stay valid as they are.
# Foreign keys are off while this runs (_migrate), or dropping a table would cascade.
_V5 = """
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
"""

_MIGRATIONS: list[str] = [_V1, _V2, _V3, _V4, _V5]
SCHEMA_VERSION = len(_MIGRATIONS)


def _inserted_id(cur: sqlite3.Cursor) -> int:
    """The id of the row `cur` just inserted. sqlite3 types lastrowid as optional, but every
    successful INSERT sets it; a None here would be a bug, and fails as int(None) did."""
    rowid = cur.lastrowid
    if rowid is None:
        raise TypeError("the INSERT returned no row id")
    return rowid


class HistoryError(AigcError):
    """The history file cannot be opened, read or written; the message says which and why.

    `reason` is the why alone ("database is locked by another process", "disk is full"),
    for front ends that word their own notice; `path` is the file."""

    def __init__(self, message: str, *, path: Path | str | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.path = None if path is None else Path(path)
        self.reason = reason or message


class ConversationGone(UsageError):
    """A write for a conversation (or one of its messages) that is no longer in the file:
    deleted from another window or by `aigc-chat history delete`. Not a failure of the history
    (the next conversation saves fine): the writer reports it and goes on saving."""


@dataclass(frozen=True)
class ConversationSummary:
    id: int
    title: str
    model: str
    backend: str
    created_at: float
    updated_at: float
    message_count: int


@dataclass(frozen=True)
class StoredMessage:
    id: int
    conversation_id: int
    role: str
    content: str
    created_at: float
    finish_reason: str | None  # None while streaming (or if the process died) and for user rows
    stats: dict = field(default_factory=dict)
    kind: str = "text"
    meta: dict = field(default_factory=dict)
    attachments: tuple[StoredFile, ...] = ()
    parent_id: int | None = None  # the message it answers or follows; None at the top


@dataclass(frozen=True)
class StoredFile:
    """A file attached to a message: its name and its text as it was when attached."""

    name: str
    content: str


@dataclass(frozen=True)
class Conversation:
    """A stored conversation: `messages` is the path it shows (root to `leaf_id`), what a
    reader, an export or a model is given; `all_messages` is every branch, in id order."""

    summary: ConversationSummary
    settings: dict
    messages: list[StoredMessage]
    all_messages: list[StoredMessage] = field(default_factory=list)
    leaf_id: int | None = None

    def children(self) -> dict[int | None, list[StoredMessage]]:
        """Each message's replies and follow-ups (None: the roots), oldest first."""
        out: dict[int | None, list[StoredMessage]] = {}
        for m in self.all_messages:
            out.setdefault(m.parent_id, []).append(m)
        return out

    @property
    def branch_count(self) -> int:
        """How many paths the tree has (its leaves)."""
        parents = {m.parent_id for m in self.all_messages}
        return sum(1 for m in self.all_messages if m.id not in parents)


CURRENT = -1
"""`add_message(parent=CURRENT)`: after the conversation's current leaf (the default)."""


@dataclass(frozen=True)
class SearchHit:
    conversation_id: int
    message_id: int  # 0 when the match is in the conversation's title
    title: str
    snippet: str  # raw text around the match (untrusted: sanitise before display)
    rank: float  # bm25: lower is a better match


def default_path() -> Path:
    from aigc_chat.paths import data_dir

    return data_dir() / DB_NAME


def _ranked(conn: sqlite3.Connection, table: str, match: str, limit: int) -> list[tuple[int, float]]:
    """The best `limit` matches by bm25 among the newest SEARCH_WINDOW matches. Ranking every
    match of a very common word costs ~0.3 s at 200,000 messages; FTS5 walks matches in rowid
    order cheaply, so the newest window is ranked instead (exact when there are fewer)."""
    rows = conn.execute(
        f"SELECT rowid, bm25({table}) FROM {table} WHERE {table} MATCH ?"
        f" ORDER BY rowid DESC LIMIT {SEARCH_WINDOW}", (match,),
    ).fetchall()
    rows.sort(key=lambda r: (r[1], -r[0]))
    return rows[:limit]


def title_from(text: str) -> str:
    """A conversation's default title: the first non-empty line, trimmed."""
    for line in text.splitlines():
        line = " ".join(line.split())
        if line:
            return line if len(line) <= TITLE_CHARS else line[: TITLE_CHARS - 1].rstrip() + "…"
    return ""


def fts_query(text: str, *, prefix: bool = False) -> str:
    """User text as an FTS5 query that means exactly the words typed: every word is a quoted
    string (quotes doubled), all must match. Operators, `*`, brackets are just text.
    `prefix` makes the last word match as a prefix when it has at least PREFIX_MIN characters
    (shorter prefixes would merge the postings of thousands of words: seconds, not ms).

    FTS5's cost grows with the product of the query's terms and their matches: one word typed
    20,000 times took 37 s. A repeated word means nothing more (all must match anyway), so
    repeats go (letter case aside, as FTS5 ignores it); past SEARCH_MAX_WORDS different words or
    SEARCH_MAX_CHARS characters in them the query is refused with a UsageError that says the limit."""
    text = text.replace("\x00", " ")  # FTS5 reads a NUL as the end of the query
    words: dict[str, str] = {}
    for w in text.split():
        words.setdefault(w.lower(), w)
    if prefix and words:  # the word being typed stays last: it is the one matched as a prefix
        last = text.split()[-1]
        words.pop(last.lower(), None)
        words[last.lower()] = last
    if len(words) > SEARCH_MAX_WORDS:
        raise UsageError(f"the search has {len(words)} different words; at most {SEARCH_MAX_WORDS} are searched")
    kept = list(words.values())
    if sum(map(len, kept)) > SEARCH_MAX_CHARS:  # one "word" a.b.c.… is a phrase of many terms
        raise UsageError(f"the search's words are over {SEARCH_MAX_CHARS:,} characters; that is the limit")
    parts = ['"' + w.replace('"', '""') + '"' for w in kept]
    if prefix and kept and len(kept[-1]) >= PREFIX_MIN:
        parts[-1] += "*"
    return " ".join(parts)


def _describe(exc: BaseException) -> str:
    """One short line saying why, in the words a user acts on."""
    if isinstance(exc, OSError) and exc.strerror:
        if exc.errno == errno.ENOSPC:
            return "disk is full"
        return exc.strerror
    text = str(exc) or type(exc).__name__
    if isinstance(exc, sqlite3.DatabaseError):
        if "not a database" in text:
            return "the file is not a history database (corrupt?)"
        if "database is locked" in text or "database table is locked" in text:
            return "database is locked by another process"
        if "database or disk is full" in text:
            return "disk is full"
        if "readonly database" in text:
            return "the file is read-only"
    return text


def _error(doing: str, path: Path, exc: BaseException) -> HistoryError:
    reason = _describe(exc)
    return HistoryError(f"cannot {doing} the history {path}: {reason}", path=path, reason=reason)


def _require_regular(mode: int) -> None:
    """SQLite would block for ever reading a FIFO put where the history goes, and fail
    obscurely on a device: refuse them first, saying what the path is."""
    if not stat.S_ISREG(mode):
        from aigc_chat.safe_open import kind_of

        raise UsageError(f"it is {kind_of(mode)}, not a regular file")


def _readonly_uri(path: Path, *, immutable: bool) -> str:
    quoted = urllib.parse.quote(str(path.absolute()))
    return f"file:{quoted}?{'immutable=1' if immutable else 'mode=ro'}"


def _create_private_file(path: Path) -> None:
    """Create the database file 0600 (and its directory 0700) before SQLite sees it."""
    from aigc_chat.paths import ensure_dir

    ensure_dir(path.parent)
    fd = os.open(path, os.O_RDWR | os.O_CREAT | os.O_NONBLOCK, 0o600)
    try:
        st = os.fstat(fd)
        _require_regular(st.st_mode)
        if hasattr(os, "fchmod") and st.st_mode & 0o077 and st.st_uid == os.getuid():
            os.fchmod(fd, 0o600)  # an older file someone made readable: make it private again
    finally:
        os.close(fd)


def _switch_to_wal(conn: sqlite3.Connection, busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> str:
    """Switching a new file to WAL needs an exclusive lock, and SQLite answers "database is
    locked" at once, without its busy handler, when two processes switch the same new file
    at the same moment: retry for as long as the busy timeout would have waited."""
    deadline = time.monotonic() + busy_timeout_ms / 1000
    while True:
        try:
            return str(conn.execute("PRAGMA journal_mode = WAL").fetchone()[0])
        except sqlite3.OperationalError as exc:
            if "locked" not in str(exc) or time.monotonic() > deadline:
                raise
            time.sleep(0.02)


class HistoryStore:
    """The conversation history. One connection, usable from several threads (a lock
    serialises calls); several processes may open the same file at once.

    `readonly=True` opens an existing file for reading only (see the module notes); its
    writes raise HistoryError. `busy_timeout_ms` is how long a write waits for another
    process's write to end before it fails with "database is locked"."""

    def __init__(self, path: Path | None = None, *, readonly: bool = False,
                 busy_timeout_ms: int = BUSY_TIMEOUT_MS) -> None:
        self.path = Path(path) if path is not None else default_path()
        self.readonly = readonly
        self.immutable = False
        self.busy_timeout_ms = int(busy_timeout_ms)
        self._lock = threading.RLock()
        self._conn: sqlite3.Connection | None = None
        self._before_read: Callable[[], None] | None = None  # see HistoryWriter: read your writes
        if readonly:
            self._open_readonly()
            return
        try:
            _create_private_file(self.path)
            conn = sqlite3.connect(
                str(self.path), timeout=self.busy_timeout_ms / 1000, isolation_level=None,
                check_same_thread=False,
            )
        except (OSError, sqlite3.Error, UsageError) as exc:
            # UsageError: the data directory cannot be created (ensure_dir says why)
            raise _error("open", self.path, exc) from None
        self._conn = conn
        try:
            conn.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
            mode = _switch_to_wal(conn, self.busy_timeout_ms)
            if str(mode).lower() != "wal":
                raise sqlite3.OperationalError(f"cannot switch to WAL mode (got {mode})")
            conn.execute("PRAGMA synchronous = NORMAL")  # WAL: a killed process loses nothing committed
            conn.execute("PRAGMA foreign_keys = ON")
            self._migrate()
        except (sqlite3.Error, HistoryError) as exc:
            conn.close()
            self._conn = None
            if isinstance(exc, HistoryError):
                raise
            raise _error("open", self.path, exc) from None

    @classmethod
    def open_for_reading(cls, path: Path | None = None) -> HistoryStore:
        """The normal (read-write) store if the file can be opened so, else the same file
        read-only; if neither works, the error of the normal open (it says why best)."""
        try:
            return cls(path)
        except HistoryError as exc:
            problem = exc
        try:
            return cls(path, readonly=True)
        except HistoryError:
            raise problem from None

    def _open_readonly(self) -> None:
        """mode=ro first (sees a live WAL); immutable=1 when the -shm cannot be created."""
        if not self.path.exists():
            raise HistoryError(f"cannot open the history {self.path}: it does not exist",
                               path=self.path, reason="it does not exist")
        try:
            _require_regular(os.stat(self.path).st_mode)
        except (OSError, UsageError) as exc:
            raise _error("open", self.path, exc) from None
        last: BaseException | None = None
        for immutable in (False, True):
            try:
                conn = sqlite3.connect(_readonly_uri(self.path, immutable=immutable), uri=True,
                                       timeout=self.busy_timeout_ms / 1000, isolation_level=None,
                                       check_same_thread=False)
            except sqlite3.Error as exc:
                last = exc
                continue
            try:
                conn.execute(f"PRAGMA busy_timeout = {self.busy_timeout_ms}")
                version = conn.execute("PRAGMA user_version").fetchone()[0]  # reads the file: fails here
            except sqlite3.Error as exc:
                conn.close()
                last = exc
                if "not a database" in str(exc):
                    break  # corrupt: immutable=1 would say the same
                continue
            if version > SCHEMA_VERSION:
                conn.close()
                self._refuse_newer(version)
            if version < SCHEMA_VERSION:
                conn.close()
                raise HistoryError(
                    f"cannot open the history {self.path}: it is read-only and needs an upgrade "
                    f"(schema {version}, this build uses {SCHEMA_VERSION})",
                    path=self.path, reason="it is read-only and needs an upgrade")
            self._conn = conn
            self.immutable = immutable
            return
        assert last is not None
        raise _error("open", self.path, last) from None

    # -- plumbing ------------------------------------------------------------------------

    def _migrate(self) -> None:
        conn = self._db()
        version = conn.execute("PRAGMA user_version").fetchone()[0]
        if version == SCHEMA_VERSION:
            return
        self._refuse_newer(version)
        # Off for the table rebuilds (_V5): a DROP TABLE would otherwise delete in cascade.
        # The pragma is a no-op inside a transaction, so it goes before BEGIN.
        conn.execute("PRAGMA foreign_keys = OFF")
        conn.execute("BEGIN IMMEDIATE")  # another process may be migrating the same file
        try:
            version = conn.execute("PRAGMA user_version").fetchone()[0]
            self._refuse_newer(version)
            for step in range(version, SCHEMA_VERSION):
                for statement in _split_sql(_MIGRATIONS[step]):
                    conn.execute(statement)
                conn.execute(f"PRAGMA user_version = {step + 1}")
            conn.execute("COMMIT")
        except BaseException:
            try:
                conn.execute("ROLLBACK")
            except sqlite3.Error:
                pass
            raise
        finally:
            with suppress(sqlite3.Error):
                conn.execute("PRAGMA foreign_keys = ON")

    def _refuse_newer(self, version: int) -> None:
        if version > SCHEMA_VERSION:
            raise HistoryError(
                f"the history {self.path} was written by a newer aigc-chat "
                f"(schema {version}, this one knows {SCHEMA_VERSION})",
                path=self.path, reason="it was written by a newer aigc-chat",
            )

    def _db(self) -> sqlite3.Connection:
        if self._conn is None:
            raise HistoryError("the history is closed")
        return self._conn

    @contextmanager
    def _write(self) -> Iterator[sqlite3.Connection]:
        """One short write transaction; takes the write lock up front so it cannot deadlock."""
        if self.readonly:
            reason = "it is open read-only"
            raise HistoryError(f"cannot write the history {self.path}: {reason}", path=self.path,
                               reason=reason)
        with self._lock:
            conn = self._db()
            try:
                conn.execute("BEGIN IMMEDIATE")
            except sqlite3.Error as exc:
                raise _error("write", self.path, exc) from None
            try:
                yield conn
                conn.execute("COMMIT")
            except BaseException as exc:
                try:
                    conn.execute("ROLLBACK")
                except sqlite3.Error:
                    pass
                if isinstance(exc, sqlite3.Error):
                    raise _error("write", self.path, exc) from None
                raise

    @contextmanager
    def _read(self) -> Iterator[sqlite3.Connection]:
        hook = self._before_read
        if hook is not None:
            hook()  # a writer thread owns this store's writes: let what it was given land first
        with self._lock:
            conn = self._db()
            try:
                yield conn
            except sqlite3.Error as exc:
                raise _error("read", self.path, exc) from None

    @property
    def connection(self) -> sqlite3.Connection:
        """The raw connection (bulk loading in benchmarks, inspection in tests)."""
        return self._db()

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.close()
                finally:
                    self._conn = None

    def __enter__(self) -> HistoryStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- conversations -------------------------------------------------------------------

    def create_conversation(self, title: str = "", *, model: str = "", backend: str = "",
                            settings: dict | None = None) -> int:
        now = time.time()
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO conversations (title, model, backend, settings, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (_one_line(title), model, backend, _dump(settings), now, now),
            )
            return _inserted_id(cur)

    def rename(self, conversation_id: int, title: str) -> None:
        with self._write() as conn:
            cur = conn.execute("UPDATE conversations SET title = ? WHERE id = ?",
                               (_one_line(title), conversation_id))
            if cur.rowcount == 0:
                raise UsageError(f"no conversation {conversation_id}")

    def delete_conversation(self, conversation_id: int) -> None:
        with self._write() as conn:
            cur = conn.execute("DELETE FROM conversations WHERE id = ?", (conversation_id,))
            if cur.rowcount == 0:
                raise UsageError(f"no conversation {conversation_id}")

    def update_settings(self, conversation_id: int, settings: dict, *, model: str | None = None,
                        backend: str | None = None) -> None:
        with self._write() as conn:
            cur = conn.execute(
                "UPDATE conversations SET settings = ?, model = coalesce(?, model),"
                " backend = coalesce(?, backend) WHERE id = ?",
                (_dump(settings), model, backend, conversation_id),
            )
            if cur.rowcount == 0:
                raise ConversationGone(f"no conversation {conversation_id}")

    def has_conversation(self, conversation_id: int) -> bool:
        with self._read() as conn:
            return conn.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)).fetchone() is not None

    def list_conversations(self, limit: int = 500, offset: int = 0) -> list[ConversationSummary]:
        """Newest first (by last activity)."""
        with self._read() as conn:
            rows = conn.execute(
                "SELECT c.id, c.title, c.model, c.backend, c.created_at, c.updated_at,"
                " (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id)"
                " FROM conversations c ORDER BY c.updated_at DESC, c.id DESC LIMIT ? OFFSET ?",
                (int(limit), int(offset)),
            ).fetchall()
        return [ConversationSummary(*row) for row in rows]

    def list_fingerprint(self) -> tuple[int, int]:
        """(how many conversations, the newest id): a cheap check, polled by the TUI's history
        pane, that another process (a one-shot run, another window) has added or deleted one."""
        with self._read() as conn:
            row = conn.execute("SELECT count(*), coalesce(max(id), 0) FROM conversations").fetchone()
        return int(row[0]), int(row[1])

    def latest_conversation_id(self) -> int | None:
        with self._read() as conn:
            row = conn.execute(
                "SELECT id FROM conversations ORDER BY updated_at DESC, id DESC LIMIT 1"
            ).fetchone()
        return int(row[0]) if row else None

    def get_conversation(self, conversation_id: int, *, at: int | None = None) -> Conversation:
        """The conversation with every branch; the path shown ends at its current leaf, or,
        given `at` (a message of it, say a search hit), at the newest message under that one."""
        with self._read() as conn:
            conn.execute("BEGIN")  # one snapshot: the summary and the messages agree
            try:
                row = conn.execute(
                    "SELECT id, title, model, backend, created_at, updated_at, settings, current_leaf"
                    " FROM conversations WHERE id = ?", (conversation_id,),
                ).fetchone()
                if row is None:
                    raise UsageError(f"no conversation {conversation_id}")
                msgs = conn.execute(
                    "SELECT id, conversation_id, role, content, created_at, finish_reason, stats,"
                    " kind, meta, parent_id FROM messages WHERE conversation_id = ? ORDER BY id",
                    (conversation_id,),
                ).fetchall()
                files: dict[int, list[StoredFile]] = {}
                for mid, name, content in conn.execute(
                    "SELECT a.message_id, a.name, b.content FROM attachments a JOIN blobs b ON b.id = a.blob_id"
                    " JOIN messages m ON m.id = a.message_id WHERE m.conversation_id = ?"
                    " ORDER BY a.message_id, a.position", (conversation_id,),
                ):
                    files.setdefault(mid, []).append(StoredFile(name, content))
            finally:
                conn.execute("COMMIT")
        every = [
            StoredMessage(m[0], m[1], m[2], m[3], m[4], m[5], _load(m[6]), m[7], _load(m[8]),
                          tuple(files.get(m[0], ())), m[9])
            for m in msgs
        ]
        by_id = {m.id: m for m in every}
        if at is not None and at not in by_id:
            raise UsageError(f"conversation {conversation_id} has no message {at}")
        leaf = row[7]
        if leaf not in by_id:  # never set, or a row removed by hand: the newest message
            leaf = every[-1].id if every else None
        path = _path_to(by_id, leaf)
        if at is not None and at not in {m.id for m in path}:  # on the path shown: that path
            leaf = newest_under(every, at)
            path = _path_to(by_id, leaf)
        summary = ConversationSummary(row[0], row[1], row[2], row[3], row[4], row[5], len(every))
        return Conversation(summary, _load(row[6]), path, every, leaf)

    def set_current_leaf(self, conversation_id: int, message_id: int) -> None:
        """Which path the conversation shows: the one ending at `message_id` (moving to another
        branch; the next message follows it)."""
        with self._write() as conn:
            self._check_member(conn, conversation_id, message_id)
            conn.execute("UPDATE conversations SET current_leaf = ? WHERE id = ?",
                         (message_id, conversation_id))

    def fork(self, conversation_id: int, message_id: int, title: str | None = None) -> int:
        """A new conversation holding a copy of the path up to `message_id` (its files, stats
        and settings too); the original is untouched. Returns the new id."""
        stored = self.get_conversation(conversation_id, at=message_id)
        path: list[StoredMessage] = []
        for m in stored.messages:
            path.append(m)
            if m.id == message_id:
                break
        now = time.time()
        s = stored.summary
        name = title if title is not None else (f"{s.title} (fork)" if s.title else "")
        with self._write() as conn:
            cur = conn.execute(
                "INSERT INTO conversations (title, model, backend, settings, created_at, updated_at)"
                " VALUES (?, ?, ?, ?, ?, ?)",
                (_one_line(name), s.model, s.backend, _dump(stored.settings), now, now))
            new = _inserted_id(cur)
            parent: int | None = None
            for m in path:
                cur = conn.execute(
                    "INSERT INTO messages (conversation_id, role, content, created_at, finish_reason,"
                    " stats, kind, meta, parent_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                    (new, m.role, m.content, m.created_at, m.finish_reason, _dump(m.stats), m.kind,
                     _dump(m.meta), parent))
                copy = _inserted_id(cur)
                conn.execute(
                    "INSERT INTO attachments (message_id, position, name, blob_id)"
                    " SELECT ?, position, name, blob_id FROM attachments WHERE message_id = ?", (copy, m.id))
                parent = copy
            conn.execute("UPDATE conversations SET current_leaf = ? WHERE id = ?", (parent, new))
            return new

    @staticmethod
    def _check_member(conn: sqlite3.Connection, conversation_id: int, message_id: int) -> None:
        row = conn.execute("SELECT conversation_id FROM messages WHERE id = ?", (message_id,)).fetchone()
        gone = conn.execute("SELECT 1 FROM conversations WHERE id = ?", (conversation_id,)).fetchone() is None
        if row is None and gone:
            raise ConversationGone(f"no conversation {conversation_id}")
        if row is None or row[0] != conversation_id:
            raise UsageError(f"conversation {conversation_id} has no message {message_id}")

    # -- messages ------------------------------------------------------------------------

    def add_message(self, conversation_id: int, role: str, content: str, *,
                    finish_reason: str | None = None, stats: dict | None = None,
                    kind: str = "text", meta: dict | None = None,
                    attachments: Sequence[tuple[str, str]] = (), parent: int | None = CURRENT) -> int:
        """Add a message (with its attached files: (name, text) pairs, each text kept once)
        after `parent` (None: at the top; CURRENT: after the current leaf), and show its path;
        the first user message also names an untitled conversation."""
        now = time.time()
        with self._write() as conn:
            row = conn.execute("SELECT title, current_leaf FROM conversations WHERE id = ?",
                               (conversation_id,)).fetchone()
            if row is None:
                raise ConversationGone(f"no conversation {conversation_id}")
            if parent == CURRENT:
                parent = row[1]
            elif parent is not None:
                self._check_member(conn, conversation_id, parent)
            cur = conn.execute(
                "INSERT INTO messages (conversation_id, role, content, created_at, finish_reason,"
                " stats, kind, meta, parent_id) VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?)",
                (conversation_id, role, content, now, finish_reason, _dump(stats), kind, _dump(meta),
                 parent),
            )
            mid = _inserted_id(cur)
            for position, (name, text) in enumerate(attachments):
                digest = hashlib.sha256(text.encode("utf-8")).hexdigest()
                conn.execute("INSERT OR IGNORE INTO blobs (sha256, content) VALUES (?, ?)", (digest, text))
                conn.execute(
                    "INSERT INTO attachments (message_id, position, name, blob_id)"
                    " SELECT ?, ?, ?, id FROM blobs WHERE sha256 = ?", (mid, position, name, digest))
            if not row[0] and role == "user" and title_from(content):
                conn.execute("UPDATE conversations SET title = ?, updated_at = ?, current_leaf = ?"
                             " WHERE id = ?", (title_from(content), now, mid, conversation_id))
            else:
                conn.execute("UPDATE conversations SET updated_at = ?, current_leaf = ? WHERE id = ?",
                             (now, mid, conversation_id))
            return mid

    def update_message(self, message_id: int, content: str, *, finish_reason: str | None = None,
                       stats: dict | None = None, meta: dict | None = None) -> None:
        """Replace a message's text; a finish reason, stats or meta given here are recorded too
        (None keeps what is stored)."""
        now = time.time()
        with self._write() as conn:
            row = conn.execute("SELECT conversation_id FROM messages WHERE id = ?",
                               (message_id,)).fetchone()
            if row is None:  # its conversation was deleted (history delete) while it streamed
                raise ConversationGone(f"no message {message_id}")
            conn.execute(
                "UPDATE messages SET content = ?, finish_reason = coalesce(?, finish_reason),"
                " stats = coalesce(?, stats), meta = coalesce(?, meta) WHERE id = ?",
                (content, finish_reason, None if stats is None else _dump(stats),
                 None if meta is None else _dump(meta), message_id),
            )
            conn.execute("UPDATE conversations SET updated_at = ? WHERE id = ?", (now, row[0]))

    def message_state(self, message_id: int) -> tuple[str, str | None, dict] | None:
        """(text, finish reason, meta) of one message, or None when it is gone: what a window
        following another process's reply polls (aigc_chat.reply_owner)."""
        with self._read() as conn:
            row = conn.execute("SELECT content, finish_reason, meta FROM messages WHERE id = ?",
                               (message_id,)).fetchone()
        return None if row is None else (row[0], row[1], _load(row[2]))

    def request_stop(self, message_id: int) -> bool:
        """Ask the process writing this reply to stop (aigc_chat.reply_owner): True when the
        reply was still being written."""
        with self._write() as conn:
            cur = conn.execute("UPDATE messages SET meta = json_set(meta, '$.stop', 1)"
                               " WHERE id = ? AND finish_reason IS NULL AND json_valid(meta)", (message_id,))
            return cur.rowcount > 0

    def stop_requested(self, message_id: int) -> bool:
        """Whether another process asked the writer of this reply to stop (request_stop)."""
        with self._read() as conn:
            row = conn.execute("SELECT json_extract(meta, '$.stop') FROM messages WHERE id = ? AND json_valid(meta)",
                               (message_id,)).fetchone()
        return bool(row and row[0])

    def delete_message(self, message_id: int) -> None:
        """Remove one message (a failed reply that produced nothing); what followed it now
        follows its parent, and a path that ended at it ends there. A missing one is not an
        error."""
        with self._write() as conn:
            row = conn.execute("SELECT conversation_id, parent_id FROM messages WHERE id = ?",
                               (message_id,)).fetchone()
            if row is None:
                return
            conn.execute("UPDATE messages SET parent_id = ? WHERE parent_id = ?", (row[1], message_id))
            conn.execute("DELETE FROM messages WHERE id = ?", (message_id,))
            leaf = conn.execute("SELECT current_leaf FROM conversations WHERE id = ?", (row[0],)).fetchone()
            if leaf is not None and leaf[0] == message_id:  # the path ended here: the newest one left
                conn.execute("UPDATE conversations SET current_leaf = ? WHERE id = ?",
                             (self._newest_under(conn, row[0], row[1]), row[0]))

    @staticmethod
    def _newest_under(conn: sqlite3.Connection, conversation_id: int, message_id: int | None) -> int | None:
        """The newest message in the subtree of `message_id` (None: in the conversation)."""
        if message_id is None:
            found = conn.execute("SELECT max(id) FROM messages WHERE conversation_id = ?",
                                 (conversation_id,)).fetchone()
        else:
            found = conn.execute(
                "WITH RECURSIVE sub(id) AS (SELECT ? UNION"  # UNION: a cycle made by hand ends
                " SELECT m.id FROM messages m JOIN sub ON m.parent_id = sub.id) SELECT max(id) FROM sub",
                (message_id,)).fetchone()
        return found[0] if found else None

    # -- search and export ---------------------------------------------------------------

    def search(self, query: str, limit: int = 100, *, prefix: bool = False,
               mark: tuple[str, str] = ("«", "»"), context_tokens: int = 12) -> list[SearchHit]:
        """Full-text search over every message and every title, best matches first. The
        query is taken literally (all its words must appear); `prefix` lets the last word
        match as a prefix (search as you type). `mark` brackets the matches in snippets."""
        match = fts_query(query, prefix=prefix)
        if not match:
            return []
        open_, close = mark
        n = max(1, min(int(context_tokens), 64))
        limit = int(limit)
        with self._read() as conn:
            conn.execute("BEGIN")  # one snapshot for the ranking and the snippets
            try:
                found = [("titles_fts", rowid, rank)
                         for rowid, rank in _ranked(conn, "titles_fts", match, limit)]
                found += [("messages_fts", rowid, rank)
                          for rowid, rank in _ranked(conn, "messages_fts", match, limit)]
                found += [("blobs_fts", rowid, rank)  # text inside attached files
                          for rowid, rank in _ranked(conn, "blobs_fts", match, limit)]
                found.sort(key=lambda f: f[2])
                hits = []
                for table, rowid, rank in found[:limit]:
                    snippet = conn.execute(
                        f"SELECT snippet({table}, 0, ?, ?, '…', ?) FROM {table}"
                        f" WHERE {table} MATCH ? AND rowid = ?", (open_, close, n, match, rowid),
                    ).fetchone()
                    if table == "titles_fts":
                        rows = conn.execute("SELECT id, 0, title FROM conversations WHERE id = ?",
                                            (rowid,)).fetchall()
                    elif table == "blobs_fts":  # every message that attached the file
                        rows = conn.execute(
                            "SELECT m.conversation_id, m.id, c.title FROM attachments a"
                            " JOIN messages m ON m.id = a.message_id JOIN conversations c ON c.id = m.conversation_id"
                            " WHERE a.blob_id = ? ORDER BY m.id DESC", (rowid,)).fetchall()
                    else:
                        rows = conn.execute(
                            "SELECT m.conversation_id, m.id, c.title FROM messages m"
                            " JOIN conversations c ON c.id = m.conversation_id WHERE m.id = ?",
                            (rowid,)).fetchall()
                    if snippet is not None:
                        hits += [SearchHit(r[0], r[1], r[2], snippet[0], rank) for r in rows]
            finally:
                conn.execute("COMMIT")
        return hits[:limit]

    def export(self, conversation_id: int, fmt: str, reasoning: bool = False,
               all_branches: bool = False) -> str:
        """The conversation's current path as Markdown (message text sanitised: it may be
        shown or pasted anywhere) or as JSON (every non-ASCII or control character escaped);
        JSON carries every branch with `all_branches`. A reply's reasoning is left out unless
        `reasoning`."""
        conv = self.get_conversation(conversation_id)
        if all_branches and fmt != "json":
            raise UsageError("--all-branches needs JSON: a Markdown export is one path")
        if fmt == "json":
            data = conversation_to_dict(conv, reasoning, all_branches=all_branches)
            return json.dumps(data, ensure_ascii=True, indent=2) + "\n"
        if fmt in ("markdown", "md"):
            return conversation_to_markdown(conv, reasoning)
        raise UsageError(f"unknown export format {fmt!r} (use markdown or json)")


class ReplyRecorder:
    """Persists one assistant reply while it streams: the row is created at start, the text is
    written at most about once a second while deltas arrive, and finalised with stats and the
    finish reason at the end (also when cancelled or failed). A process killed mid-reply
    therefore loses at most `interval` seconds of text.

    `store` may also be a `history_writer.QueuedStore` (the TUI): then every write is queued
    for the writer thread and the ids here are Futures it resolves. `clock` is for tests."""

    def __init__(self, store: Any, conversation_id: Any, *, interval: float = 1.0,
                 clock: Callable[[], float] = time.monotonic, author: dict[str, str] | None = None,
                 parent: Any = CURRENT) -> None:
        self.store = store
        self.conversation_id = conversation_id
        self.parent = parent  # the message it answers (an id or a Future); CURRENT: the leaf
        # which backend and model wrote the reply: kept in its stats from the first row on, so
        # even a reply cut off by a kill -9 says where it came from
        self.author = dict(author or {})
        self.interval = interval
        self.clock = clock
        self.message_id: Any = None
        self._written = ""
        self._pending = ""
        self._last_flush = 0.0
        self.finished = False
        self.stop_asked = False  # another process asked this reply to stop (aigc_chat.reply_owner)
        self._stop_check: Any = None  # the last check's answer (a Future on a QueuedStore)

    def start(self) -> Any:
        if self.message_id is None:
            from aigc_chat.reply_owner import writer_meta

            self.message_id = self.store.add_message(self.conversation_id, "assistant", "",
                                                     stats=self.author or None, parent=self.parent,
                                                     meta=writer_meta())
            self._last_flush = self.clock()
        return self.message_id

    def check_stop(self) -> bool:
        """Read whether another process asked this reply to stop (request_stop), never waiting:
        on a queued store the answer is the one asked for at the previous check."""
        check = getattr(self.store, "stop_requested", None)
        if check is None or self.message_id is None or self.stop_asked:
            return self.stop_asked
        last = self._stop_check
        if isinstance(last, Future):
            if not last.done():
                return False
            with suppress(Exception):
                self.stop_asked = bool(last.result())
        try:
            self._stop_check = check(self.message_id)
        except Exception:  # noqa: BLE001 - a history that cannot answer asks nothing
            self._stop_check = None
        if not isinstance(self._stop_check, Future):
            self.stop_asked = self.stop_asked or bool(self._stop_check)
        return self.stop_asked

    def feed(self, text_so_far: str) -> None:
        self._pending = text_so_far
        if self.message_id is None:
            self.start()
        now = self.clock()
        if now - self._last_flush >= self.interval and text_so_far != self._written:
            self._last_flush = now
            self.store.update_message(self.message_id, text_so_far)
            self._written = text_so_far

    def flush(self) -> None:
        """Write what has been fed so far now (e.g. before the process may be stopped)."""
        if self.message_id is not None and self._pending != self._written:
            self.store.update_message(self.message_id, self._pending)
            self._written = self._pending
            self._last_flush = self.clock()

    def finish(self, result: GenerationResult) -> None:
        """Record the final text, stats and finish reason. A failure that produced no text
        leaves no row (the session does not keep such a reply either)."""
        if self.finished:
            return
        self.finished = True
        if not result.text and not getattr(result, "reasoning", "") and result.finish_reason == "error":
            if self.message_id is not None:
                self.store.delete_message(self.message_id)
            return
        self.start()
        assert self.message_id is not None
        reasoning = getattr(result, "reasoning", "")
        self.store.update_message(self.message_id, result.text, finish_reason=result.finish_reason,
                                  stats={**self.author, **result_stats(result)},
                                  meta={"reasoning": reasoning} if reasoning else {})  # its writer: done
        self._written = self._pending = result.text


def result_stats(result: GenerationResult) -> dict[str, Any]:
    stats: dict[str, Any] = {
        "prompt_tokens": result.prompt_tokens,
        "completion_tokens": result.completion_tokens,
        "time_to_first_token": result.time_to_first_token,
        "decode_tokens_per_s": result.decode_tokens_per_s,
        "total_time": result.total_time,
    }
    if result.cached_tokens is not None:  # engines that read the prompt themselves say how
        stats["cached_tokens"] = result.cached_tokens
        stats["prompt_tokens_per_s"] = result.prompt_tokens_per_s
    if result.error:
        stats["error"] = result.error
    if result.stop_sequence:
        stats["stop_sequence"] = result.stop_sequence
    if getattr(result, "reasoning_tokens", 0):
        stats["reasoning_tokens"] = result.reasoning_tokens
        stats["thinking_time"] = result.thinking_time
    return stats


def _meta(meta: dict[str, Any], reasoning: bool) -> dict[str, Any]:
    """A message's meta for an export: its reasoning only when asked for."""
    # a reply cut off mid-stream keeps its writer (aigc_chat.reply_owner): not the reader's business
    return {k: v for k, v in meta.items() if (reasoning or k != "reasoning") and k not in ("writer", "stop")}


def conversation_to_dict(conv: Conversation, reasoning: bool = False, *,
                         all_branches: bool = False) -> dict[str, Any]:
    """The current path's messages, or every message with `all_branches`; each says its
    `parent_id` and whether it is on the current path."""
    s = conv.summary
    on_path = {m.id for m in conv.messages}
    return {
        "id": s.id, "title": s.title, "model": s.model, "backend": s.backend,
        "created_at": s.created_at, "updated_at": s.updated_at, "settings": conv.settings,
        "current_leaf": conv.leaf_id, "branches": conv.branch_count,
        "messages": [
            {"id": m.id, "parent_id": m.parent_id, "on_path": m.id in on_path, "role": m.role,
             "content": m.content, "created_at": m.created_at,
             "finish_reason": m.finish_reason, "stats": m.stats, "kind": m.kind,
             "meta": _meta(m.meta, reasoning),
             "attachments": [{"name": f.name, "content": f.content} for f in m.attachments]}
            for m in (conv.all_messages if all_branches else conv.messages)
        ],
    }


def _path_to(by_id: dict[int, StoredMessage], leaf: int | None) -> list[StoredMessage]:
    """The messages from the top down to `leaf` (a cycle made by hand ends the walk)."""
    path: list[StoredMessage] = []
    seen: set[int] = set()
    node = by_id.get(leaf) if leaf is not None else None
    while node is not None and node.id not in seen:
        seen.add(node.id)
        path.append(node)
        node = by_id.get(node.parent_id) if node.parent_id is not None else None
    path.reverse()
    return path


def newest_under(messages: Sequence[StoredMessage], message_id: int | None) -> int | None:
    """The newest message in the subtree of `message_id` (ids grow: it is a leaf)."""
    if message_id is None:
        return None
    inside = {message_id}
    newest = message_id
    for m in messages:  # id order: a parent comes before its children
        if m.parent_id in inside:
            inside.add(m.id)
            newest = max(newest, m.id)
    return newest


def conversation_to_markdown(conv: Conversation, reasoning: bool = False) -> str:
    from aigc_chat.sanitize import one_line, sanitize

    # Titles and names (model, role, file) stay on their line: none can forge a heading.
    s = conv.summary
    lines = [f"# {one_line(s.title) or f'Conversation {s.id}'}", ""]
    facts = [f"conversation {s.id}", f"created {format_time(s.created_at)}"]
    if s.model:
        facts.append(f"model {one_line(s.model)}")
    if s.backend:
        facts.append(f"backend {one_line(s.backend)}")
    lines += ["_" + ", ".join(facts) + "_", ""]
    system = conv.settings.get("system_prompt") if isinstance(conv.settings, dict) else None
    if system:
        lines += ["## System", "", sanitize(str(system)), ""]
    for m in conv.messages:
        if m.kind == "summary":  # a compaction's summary: the model's, never the user's
            from aigc_chat.compaction import label

            lines += [f"## {one_line(label(m.meta))}", "", sanitize(m.content), ""]
            continue
        heading = one_line(m.role.capitalize())
        if m.kind != "text":
            heading += f" ({one_line(m.kind)})"
        elif m.role == "assistant" and isinstance(m.stats.get("model"), str) and m.stats["model"]:
            heading += f" ({one_line(short_model_name(m.stats['model']))})"
        if m.role == "assistant" and m.finish_reason not in (None, "stop"):
            heading += f" [{one_line(str(m.finish_reason))}]"
        elif m.role == "assistant" and m.finish_reason is None:
            heading += " [interrupted]"
        lines += [f"## {heading}", ""]
        for f in m.attachments:  # the files, as attached (sanitised like all shown text)
            from aigc_chat.attachments import fence

            body = sanitize(f.content)
            mark = fence(body)
            lines += [f"**File `{one_line(f.name)}`**", "", mark, body.rstrip("\n"), mark, ""]
        thought = m.meta.get("reasoning") if reasoning and m.role == "assistant" else None
        if isinstance(thought, str) and thought:
            quoted = "\n".join(f"> {line}" if line else ">" for line in sanitize(thought).splitlines())
            lines += ["**Reasoning**", "", quoted, ""]
        lines += [sanitize(m.content), ""]
        if m.kind != "text" and m.meta:
            lines += ["```json", json.dumps(_meta(m.meta, reasoning), ensure_ascii=True, sort_keys=True), "```", ""]
    return "\n".join(lines).rstrip("\n") + "\n"


def short_model_name(model: str) -> str:
    """A model path shortened to its file name, for headings and stats lines."""
    return model.rstrip("/").rsplit("/", 1)[-1] or model


def format_time(ts: float) -> str:
    return time.strftime("%Y-%m-%d %H:%M", time.localtime(ts))


def _one_line(text: str) -> str:
    return " ".join(str(text).split())


def _dump(value: dict | None) -> str:
    return json.dumps(value or {}, ensure_ascii=True, default=str)


def _load(text: str | None) -> dict:
    if not text:
        return {}
    try:
        value = json.loads(text)
    except (ValueError, RecursionError):  # another program's row: [[[[… nests past the stack
        return {}
    return value if isinstance(value, dict) else {}


def _split_sql(script: str) -> list[str]:
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
