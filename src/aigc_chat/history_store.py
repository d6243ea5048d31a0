"""Saved conversations: one SQLite file in the data dir, shared safely by several processes.

Why SQLite and why these settings:
- WAL lets a TUI read the history while a one-shot run in another terminal writes to it;
  every write is a short `BEGIN IMMEDIATE` transaction, and `busy_timeout` makes the other
  process wait for it instead of failing, so two writers lose nothing.
- The layout and its upgrades are history_schema.py's: an older file is upgraded in place
  the first time a newer build opens it, a current one is not touched.
- Two external-content FTS5 indexes (messages, conversation titles) kept in step by
  triggers, so search never drifts from the rows, whatever front end wrote them.
- The file is created 0600 in a 0700 directory before SQLite opens it (SQLite gives its
  -wal and -shm files the same mode): conversations are nobody else's business.
- A history that cannot be written (a read-only file, directory or mount) can still be read:
  `HistoryStore(path, readonly=True)` opens it `mode=ro`, and, when even that fails because
  WAL's -shm file cannot be created next to it, `immutable=1` (no locks, no WAL: safe then,
  since no process can be writing a WAL file there either). `open_for_reading` tries the
  normal open first and falls back to that.
- Which path a conversation shows, and where a deleted message's replies go, are the tree's
  rules (aigc_chat.tree), applied to the rows: they exist once.

Every sqlite3 failure leaves this module as a `HistoryError` with one readable line. The
records it returns are in aigc_chat.history.
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
from contextlib import contextmanager
from pathlib import Path

from aigc_chat.errors import UsageError
from aigc_chat.history import (
    CURRENT,
    ConversationGone,
    ConversationSummary,
    HistoryError,
    SearchHit,
    StoredConversation,
    StoredFile,
    StoredMessage,
)
from aigc_chat.history_schema import SCHEMA_VERSION, refuse_newer, upgrade
from aigc_chat.labels import title_from

DB_NAME = "history.sqlite3"
BUSY_TIMEOUT_MS = 15_000
PREFIX_MIN = 3  # the FTS tables keep a 3-character prefix index (prefix='3')
SEARCH_WINDOW = 5000  # matches ranked per search, newest first (see _ranked)
SEARCH_MAX_WORDS = 32  # different words in one search (fts_query): more is refused, not slow
SEARCH_MAX_CHARS = 1000


def _inserted_id(cur: sqlite3.Cursor) -> int:
    """The id of the row `cur` just inserted. sqlite3 types lastrowid as optional, but every
    successful INSERT sets it; a None here would be a bug, and fails as int(None) did."""
    rowid = cur.lastrowid
    if rowid is None:
        raise TypeError("the INSERT returned no row id")
    return rowid


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
        upgrade(self._db(), self.path)

    def _refuse_newer(self, version: int) -> None:
        refuse_newer(self.path, version)

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

    def get_conversation(self, conversation_id: int, *, at: int | None = None) -> StoredConversation:
        """The conversation with every branch; the path shown ends at its current leaf, or,
        given `at` (a message of it, say a search hit), at the newest message under that one."""
        from aigc_chat.tree import MessageTree, Node  # not at import: `history list` needs no tree

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
        # the tree's rules: a current leaf never set (or a row removed by hand) shows the newest
        # message; `at` off the path shown shows the newest message under it
        tree = MessageTree.from_rows([Node(m.role, "", ref=m.id, seq=m.id) for m in every],  # the shape only
                                     {m.id: m.parent_id for m in every}, row[7])
        if at is not None:
            tree.show(next(n for n in tree.walk() if n.seq == at))
        path = [by_id[n.seq] for n in tree.path()]
        leaf = tree.leaf.seq if tree.leaf is not None else None
        summary = ConversationSummary(row[0], row[1], row[2], row[3], row[4], row[5], len(every))
        return StoredConversation(summary, _load(row[6]), path, every, leaf)

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
        """Remove one message (a failed reply that produced nothing): what followed it now
        follows its parent, and a path that ended at it ends at the newest message left under
        its parent (MessageTree.remove's rules, applied to the rows). A missing one is not an
        error."""
        from aigc_chat.tree import MessageTree, Node

        with self._write() as conn:
            row = conn.execute("SELECT conversation_id FROM messages WHERE id = ?", (message_id,)).fetchone()
            if row is None:
                return
            leaf = conn.execute("SELECT current_leaf FROM conversations WHERE id = ?", (row[0],)).fetchone()
            parent_of = dict(conn.execute("SELECT id, parent_id FROM messages WHERE conversation_id = ? ORDER BY id",
                                          (row[0],)).fetchall())
            nodes = {mid: Node("", "", ref=mid, seq=mid) for mid in parent_of}
            tree = MessageTree.from_rows(nodes.values(), parent_of, leaf[0] if leaf else None)
            node = nodes[message_id]
            tree.remove(node)
            conn.execute("UPDATE messages SET parent_id = ? WHERE parent_id = ?",
                         (node.parent.seq if node.parent is not None else None, message_id))
            conn.execute("DELETE FROM messages WHERE id = ?", (message_id,))
            if leaf is not None and leaf[0] == message_id:  # the path ended here
                conn.execute("UPDATE conversations SET current_leaf = ? WHERE id = ?",
                             (tree.leaf.seq if tree.leaf is not None else None, row[0]))

    # -- search ---------------------------------------------------------------------

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

