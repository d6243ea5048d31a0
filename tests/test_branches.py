"""Conversations as trees: the tree itself, the conversation core on real SQLite, the
migration of a file the release before trees wrote (tests/fixtures), and the CLI's views."""

from __future__ import annotations

import json
import os
import shutil
import sqlite3
import time
from pathlib import Path

import pytest

from aigc_chat.chat_types import Message
from aigc_chat.config import Config
from aigc_chat.conversation import Conversation
from aigc_chat.errors import UsageError
from aigc_chat.history_service import HistoryService
from aigc_chat.history_store import HistoryStore, default_path
from aigc_chat.tree import MessageTree, Node
from tests.conftest import run_cli
from tests.scripted_backend import ScriptedBackend

FIXTURE = Path(__file__).parent / "fixtures" / "history-v3.sqlite3"


def make(pieces: list[str] | None = None, *, save: bool = True) -> Conversation:
    cfg = Config(path=Path(os.environ["AIGC_CHAT_CONFIG"]))
    conv = Conversation(cfg, HistoryService(HistoryStore()) if save else None)
    conv.attach_backend(ScriptedBackend(pieces or ["A"]))
    return conv


def reply(conv: Conversation, *pieces: str) -> None:
    conv.backend.pieces = list(pieces)  # type: ignore[union-attr]


def contents(conv: Conversation) -> list[str]:
    return [n.content for n in conv.path()]


def stored(cid: int | None = None, **kw: object):
    with HistoryStore(readonly=True) as s:
        return s.get_conversation(cid if cid is not None else s.latest_conversation_id(), **kw)


# -- the tree --------------------------------------------------------------------------------

def test_siblings_positions_and_the_newest_leaf_of_a_branch() -> None:
    t = MessageTree()
    q = t.add(Node("user", "q"), None)
    a1 = t.add(Node("assistant", "a1"), q)
    f1 = t.add(Node("user", "follow-up"), a1)
    a2 = t.add(Node("assistant", "a2"), q)
    assert t.position(a1) == (1, 2) and t.position(a2) == (2, 2) and t.position(q) == (1, 1)
    assert t.path() == [q, a2] and t.branch_count() == 2
    assert t.switch(a2, -1) is a1 and t.path() == [q, a1, f1]  # the branch as it was left
    assert t.switch(a1, -1) is None and t.path() == [q, a1, f1]  # past the first: nothing moves
    assert t.switch(a1, 1) is a2 and t.leaf is a2


def test_removing_a_failed_reply_shows_the_one_it_was_to_replace() -> None:
    t = MessageTree()
    q = t.add(Node("user", "q"), None)
    old = t.add(Node("assistant", "old"), q)
    failed = t.add(Node("assistant", ""), q)
    t.remove(failed)
    assert t.leaf is old and t.siblings(old) == [old]


# -- the core, on real SQLite ------------------------------------------------------------------

def test_regenerate_three_times_keeps_every_reply_and_moves_between_them() -> None:
    conv = make(["first"])
    conv.begin("send", "Name a colour.").consume()
    for text in ("second", "third", "fourth"):
        reply(conv, text)
        conv.begin("regenerate").consume()
    replies = conv.tree.siblings(conv.path()[-1])
    assert [r.content for r in replies] == ["first", "second", "third", "fourth"]
    assert conv.messages == [Message("user", "Name a colour."), Message("assistant", "fourth")]
    assert conv.switch(replies[-1], -1) is replies[2]
    assert conv.switch(replies[2], -1) is replies[1]
    assert contents(conv) == ["Name a colour.", "second"]
    conv.close()
    s = stored()
    assert [m.content for m in s.messages] == ["Name a colour.", "second"]  # the switch is remembered
    assert sorted(m.content for m in s.all_messages if m.role == "assistant") == ["first", "fourth", "second", "third"]
    assert {m.parent_id for m in s.all_messages if m.role == "assistant"} == {s.messages[0].id}


