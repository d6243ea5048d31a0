"""aigc_chat.reply_owner: who writes a reply, and a stop asked of it through the history."""

from __future__ import annotations

import os
import subprocess
import sys

from aigc_chat.chat_types import GenerationResult
from aigc_chat.history_recorder import ReplyRecorder
from aigc_chat.history_store import HistoryStore
from aigc_chat.reply_owner import live_writer, writer_meta


def test_a_live_writer_is_another_running_process_of_this_machine() -> None:
    child = subprocess.Popen([sys.executable, "-c", "import time; time.sleep(60)"])
    try:
        meta = writer_meta()
        meta["writer"]["pid"] = child.pid
        meta["writer"]["start"] = None  # not known: the pid alone decides
        assert live_writer(meta, None) == child.pid
        assert live_writer(meta, "stop") is None  # finished
        assert live_writer(writer_meta(), None) is None  # this process: not another writer
        reused = {"writer": {**meta["writer"], "start": -1}}  # the id now belongs to another program
        assert live_writer(reused, None) is None
        assert live_writer({"writer": {**meta["writer"], "host": "elsewhere"}}, None) is None
        assert live_writer({}, None) is None and live_writer({"writer": "x"}, None) is None
    finally:
        child.kill()
        child.wait()
    assert live_writer(meta, None) is None  # gone


def test_a_stop_asked_through_the_history_reaches_the_recorder() -> None:
    store = HistoryStore()
    cid = store.create_conversation("t")
    store.add_message(cid, "user", "hi")
    clock = [0.0]
    rec = ReplyRecorder(store, cid, interval=1.0, clock=lambda: clock[0])
    mid = rec.start()
    assert store.message_state(mid)[2]["writer"]["pid"] == os.getpid()
    assert not rec.check_stop()
    other = HistoryStore()  # another process's connection
    assert other.request_stop(mid)
    assert rec.check_stop()
    rec.finish(GenerationResult("so far", "cancelled"))
    text, reason, meta = other.message_state(mid)
    assert (text, reason, meta) == ("so far", "cancelled", {})
    assert not other.request_stop(mid)  # finished: nothing to stop
    other.close()
    store.close()
