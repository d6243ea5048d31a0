"""One-shot runs and the history, on the real default model through the installed command:
saving, --continue / --conversation, --no-history, broken stores, and a killed run."""

from __future__ import annotations

import json
import os
import resource
import signal
import subprocess
import threading
import time

import pytest

from aigc_chat.history_store import HistoryStore, default_path
from aigc_chat.sanitize import sanitize
from tests.conftest import run_cli
from tests.history_peek import last_reply
from tests.waiting import poll_until

FAST = ("--temperature", "0", "--max-tokens", "8")
pytestmark = pytest.mark.slow


@pytest.fixture(autouse=True)
def _model(default_path):
    return default_path


def _conversations() -> list:
    with HistoryStore() as s:
        return [s.get_conversation(c.id) for c in s.list_conversations()]


def test_a_oneshot_run_is_saved_and_can_be_continued(cli, default_path):
    r = run_cli(cli, "--prompt", "My name is Ada. Say hello.", *FAST)
    assert r.returncode == 0 and r.stderr == ""
    (conv,) = _conversations()
    user, reply = conv.messages
    assert (user.role, user.content, user.finish_reason) == ("user", "My name is Ada. Say hello.", None)
    assert reply.role == "assistant" and sanitize(reply.content).strip() == r.stdout.strip()
    assert reply.finish_reason in ("stop", "length") and reply.stats["completion_tokens"] > 0
    # The question was written first, before its reply's row (made as the turn began, before
    # the engine started: in both front ends).
    assert user.id < reply.id and user.created_at <= reply.created_at
    assert conv.summary.title == "My name is Ada. Say hello." and conv.summary.backend == "llama"
    # listed under the model that answered; its settings say "the default model" (""), so a
    # continued conversation uses whatever the default is then, in both front ends
    assert conv.summary.model == str(default_path) and reply.stats["model"] == str(default_path)
    assert conv.settings["generation"]["max_tokens"] == 8 and conv.settings["model"] == ""
    first_prompt = reply.stats["prompt_tokens"]

    r = run_cli(cli, "--prompt", "Something else.", *FAST)  # a second, newer conversation
    assert r.returncode == 0
    r = run_cli(cli, "--continue", "--prompt", "And then?", *FAST)
    assert r.returncode == 0 and r.stderr == ""
    convs = _conversations()
    assert [len(c.messages) for c in convs] == [4, 2]  # the latest one was continued
    assert convs[0].messages[2].content == "And then?"

    r = run_cli(cli, "--conversation", str(conv.summary.id), "--prompt", "What is my name?", *FAST)
    assert r.returncode == 0
    ada = next(c for c in _conversations() if c.summary.id == conv.summary.id)
    assert [m.content for m in ada.messages][:3] == [
        "My name is Ada. Say hello.", reply.content, "What is my name?"]
    # The earlier turns were really sent: the prompt grew by more than the new question.
    assert ada.messages[3].stats["prompt_tokens"] > first_prompt + 5

    for bad, why in (("999", "no conversation 999"), ("abc", "expected a conversation id")):
        r = run_cli(cli, "--conversation", bad, "--prompt", "hi", *FAST)
        assert r.returncode == 2 and r.stderr.count("\n") == 1 and why in r.stderr
    assert sum(len(c.messages) for c in _conversations()) == 8


def test_no_history_saves_nothing(cli):
    r = run_cli(cli, "--no-history", "--prompt", "Say hello.", *FAST)
    assert r.returncode == 0 and r.stdout.strip()
    assert not default_path().exists()
    r = run_cli(cli, "--continue", "--prompt", "Say hello.", *FAST)  # nothing to continue yet
    assert r.returncode == 0 and "no saved conversation to continue" in r.stderr
    (conv,) = _conversations()
    # --continue --no-history: the earlier turns are sent, nothing new is written.
    alone = json.loads(run_cli(cli, "--no-history", "--prompt", "Say hi.", *FAST, "--json").stdout)
    cont = json.loads(run_cli(cli, "--no-history", "--continue", "--prompt", "Say hi.", *FAST, "--json").stdout)
    assert cont["usage"]["prompt_tokens"] > alone["usage"]["prompt_tokens"] + 5
    assert [len(c.messages) for c in _conversations()] == [len(conv.messages)] == [2]