def test_the_prompt_after_a_switch_is_exactly_the_branch_shown() -> None:
    conv = make(["A1"])
    conv.begin("send", "Q1").consume()
    reply(conv, "A1b")
    conv.begin("regenerate").consume()
    conv.switch(conv.path()[-1], -1)  # back to A1
    reply(conv, "A2")
    conv.begin("send", "Q2").consume()
    assert conv.backend.seen[-1] == [Message("user", "Q1"), Message("assistant", "A1"),  # type: ignore[union-attr]
                                     Message("user", "Q2")]
    conv.close()
    s = stored()
    assert [m.content for m in s.messages] == ["Q1", "A1", "Q2", "A2"]
    by_id = {m.id: m for m in s.all_messages}
    assert by_id[s.messages[2].parent_id].content == "A1"  # the question follows the reply it was asked after


def test_edit_the_second_of_five_questions_and_move_between_the_two_branches() -> None:
    conv = make()
    for i in range(1, 6):
        reply(conv, f"A{i}")
        conv.begin("send", f"Q{i}").consume()
    q2 = next(n for n in conv.path() if n.content == "Q2")
    reply(conv, "A2b")
    turn = conv.begin("edit", "Q2b", target=q2)
    turn.consume()
    assert contents(conv) == ["Q1", "A1", "Q2b", "A2b"]
    assert conv.backend.seen[-1][-1] == Message("user", "Q2b")  # type: ignore[union-attr]
    assert conv.tree.position(turn.user_node) == (2, 2)
    assert conv.switch(turn.user_node, -1) is q2
    assert contents(conv) == ["Q1", "A1", "Q2", "A2", "Q3", "A3", "Q4", "A4", "Q5", "A5"]
    conv.close()
    s = stored()
    assert len(s.all_messages) == 12 and s.branch_count == 2
    assert [m.content for m in s.messages][-1] == "A5"
    assert [m.content for m in stored(at=s.all_messages[-1].id).messages] == ["Q1", "A1", "Q2b", "A2b"]


def test_an_edit_keeps_the_files_of_the_question_it_replaces() -> None:
    from aigc_chat.attachments import Attachment

    conv = make()
    conv.begin("send", "read it", [Attachment("notes.txt", "alpha\n")]).consume()
    turn = conv.begin("edit", "read it again")
    assert turn.user_node.files == (Attachment("notes.txt", "alpha\n"),)
    turn.consume()
    conv.close()
    assert [f.name for f in stored().messages[0].attachments] == ["notes.txt"]


def test_only_a_question_on_the_path_can_be_edited() -> None:
    conv = make(save=False)
    conv.begin("send", "Q1").consume()
    answer = conv.path()[-1]
    with pytest.raises(UsageError, match="only a question"):
        conv.begin("edit", "x", target=answer)
    with pytest.raises(UsageError, match="empty message"):
        conv.begin("edit", "  ")
    assert contents(conv) == ["Q1", "A"]


def test_a_failed_regenerate_leaves_the_old_reply_shown_and_stored() -> None:
    conv = make(["good"])
    conv.begin("send", "q").consume()
    conv.backend.fail_after = 0  # type: ignore[union-attr]
    turn = conv.begin("regenerate")
    assert turn.consume().finish_reason == "error"
    assert contents(conv) == ["q", "good"] and conv.tree.branch_count() == 1
    conv.close()
    s = stored()
    assert [m.content for m in s.messages] == ["q", "good"] and len(s.all_messages) == 2


def test_fork_copies_the_path_up_to_a_message_into_a_new_conversation() -> None:
    conv = make()
    for i in range(1, 4):
        reply(conv, f"A{i}")
        conv.begin("send", f"Q{i}").consume()
    original = conv.wait_for_id()
    a2 = next(n for n in conv.path() if n.content == "A2")
    new_id = conv.fork(a2).result(timeout=10)  # type: ignore[union-attr]
    assert new_id != original
    forked = stored(new_id)
    assert [m.content for m in forked.messages] == ["Q1", "A1", "Q2", "A2"]
    assert forked.summary.title == "Q1 (fork)"
    assert [m.content for m in stored(original).messages][-1] == "A3"  # untouched
    conv.load(forked)  # carry on in the fork
    reply(conv, "A3 in the fork")
    conv.begin("send", "Q3 again").consume()
    conv.close()
    assert [m.content for m in stored(new_id).messages][-2:] == ["Q3 again", "A3 in the fork"]
    assert len(stored(original).all_messages) == 6


