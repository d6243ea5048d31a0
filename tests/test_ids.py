"""aigc_chat.ids: a stored id, or the history writer's Future of one, read one way per thread."""

from __future__ import annotations

import threading
from concurrent.futures import Future

import pytest

from aigc_chat import ids
from aigc_chat.errors import UsageError
from aigc_chat.history import HistoryError
from aigc_chat.history_writer import HistoryWriter, QueuedStore
from aigc_chat.tree import MessageTree, Node


def _failed(exc: BaseException) -> Future[int]:
    fut: Future[int] = Future()
    fut.set_exception(exc)
    return fut


def test_known_never_waits() -> None:
    pending: Future[int] = Future()
    assert ids.known(pending) is None and ids.known(7) == 7 and ids.known(None) is None
    pending.set_result(3)
    assert ids.known(pending) == 3
    assert ids.known(_failed(HistoryError("disk full"))) is None
    cancelled: Future[int] = Future()
    cancelled.cancel()
    assert ids.known(cancelled) is None
    assert ids.known(True) is None  # type: ignore[arg-type]  # not an id, whatever Python thinks


def test_resolve_is_the_writers_view() -> None:
    done: Future[int] = Future()
    done.set_result(5)
    assert ids.resolve(done) == 5 and ids.resolve("title") == "title" and ids.resolve(None) is None
    with pytest.raises(HistoryError, match="disk full"):
        ids.resolve(_failed(HistoryError("disk full")))


def test_settled_is_a_readable_error_on_the_reader() -> None:
    done: Future[int] = Future()
    done.set_result(9)
    assert ids.settled(done) == 9 and ids.settled(4) == 4
    with pytest.raises(UsageError, match="not saved yet"):
        ids.settled(Future())
    with pytest.raises(UsageError, match=r"was not saved \(disk full\)"):
        ids.settled(_failed(HistoryError("disk full")))
    cancelled: Future[int] = Future()
    cancelled.cancel()
    with pytest.raises(UsageError, match="was not saved"):  # the old reader raised CancelledError here
        ids.settled(cancelled)


def test_wait_gives_the_writer_time_and_no_more() -> None:
    pending: Future[int] = Future()
    threading.Timer(0.05, pending.set_result, (11,)).start()
    assert ids.wait(pending, 10) == 11
    assert ids.wait(Future(), 0.01) is None  # never made: no id, no hang
    assert ids.wait(_failed(HistoryError("x")), 1) is None and ids.wait(None, 1) is None and ids.wait(2, 1) == 2


def test_part_splits_one_job_into_two_ids() -> None:
    pair: Future[tuple[int, int]] = Future()
    first, second = ids.part(pair, 0), ids.part(pair, 1)
    assert ids.known(first) is None
    pair.set_result((3, 40))
    assert (ids.known(first), ids.known(second)) == (3, 40)
    failing: Future[tuple[int, int]] = Future()
    one = ids.part(failing, 0)
    failing.set_exception(HistoryError("locked"))
    assert ids.known(one) is None and isinstance(one.exception(), HistoryError)


def test_the_real_writer_makes_the_ids_the_tree_finds(tmp_path) -> None:
    """The ids a real writer makes (SQLite rowids) are what every reader sees; the tree finds
    a node by the id once it is made, never by a Future still pending."""
    from aigc_chat.history_store import HistoryStore

    store = HistoryStore(tmp_path / "h.db")
    writer = HistoryWriter(store)
    queued = QueuedStore(writer)
    cid = queued.create_conversation("t")
    mid = queued.add_message(cid, "user", "hi")  # a Future argument: the writer resolves it
    tree = MessageTree()
    node = tree.add(Node("user", "hi", ref=mid), None)
    assert writer.close(10)
    assert isinstance(ids.known(cid), int) and tree.find(ids.known(mid) or -1) is node
    assert ids.settled(mid) == ids.known(mid)
    store.close()