def test_a_broken_history_does_not_stop_the_answer(cli):
    path = default_path()
    path.parent.mkdir(parents=True)
    path.write_bytes(b"garbage" * 2000)
    r = run_cli(cli, "--prompt", "Say hello.", *FAST)
    assert r.returncode == 0 and r.stdout.strip()
    assert r.stderr.count("\n") == 1 and r.stderr.startswith("aigc-chat: warning:")
    assert "not saved" in r.stderr and "not a history database" in r.stderr
    # Continuing needs the history: answering without it would answer the wrong question.
    r = run_cli(cli, "--continue", "--prompt", "Say hello.", *FAST)
    assert r.returncode == 1 and r.stdout == "" and r.stderr.count("\n") == 1


def _limit_file_size(limit: int):
    def apply() -> None:
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)  # writes fail with EFBIG instead
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
    return apply


def test_a_write_failure_during_the_run_warns_once_and_answers(cli):
    with HistoryStore() as s:  # an existing, healthy history
        old = s.create_conversation("old")
        s.add_message(old, "user", "kept")
    # Files may not grow past 72 KiB: the write-ahead log fills up for real after the first
    # commits (with SQLite 3.40: the question is saved, the reply's first write fails).
    r = subprocess.run([cli, "--prompt", "Write a poem about the sea.", "--temperature", "0",
                        "--max-tokens", "60"],
                       capture_output=True, text=True, timeout=300, stdin=subprocess.DEVNULL,
                       preexec_fn=_limit_file_size(72 * 1024))
    assert r.returncode == 0 and len(r.stdout.strip()) > 20
    assert r.stderr.count("\n") == 1 and "not saved to the history" in r.stderr, r.stderr
    convs = {c.summary.id: c for c in _conversations()}
    assert [m.content for m in convs.pop(old).messages] == ["kept"]  # old data intact
    for conv in convs.values():  # whatever was committed before the failure is whole
        assert [m.role for m in conv.messages] in ([], ["user"], ["user", "assistant"])
    with HistoryStore() as s:
        assert s.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        for table in ("messages_fts", "titles_fts"):
            s.connection.execute(f"INSERT INTO {table}({table}, rank) VALUES ('integrity-check', 1)")


def test_two_oneshot_runs_at_once_are_both_saved(cli, isolated_dirs):
    procs = [subprocess.Popen([cli, "--prompt", f"Say the word {w}.", *FAST], stdout=subprocess.PIPE,
                              stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
             for w in ("apple", "pear")]
    outs = [p.communicate(timeout=300) for p in procs]
    assert [p.returncode for p in procs] == [0, 0], outs
    convs = _conversations()
    assert sorted(c.messages[0].content for c in convs) == ["Say the word apple.", "Say the word pear."]
    assert all(len(c.messages) == 2 and c.messages[1].finish_reason for c in convs)


def test_a_killed_run_keeps_what_it_streamed(cli):
    prompt = "Write a very long story about a lighthouse keeper and a storm, in many paragraphs."
    proc = subprocess.Popen([cli, "--prompt", prompt, "--temperature", "0", "--max-tokens", "400"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, stdin=subprocess.DEVNULL)
    chunks: list[bytes] = []

    def reader() -> None:
        while True:
            data = os.read(proc.stdout.fileno(), 4096)
            if not data:
                return
            chunks.append(data)

    t = threading.Thread(target=reader, daemon=True)
    t.start()
    deadline = time.monotonic() + 240
    while len(b"".join(chunks)) < 40 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.02)
    seen_early = b"".join(chunks).decode("utf-8", errors="ignore")
    assert len(seen_early) >= 40, (proc.poll(), proc.stderr.read() if proc.poll() is not None else "")
    # the reply is written about once a second while it streams: wait until what was seen
    # early is on disk (not for a duration), then kill
    db = default_path()
    early = len(seen_early.rstrip())
    on_disk = poll_until(lambda: (r := last_reply(db)) and len(sanitize(r[0]).rstrip()) >= early, 120)
    assert on_disk, "the streaming reply was never written"
    assert proc.poll() is None, "the reply ended before the kill: make the prompt longer"
    seen_late = b"".join(chunks).decode("utf-8", errors="ignore")
    proc.send_signal(signal.SIGKILL)
    proc.wait(timeout=30)
    t.join(timeout=5)
    assert len(seen_late) > len(seen_early)  # it was still streaming when killed

    (conv,) = _conversations()
    user, reply = conv.messages
    assert user.content == prompt
    assert reply.finish_reason is None  # never finalised: the process died
    stored = sanitize(reply.content)
    assert stored.startswith(seen_early.rstrip()) and len(stored) >= len(seen_early.rstrip())
    assert seen_late.startswith(stored[: len(seen_early)])
    with HistoryStore() as s:
        assert s.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
        assert s.search(seen_early.split()[0])  # the streamed text is searchable
