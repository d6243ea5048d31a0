"""End to end: the installed `aigc-chat` in a real terminal (tmux), on the real default model,
with a history that is locked by another process, corrupt, or read-only.

The answer must come and the keys must be taken while another process (a `sqlite3` shell)
holds the history's write lock; the status bar then says "history off" (after the store's
15 s busy timeout). A corrupt or read-only history does not stop the TUI from starting.
"""

from __future__ import annotations

import pytest

from aigc_chat.history_store import HistoryStore, default_path
from tests.history_faults import LockHolder, read_only
from tests.history_peek import last_reply
from tests.tmux_driver import Tmux, idle, status_line

pytestmark = [pytest.mark.slow]


def pane_text(screen: str) -> str:
    """The history pane's column (left of its edge), its wrapped lines joined: the pane is a
    quarter of the width, so its notes wrap."""
    return " ".join(" ".join(line.split("▕")[0].split()) for line in screen.splitlines() if "▕" in line)


def answered(screen: str) -> bool:
    return "tokens ·" in screen and idle(screen)


def test_a_locked_history_neither_blocks_the_answer_nor_the_keys(tmux: Tmux, cli: str) -> None:
    HistoryStore().close()  # an existing, healthy history
    tmux.start([cli])
    tmux.wait(idle, 120, "the model to load")
    with LockHolder(default_path()):
        tmux.text("Say hello.")
        tmux.keys("Enter")
        tmux.wait(lambda s: "Say hello." in s and "Assistant" in s, 30, "the message on screen")
        tmux.text("typed meanwhile")  # keys while the history's first write waits for the lock
        screen = tmux.wait(lambda s: answered(s) and "typed meanwhile" in s, 60,
                           "the reply and the typed keys while the lock is held")
        # all that before the history's write gave up waiting (its busy timeout is 15 s)
        assert "history off" not in status_line(screen)
        screen = tmux.wait(lambda s: "history off" in status_line(s), 60,
                           "the history-off marker after the busy timeout")
        assert "not saving: database is" in pane_text(screen) and idle(screen)
    tmux.keys("C-q")
    tmux.wait_exit()
    with HistoryStore() as s:
        assert s.list_conversations() == []  # nothing half-saved


def test_a_corrupt_history_starts_with_a_notice_and_answers(tmux: Tmux, cli: str) -> None:
    path = default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    garbage = b"definitely not sqlite\n" * 400
    path.write_bytes(garbage)
    tmux.start([cli])
    screen = tmux.wait(lambda s: "History is off" in s, 60, "the notice at the start")
    assert "not a history" in " ".join(screen.split()) or "history database" in screen
    screen = tmux.wait(idle, 120, "the model to load")
    assert "history off" in status_line(screen) and "history is off" in screen
    tmux.text("Say hello.")
    tmux.keys("Enter")
    tmux.wait(answered, 120, "the reply")
    tmux.keys("C-q")
    tmux.wait_exit()
    assert path.read_bytes() == garbage


def test_a_read_only_history_shows_the_pane_and_answers(tmux: Tmux, cli: str) -> None:
    with HistoryStore() as s:
        cid = s.create_conversation("Pelican questions")
        s.add_message(cid, "user", "How do pelicans fish?")
    with read_only(default_path().parent):
        tmux.start([cli])
        screen = tmux.wait(lambda s: idle(s) and "Pelican questions" in s, 120, "the pane")
        assert "not saving: the history" in pane_text(screen) and "history off" in status_line(screen)
        tmux.text("Say hello.")
        tmux.keys("Enter")
        tmux.wait(answered, 120, "the reply")
        tmux.keys("C-q")
        tmux.wait_exit()
    with HistoryStore() as s:
        assert [c.message_count for c in s.list_conversations()] == [1]


def test_kill_9_while_streaming_keeps_what_the_writer_saved(tmux: Tmux, cli: str, isolated_dirs) -> None:
    """The writer thread saves the streaming reply as it goes (about once a second): after a
    SIGKILL mid-reply, the file holds the question and a prefix of the reply, never finalised."""
    import os
    import signal

    from aigc_chat.sanitize import sanitize

    isolated_dirs["config"].write_text("[generation]\ntemperature = 0.0\nmax_tokens = 400\nseed = 3\n")
    path = default_path()
    tmux.start([cli])
    tmux.wait(idle, 120, "the model to load")
    prompt = "Write a very long story about a lighthouse keeper and a storm, in many paragraphs."
    tmux.text(prompt)
    tmux.keys("Enter")
    seen: list[str] = []

    def grew_twice(_screen: str) -> bool:
        got = last_reply(path)
        if got and got[0] and got[1] is None and (not seen or got[0] != seen[-1]):
            seen.append(got[0])
        return len(seen) >= 2

    tmux.wait(grew_twice, 120, "the streaming reply to be saved twice while it streams")
    pid = int(tmux.run("list-panes", "-t", "t", "-F", "#{pane_pid}").stdout.split()[0])
    os.kill(pid, signal.SIGKILL)
    tmux.wait_exit()
    with HistoryStore(path) as s:
        (conv,) = [s.get_conversation(c.id) for c in s.list_conversations()]
        user, reply = conv.messages
        assert user.content == prompt
        assert reply.finish_reason is None  # never finalised: the process died
        assert reply.content.startswith(seen[-1]) and len(sanitize(reply.content)) > 0
        assert s.connection.execute("PRAGMA integrity_check").fetchone()[0] == "ok"