def test_fork_without_history_copies_in_memory() -> None:
    conv = make(save=False)
    conv.begin("send", "Q1").consume()
    conv.begin("send", "Q2").consume()
    assert conv.fork(conv.path()[1]) is None
    assert contents(conv) == ["Q1", "A"] and conv.conversation_ref is None


def test_a_search_hit_in_a_side_branch_opens_that_branch() -> None:
    conv = make(["plain answer"])
    conv.begin("send", "tell me about herons").consume()
    reply(conv, "herons stand in flamingo poses")
    conv.begin("regenerate").consume()
    conv.switch(conv.path()[-1], -1)  # the flamingo reply is now a side branch
    conv.close()
    with HistoryStore() as s:
        (hit,) = s.search("flamingo")
        opened = s.get_conversation(hit.conversation_id, at=hit.message_id)
        assert opened.messages[-1].content == "herons stand in flamingo poses"
        assert s.get_conversation(hit.conversation_id).messages[-1].content == "plain answer"


def test_a_message_of_another_conversation_cannot_be_a_parent() -> None:
    with HistoryStore() as s:
        a, b = s.create_conversation("a"), s.create_conversation("b")
        m = s.add_message(a, "user", "hi")
        with pytest.raises(UsageError, match="has no message"):
            s.add_message(b, "assistant", "x", parent=m)
        with pytest.raises(UsageError, match="has no message"):
            s.set_current_leaf(b, m)
        with pytest.raises(UsageError, match="has no message"):
            s.get_conversation(b, at=m)


# -- the migration -----------------------------------------------------------------------------

def _rows(path: Path) -> dict[str, list[tuple]]:
    db = sqlite3.connect(path)
    try:
        return {t: db.execute(f"SELECT * FROM {t} ORDER BY 1").fetchall()
                for t in ("conversations", "messages", "attachments", "blobs")}
    finally:
        db.close()


def test_the_file_of_the_release_before_trees_is_upgraded_in_place_losing_nothing() -> None:
    path = default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    shutil.copyfile(FIXTURE, path)
    before = _rows(path)
    with HistoryStore() as s:
        assert s.connection.execute("PRAGMA user_version").fetchone()[0] == 5
        after = _rows(path)
        for table, rows in before.items():  # every row, every column as it was (new columns at the end)
            assert [r[: len(rows[0])] for r in after[table]] == rows, table
        first = s.get_conversation(1)
        assert [m.content for m in first.messages] == [r[3] for r in before["messages"] if r[1] == 1]
        assert [m.parent_id for m in first.messages] == [None, 1, 2, 3, 4, 5]
        assert first.leaf_id == 6 and first.branch_count == 1
        assert first.messages[2].attachments[0].content == "line one\nline two\n"
        assert first.messages[3].meta == {"reasoning": "The file has two lines."}
        assert s.get_conversation(2).messages[1].kind == "gan"
        assert [h.message_id for h in s.search("capital")] == [1]
        assert [h.message_id for h in s.search("line two")] == [3]  # in the attached file
        # and it grows branches from there
        alt = s.add_message(1, "assistant", "Paris heißt Paris.", parent=5)
        assert [m.id for m in s.get_conversation(1).messages] == [1, 2, 3, 4, 5, alt]
        assert s.get_conversation(1).branch_count == 2


