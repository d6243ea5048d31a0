"""The history's writer thread (src/aigc_chat/history_writer.py) on real SQLite files: order, ids that
are Futures, read-your-writes, one failure reported once, and four processes at once."""

from __future__ import annotations

import subprocess
import sys
import threading
from concurrent.futures import Future
from pathlib import Path

import pytest

from aigc_chat.chat_types import GenerationResult
from aigc_chat.errors import UsageError
from aigc_chat.history import HistoryError
from aigc_chat.history_recorder import ReplyRecorder
from aigc_chat.history_store import HistoryStore
from aigc_chat.history_writer import HistoryWriter, NotSaved, QueuedStore, SerialThread
from tests.fake_clock import FakeClock
from tests.history_faults import LockHolder, fill_up


@pytest.fixture
def store(tmp_path: Path):
    s = HistoryStore(tmp_path / "history.sqlite3")
    yield s
    s.close()


def test_jobs_run_in_order_and_future_ids_resolve(store: HistoryStore) -> None:
    writer = HistoryWriter(store)
    q = QueuedStore(writer)
    conv = q.create_conversation("", model="m.gguf", backend="llama")
    user = q.add_message(conv, "user", "What is a pelican?")
    clock = FakeClock()
    rec = ReplyRecorder(q, conv, clock=clock)
    reply = rec.start()
    assert isinstance(conv, Future) and isinstance(reply, Future)
    rec.feed("A large")
    clock.advance(1.0)
    rec.feed("A large bird")  # a second later: written
    rec.feed("A large bird with")  # within the second: not yet
    rec.finish(GenerationResult("A large bird with a pouch.", "stop", completion_tokens=7))
    assert writer.close(10)
    cid = conv.result()
    got = store.get_conversation(cid)
    assert [(m.id, m.role, m.content) for m in got.messages] == [
        (user.result(), "user", "What is a pelican?"), (reply.result(), "assistant", "A large bird with a pouch.")]
    assert got.summary.title == "What is a pelican?"  # the first user message named it
    assert got.messages[1].finish_reason == "stop" and got.messages[1].stats["completion_tokens"] == 7


def test_the_recorder_through_the_writer_writes_at_most_once_per_interval(store: HistoryStore) -> None:
    writer = HistoryWriter(store)
    q = QueuedStore(writer)
    conv = q.create_conversation("t")
    clock = FakeClock()
    rec = ReplyRecorder(q, conv, clock=clock)
    rec.start()
    writes: list[str] = []
    original = HistoryStore.update_message

    def counting(self, message_id, content, **kw):
        writes.append(content)
        return original(self, message_id, content, **kw)

    HistoryStore.update_message = counting  # type: ignore[method-assign]
    try:
        text = ""
        for i in range(50):  # 50 deltas over 2.45 s of (fake) time
            text += f" w{i}"
            rec.feed(text)
            clock.advance(0.05)
        writer.wait()
        assert len(writes) == 2  # at 1.0 s and 2.0 s: at most one write a second
        stored = store.get_conversation(conv.result()).messages[0].content
        assert text.startswith(stored) and len(stored) >= len(" w0 w1") * 10  # ~1 s lost at most
    finally:
        HistoryStore.update_message = original  # type: ignore[method-assign]
        writer.close(10)


def test_another_thread_reads_what_was_queued(store: HistoryStore) -> None:
    """Read-your-writes: a read of the writer's store waits for the jobs queued before it."""
    writer = HistoryWriter(store)
    q = QueuedStore(writer)
    reading = threading.Event()
    writer.submit(lambda s: reading.wait(10))  # the writer is busy until the read has begun
    conv = q.create_conversation("queued")
    seen: list[list[str]] = []

    def read() -> None:
        reading.set()
        seen.append([c.title for c in store.list_conversations()])

    reader = threading.Thread(target=read)
    reader.start()
    reader.join(10)
    assert seen == [["queued"]] and conv.done()
    writer.close(10)