def test_a_large_old_file_is_upgraded_quickly_and_exactly() -> None:
    """50,000 messages in 2,000 conversations written in the old layout (interleaved, as
    several front ends write them): each message's parent is the one before it in its own
    conversation."""
    from aigc_chat.history_schema import MIGRATIONS

    path = default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    db = sqlite3.connect(path)
    for step in range(3):
        MIGRATIONS[step](db)
    db.execute("PRAGMA user_version = 3")
    db.executemany("INSERT INTO conversations VALUES (?, ?, '', '', '{}', 0, 0)",
                   [(c, f"c{c}") for c in range(1, 2001)])
    db.executemany("INSERT INTO messages (id, conversation_id, role, content, created_at) VALUES (?, ?, ?, ?, 0)",
                   [(i, 1 + i % 2000, "user" if (i // 2000) % 2 == 0 else "assistant", f"word{i}")
                    for i in range(1, 50_001)])
    db.commit()
    db.close()
    t0 = time.perf_counter()
    with HistoryStore() as s:
        took = time.perf_counter() - t0
        conv = s.get_conversation(7)
        ids = [m.id for m in conv.messages]
        assert ids == list(range(6, 50_001, 2000)) and len(ids) == 25
        assert [m.parent_id for m in conv.messages] == [None, *ids[:-1]]
        assert s.connection.execute("SELECT count(*) FROM messages WHERE parent_id IS NULL").fetchone()[0] == 2000
        assert [h.message_id for h in s.search("word49999")] == [49_999]
    print(f"migrated 50,000 messages in {took:.2f} s")


# -- the CLI -------------------------------------------------------------------------------------

def _branchy_store() -> int:
    """Q1 → {A1 → Q2 → A2, A1b}; the current path ends at A1b."""
    with HistoryStore() as s:
        cid = s.create_conversation("branchy")
        q1 = s.add_message(cid, "user", "Q1 \x1b[31mred")
        a1 = s.add_message(cid, "assistant", "A1", finish_reason="stop")
        s.add_message(cid, "user", "Q2")
        s.add_message(cid, "assistant", "A2", finish_reason="stop")
        s.add_message(cid, "assistant", "A1b", finish_reason="stop", parent=q1)
        assert a1
        return cid


def test_history_show_prints_the_path_and_where_alternatives_are(cli: str) -> None:
    cid = _branchy_store()
    r = run_cli(cli, "history", "show", str(cid))
    assert r.returncode == 0, r.stderr
    assert "2 branches" in r.stdout and "A1b" in r.stdout and "Q2" not in r.stdout
    assert "alternative 2 of 2 (others: #2)" in r.stdout and "\x1b" not in r.stdout
    r = run_cli(cli, "history", "show", str(cid), "--at", "4")
    assert "A2" in r.stdout and "A1b" not in r.stdout


def test_history_show_tree_draws_every_branch(cli: str) -> None:
    cid = _branchy_store()
    r = run_cli(cli, "history", "show", str(cid), "--tree")
    assert r.returncode == 0, r.stderr
    lines = r.stdout.splitlines()[2:]
    assert lines == [
        "● [user #1] Q1 red",
        "├─○ [assistant #2] A1",
        "│ ○ [user #3] Q2",
        "│ ○ [assistant #4] A2",
        "└─● [assistant #5] A1b",
    ]


def test_history_show_json_and_export_all_branches(cli: str, tmp_path: Path) -> None:
    cid = _branchy_store()
    r = run_cli(cli, "history", "show", str(cid), "--json")
    data = json.loads(r.stdout)
    assert [(m["id"], m["parent_id"], m["on_path"]) for m in data["messages"]] == [
        (1, None, True), (2, 1, False), (3, 2, False), (4, 3, False), (5, 1, True)]
    assert data["messages"][0]["content"] == "Q1 \x1b[31mred"  # exact: JSON escapes it
    path = json.loads(run_cli(cli, "history", "export", str(cid), "-f", "json").stdout)
    assert [m["content"] for m in path["messages"]] == ["Q1 \x1b[31mred", "A1b"]
    every = json.loads(run_cli(cli, "history", "export", str(cid), "-f", "json", "--all-branches").stdout)
    assert len(every["messages"]) == 5 and every["current_leaf"] == 5
    md = run_cli(cli, "history", "export", str(cid))
    assert "A1b" in md.stdout and "A2" not in md.stdout
    bad = run_cli(cli, "history", "export", str(cid), "--all-branches")
    assert bad.returncode == 2 and bad.stderr.count("\n") == 1 and "needs --format json" in bad.stderr


@pytest.mark.parametrize("argv,why", [
    (["--regenerate"], "needs the conversation"),
    (["--regenerate", "--continue", "--prompt", "x"], "takes no --prompt"),
    (["--regenerate", "--conversation", "1", "--no-history"], "not with --no-history"),
    (["--regenerate", "--conversation", "99"], "no conversation 99"),
])
def test_regenerate_refuses_what_it_cannot_do_in_one_line(cli: str, argv: list[str], why: str) -> None:
    with HistoryStore() as s:
        s.create_conversation("x")
    r = run_cli(cli, *argv)
    assert r.returncode == 2 and why in r.stderr and r.stderr.count("\n") == 1 and r.stdout == ""


@pytest.mark.slow
def test_regenerate_from_the_command_line_on_the_default_model(cli: str, default_path: Path) -> None:
    fast = ("--temperature", "0.9", "--seed", "1", "--max-tokens", "12")
    r = run_cli(cli, "--prompt", "Name a colour.", *fast)
    assert r.returncode == 0, r.stderr
    cid = stored().summary.id
    r = run_cli(cli, "--conversation", str(cid), "--regenerate", "--seed", "2", "--temperature", "0.9",
                "--max-tokens", "12")
    assert r.returncode == 0, r.stderr
    s = stored(cid)
    replies = [m for m in s.all_messages if m.role == "assistant"]
    assert len(replies) == 2 and replies[0].parent_id == replies[1].parent_id == s.messages[0].id
    assert s.messages[-1].id == replies[1].id  # the new reply is the current path
    assert r.stdout.strip() == s.messages[-1].content.strip()
    r = run_cli(cli, "--continue", "--prompt", "Another one.", *fast)
    assert r.returncode == 0
    s = stored(cid)
    assert s.messages[-2].parent_id == replies[1].id  # --continue follows the current leaf


# -- found in review ---------------------------------------------------------------------------

def test_regenerate_after_inline_samples_answers_the_question_beside_the_old_reply() -> None:
    conv = make(["R1"])
    conv.begin("send", "Q").consume()
    conv.add_item("assistant", "GAN samples", "gan", {"seed": 1})
    reply(conv, "R2")
    turn = conv.begin("regenerate")
    turn.consume()
    assert conv.backend.seen[-1] == [Message("user", "Q")]  # type: ignore[union-attr]  # never the old reply
    r1 = conv.tree.roots[0].children[0]
    assert conv.tree.siblings(turn.reply_node) == [r1, turn.reply_node] and contents(conv) == ["Q", "R2"]
    conv.close()
    s = stored()
    assert [m.content for m in s.messages] == ["Q", "R2"]
    assert {m.parent_id for m in s.all_messages if m.kind == "text" and m.role == "assistant"} == {s.messages[0].id}


def test_a_failed_regenerate_after_moving_back_shows_the_reply_moved_back_to() -> None:
    conv = make(["R1"])
    conv.begin("send", "Q").consume()
    reply(conv, "R2")
    conv.begin("regenerate").consume()
    conv.switch(conv.path()[-1], -1)  # back to R1
    conv.backend.fail_after = 0  # type: ignore[union-attr]
    assert conv.begin("regenerate").consume().finish_reason == "error"
    assert contents(conv) == ["Q", "R1"]  # not R2, the newest sibling
    conv.close()
    assert [m.content for m in stored().messages] == ["Q", "R1"]


def test_a_search_hit_on_the_path_shown_keeps_that_path() -> None:
    with HistoryStore() as s:
        cid = s.create_conversation("t")
        q1 = s.add_message(cid, "user", "herons at dawn")
        s.add_message(cid, "assistant", "R1")
        q2 = s.add_message(cid, "user", "Q2")
        r2 = s.add_message(cid, "assistant", "R2")
        s.add_message(cid, "assistant", "R2b", parent=q2)
        s.set_current_leaf(cid, r2)
        assert [m.id for m in s.get_conversation(cid, at=q1).messages][-1] == r2  # not R2b, the newest
        side = s.get_conversation(cid, at=r2 + 1).messages[-1]
        assert side.content == "R2b"  # a hit off the path opens its branch


def test_an_empty_interrupted_reply_stays_marked_and_only_a_live_one_streams() -> None:
    from aigc_chat.tui.chat_view import message_widget

    old = message_widget(Node("assistant", "", finish_reason=None))  # a v3 row: no stats, killed at once
    assert old.finish_reason == "interrupted"  # type: ignore[attr-defined]
    live = message_widget(Node("assistant", "", live=True))
    assert live.finish_reason is None  # type: ignore[attr-defined]