def test_a_locked_database_is_reported_once_and_later_saving_is_dropped(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    HistoryStore(path).close()
    store = HistoryStore(path, busy_timeout_ms=300)
    failures: list[HistoryError] = []
    writer = HistoryWriter(store, on_failure=failures.append)
    q = QueuedStore(writer)
    with LockHolder(path):
        conv = q.create_conversation("t")
        user = q.add_message(conv, "user", "hello")  # submitting never waits for the lock
        assert writer.pending() >= 1
        with pytest.raises(HistoryError, match="locked by another process"):
            conv.result(timeout=30)
        with pytest.raises(HistoryError):
            user.result(timeout=30)
        later = q.add_message(1, "user", "after the failure")
        with pytest.raises(NotSaved):
            later.result(timeout=30)
    assert len(failures) == 1 and failures[0].reason == "database is locked by another process"
    assert writer.failed
    # after the lock is gone the session still saves nothing: no half conversation
    q.add_message(1, "user", "x")
    assert writer.close(10)
    with HistoryStore(path) as s:
        assert s.list_conversations() == []
    store.close()


def test_a_full_database_is_reported_once(store: HistoryStore) -> None:
    fill_up(store)
    failures: list[HistoryError] = []
    writer = HistoryWriter(store, on_failure=failures.append)
    q = QueuedStore(writer)
    conv = q.create_conversation("hello")
    q.add_message(conv, "user", "hello")
    writer.wait()
    assert [f.reason for f in failures] == ["disk is full"]
    writer.close(10)


def test_actions_the_user_asked_for_report_their_own_errors(store: HistoryStore) -> None:
    failures: list[HistoryError] = []
    writer = HistoryWriter(store, on_failure=failures.append)
    bad = writer.submit(HistoryStore.rename, 999, "x", own_errors=True)
    with pytest.raises(UsageError, match="no conversation 999"):
        bad.result(timeout=10)
    assert failures == [] and not writer.failed  # saving goes on
    ok = QueuedStore(writer).create_conversation("fine")
    assert isinstance(ok.result(timeout=10), int)
    writer.close(10)


def test_close_gives_up_on_a_write_stuck_behind_a_lock(tmp_path: Path) -> None:
    path = tmp_path / "history.sqlite3"
    HistoryStore(path).close()
    store = HistoryStore(path, busy_timeout_ms=20_000)
    writer = HistoryWriter(store)
    with LockHolder(path):
        fut = QueuedStore(writer).create_conversation("stuck")
        assert writer.close(0.2) is False  # quitting does not wait out the busy timeout
        assert not fut.done()
    fut.result(timeout=30)  # the lock is gone: it lands after all
    store.close()


def test_serial_thread_runs_in_order() -> None:
    t = SerialThread("t")
    out: list[int] = []
    futs = [t.submit(out.append, i) for i in range(100)]
    assert t.wait(10) and out == list(range(100)) and all(f.done() for f in futs)
    assert t.close(10)
    assert isinstance(t.submit(out.append, 1).exception(), RuntimeError)


WRITER = """
import sys, time
from pathlib import Path
from aigc_chat.chat_types import GenerationResult
from aigc_chat.history_recorder import ReplyRecorder
from aigc_chat.history_store import HistoryStore
from aigc_chat.history_writer import HistoryWriter, QueuedStore
path, name, n, go = Path(sys.argv[1]), sys.argv[2], int(sys.argv[3]), Path(sys.argv[4])
while not go.exists():
    time.sleep(0.005)
store = HistoryStore(path)
failures = []
writer = HistoryWriter(store, on_failure=failures.append)
q = QueuedStore(writer)
conv = q.create_conversation(f"tui {name}")
for i in range(n):
    q.add_message(conv, "user", f"{name} question {i} token{name}")
    rec = ReplyRecorder(q, conv, interval=0.0)
    rec.start()
    rec.feed(f"{name} answer")
    rec.finish(GenerationResult(f"{name} answer {i}", "stop"))
    q.add_message(1, "assistant", f"{name} shared {i}")
assert writer.close(120), "the writer did not finish"
store.close()
print("failures", failures)
"""


def test_four_processes_writing_through_writers_lose_nothing(tmp_path: Path) -> None:
    path = tmp_path / "data" / "history.sqlite3"
    with HistoryStore(path) as s:
        assert s.create_conversation("shared") == 1
    go = tmp_path / "go"
    n = 60
    names = "ABCD"
    procs = [subprocess.Popen([sys.executable, "-c", WRITER, str(path), name, str(n), str(go)],
                              stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True) for name in names]
    go.touch()
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0] * 4, outs
    assert all(out.strip() == "failures []" for out, _ in outs), outs
    with HistoryStore(path) as s:
        convs = {c.title: c for c in s.list_conversations()}
        for name in names:
            conv = s.get_conversation(convs[f"tui {name}"].id)
            assert [m.content for m in conv.messages] == [
                text for i in range(n) for text in (f"{name} question {i} token{name}", f"{name} answer {i}")]
            assert all(m.finish_reason == "stop" for m in conv.messages if m.role == "assistant")
            assert len(s.search(f"token{name}", limit=1000)) == n
        shared = s.get_conversation(1).messages
        assert len(shared) == 4 * n
        for name in names:  # each process's rows arrive complete and in its own order
            assert [m.content for m in shared if m.content.startswith(name)] == [f"{name} shared {i}" for i in range(n)]
        for table in ("messages_fts", "titles_fts"):
            s.connection.execute(f"INSERT INTO {table}({table}, rank) VALUES ('integrity-check', 1)")
        assert s.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
