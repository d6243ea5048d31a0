"""Compaction as a branch (aigc_chat.compaction), on the conversation core with real SQLite and
the scripted backend: the tree it makes, what the model is sent, what is stored, and every
edge case the issue defines (a compaction of a compaction, a streaming reply, a transcript
that needs chunks, a message too big, an empty summary, a cancel, Ctrl-C, an engine failure)."""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

import pytest

from aigc_chat import compaction
from aigc_chat.attachments import Attachment
from aigc_chat.config import Config, load_config, save_config
from aigc_chat.conversation import Conversation
from aigc_chat.errors import AigcError, ConfigError, UsageError
from aigc_chat.history_export import conversation_to_dict, conversation_to_markdown
from aigc_chat.history_service import HistoryService
from aigc_chat.history_store import HistoryStore
from tests.conftest import run_cli
from tests.scripted_backend import ScriptedBackend

SUMMARY = "The user is Ada; she likes green."


def make(*, save: bool = True, ctx: int = 4096, on_overflow: str = "drop_oldest") -> Conversation:
    cfg = Config(path=Path(os.environ["AIGC_CHAT_CONFIG"]), on_overflow=on_overflow)
    conv = Conversation(cfg, HistoryService(HistoryStore()) if save else None)
    conv.attach_backend(ScriptedBackend(["x"], context_length=ctx))
    return conv


def say(conv: Conversation, *pieces: str) -> ScriptedBackend:
    backend = conv.backend
    assert isinstance(backend, ScriptedBackend)
    backend.pieces = list(pieces)
    return backend


def chat(conv: Conversation, n: int, files: dict[int, Attachment] | None = None) -> None:
    for i in range(1, n + 1):
        say(conv, f"answer {i}")
        f = (files or {}).get(i)
        conv.begin("send", f"question {i}", [f] if f else []).consume()


def stored(conv: Conversation):
    conv.history.writer.wait(10)  # type: ignore[union-attr]
    with HistoryStore(readonly=True) as s:
        return s.get_conversation(conv.wait_for_id())


# -- the tree, what is sent, what is stored --------------------------------------------------

def test_compaction_is_a_new_branch_at_the_root_and_the_original_stays() -> None:
    conv = make()
    chat(conv, 4)
    original = conv.path()
    backend = say(conv, SUMMARY)
    done = conv.compact(instructions="keep the colours")
    # what the summariser was sent: our prompt and the user's instructions, then the transcript
    # of exchanges 1-2 only (3-4 are kept as they are)
    asked = backend.seen[-1]
    assert asked[0].role == "system" and asked[0].content.startswith(compaction.SUMMARY_PROMPT)
    assert asked[0].content.endswith("The user also asks: keep the colours")
    assert "User: question 1" in asked[1].content and "Assistant: answer 2" in asked[1].content
    assert "question 3" not in asked[1].content
    # the tree: the summary is a new root, sibling of the original first question
    tree = conv.tree
    assert tree.roots == [original[0], done.summary]
    assert [(n.role, n.kind, n.content) for n in conv.path()] == [
        ("system", "summary", SUMMARY), ("user", "text", "question 3"), ("assistant", "text", "answer 3"),
        ("user", "text", "question 4"), ("assistant", "text", "answer 4")]
    assert tree.position(done.summary) == (2, 2)
    assert all(n in list(tree.walk()) for n in original)  # nothing removed
    assert done.meta["range"] == [1, 4] and done.meta["messages"] == 4 and done.meta["kept_exchanges"] == 2
    assert done.tokens_before is not None and done.tokens_after is not None
    assert done.meta["model"] == "scripted-model" and done.meta["instructions"] == "keep the colours"
    # the next turn sends the summary inside the one system message, then the kept exchanges
    say(conv, "ok")
    conv.begin("send", "question 5").consume()
    sent = backend.seen[-1]
    assert sent[0].role == "system" and compaction.SUMMARY_HEADER in sent[0].content and SUMMARY in sent[0].content
    assert [m.content for m in sent[1:]] == ["question 3", "answer 3", "question 4", "answer 4", "question 5"]
    assert backend.count_tokens(sent[:-1]) == done.tokens_after  # the figure is what is sent
    # alt+←: one step back is the original branch, as it was left
    assert conv.switch(done.summary, -1) is original[0]
    assert conv.path() == original
    # stored: the same tree; the summary's row is marked, with what it covers
    s = stored(conv)
    every = s.all_messages
    summary = next(m for m in every if m.kind == "summary")
    assert summary.role == "system" and summary.parent_id is None and summary.content == SUMMARY
    assert summary.meta["range"] == [1, 4] and summary.meta["ids"] == [every[0].id, every[3].id]
    assert summary.meta["tokens_before"] == done.tokens_before and summary.meta["from_leaf"] == every[7].id
    copies = [m for m in every if m.id > summary.id]
    assert [m.content for m in copies] == ["question 3", "answer 3", "question 4", "answer 4", "question 5", "ok"]
    assert copies[0].parent_id == summary.id and copies[1].stats.get("model") == "scripted-model"
    assert [m.content for m in s.messages][:2] == ["question 1", "answer 1"]  # current leaf: the original


def test_reasoning_is_never_summarised_and_files_are_named_not_pasted() -> None:
    conv = make()
    say(conv, "<think>SECRET-THOUGHT</think>visible answer")
    conv.begin("send", "first", [Attachment("notes.txt", "FILE-BODY\nline two\n")]).consume()
    assert conv.path()[1].meta.get("reasoning")  # the engine split it off
    chat(conv, 2)
    backend = say(conv, SUMMARY)
    conv.compact()
    transcript = backend.seen[-1][1].content
    assert "SECRET-THOUGHT" not in transcript and "visible answer" in transcript
    assert "FILE-BODY" not in transcript and "[attached file: notes.txt, 2 lines, not shown]" in transcript


def test_a_kept_exchange_keeps_its_files_stored_once() -> None:
    conv = make()
    big = Attachment("data.txt", "ONE-BLOB " * 50)
    chat(conv, 3, files={3: big})
    say(conv, SUMMARY)
    conv.compact(keep=1)
    copy = conv.path()[1]
    assert copy.files == (big,) or copy.files[0].text == big.text
    s = stored(conv)
    assert [f.name for f in s.messages[1].attachments] == ["data.txt"]
    with HistoryStore(readonly=True) as st:
        blobs = st._conn.execute("SELECT count(*) FROM blobs").fetchone()[0]
    assert blobs == 1


def test_compacting_a_compaction_summarises_the_summary_and_makes_another_root() -> None:
    conv = make()
    chat(conv, 4)
    say(conv, "first summary")
    first = conv.compact()
    chat(conv, 2)  # question 1..2 again, after the kept 3-4
    backend = say(conv, "second summary")
    second = conv.compact()
    transcript = backend.seen[-1][1].content
    assert transcript.index("[Summary of what came before]\nfirst summary") < transcript.index("User: question 3")
    assert len(conv.tree.roots) == 3 and conv.path()[0] is second.summary
    assert second.meta["compacts"] == first.summary.ref.result(5)
    assert second.meta["range"] == [1, 5]  # the first summary and exchanges 3 and 4 of its branch
    assert conv.messages[0].content.count("second summary") == 1 and "first summary" not in conv.messages[0].content


def test_in_memory_without_history_it_works_the_same() -> None:
    conv = make(save=False)
    chat(conv, 3)
    say(conv, SUMMARY)
    done = conv.compact(keep=0)
    assert conv.path() == [done.summary] and done.meta["ids"] is None
    assert conv.messages[0].role == "system"


# -- refused: nothing stored, the tree unchanged ---------------------------------------------

def _unchanged(conv: Conversation, before: list) -> None:
    assert conv.path() == before and len(conv.tree.roots) == 1
    s = stored(conv)
    assert not [m for m in s.all_messages if m.kind == "summary"]
    assert len(s.all_messages) == len(list(conv.tree.walk()))


def test_refused_while_a_reply_streams() -> None:
    conv = make()
    chat(conv, 3)
    say(conv, "streaming")
    turn = conv.begin("send", "question 4")
    with pytest.raises(UsageError, match="a reply is streaming"):
        conv.compact()
    turn.consume()


def test_nothing_to_compact_is_refused() -> None:
    conv = make()
    chat(conv, 2)
    with pytest.raises(UsageError, match="nothing to compact: this branch has 2 exchanges, and the last 2"):
        conv.compact()
    say(conv, SUMMARY)
    done = conv.compact(keep=1)
    with pytest.raises(UsageError, match="nothing to compact"):  # a summary alone is not worth one
        conv.compact(keep=1)
    assert conv.path()[0] is done.summary


def test_an_empty_summary_is_refused_and_nothing_is_stored() -> None:
    conv = make()
    chat(conv, 4)
    before = conv.path()
    say(conv, "  \n ")
    with pytest.raises(UsageError, match="empty summary"):
        conv.compact()
    _unchanged(conv, before)


def test_a_cancel_mid_summary_leaves_nothing() -> None:
    conv = make()
    chat(conv, 4)
    before = conv.path()
    cancel = threading.Event()

    def progress(chunk: int, chunks: int, size: int) -> None:
        if size:
            cancel.set()

    say(conv, "half ", "of ", "a ", "summary")
    with pytest.raises(compaction.CompactionCancelled):
        conv.compact(cancel=cancel, progress=progress)
    _unchanged(conv, before)


class _CtrlC(ScriptedBackend):
    """Ctrl-C arrives while the summary streams (the signal raises in the engine's loop)."""

    def _generate(self, messages, params, cancel):  # type: ignore[no-untyped-def]
        from aigc_chat.backends.base import EngineStart

        yield EngineStart(self.count_tokens(messages))
        yield "half a summary"
        raise KeyboardInterrupt


def test_ctrl_c_mid_summary_leaves_nothing() -> None:
    conv = make()
    chat(conv, 4)
    before = conv.path()
    conv.attach_backend(_CtrlC(["half a summary"]))
    with pytest.raises((compaction.CompactionCancelled, KeyboardInterrupt)):
        conv.compact()
    _unchanged(conv, before)


def test_an_engine_failure_leaves_nothing() -> None:
    conv = make()
    chat(conv, 4)
    before = conv.path()
    conv.attach_backend(ScriptedBackend(["part", "more"], fail_after=1))
    with pytest.raises(AigcError, match=r"compaction failed: .*engine exploded; nothing was changed"):
        conv.compact()
    _unchanged(conv, before)


# -- a transcript that does not fit ----------------------------------------------------------

def test_a_transcript_too_long_for_the_context_is_summarised_in_chunks() -> None:
    conv = make(ctx=300)
    for i in range(1, 9):
        say(conv, f"answer {i} " + "word " * 12)
        conv.begin("send", f"question {i} " + "word " * 12).consume()
    backend = say(conv, "rolling summary")
    calls = len(backend.seen)
    done = conv.compact()
    asks = backend.seen[calls:]
    assert done.chunks == len(asks) >= 2
    assert "[Summary of what came before]" not in asks[0][1].content
    assert all("[Summary of what came before]\nrolling summary" in a[1].content for a in asks[1:])
    assert all(backend.count_tokens(a) <= 300 - 75 for a in asks)  # each fits with room for the summary
    assert done.meta["chunks"] == done.chunks and "in " in done.line()


def test_a_message_too_big_even_alone_is_refused_with_numbers() -> None:
    conv = make(ctx=200)
    say(conv, "short")
    conv.begin("send", "huge " * 120).consume()
    chat(conv, 2)
    before = conv.path()
    with pytest.raises(UsageError, match=r"message 1 of the part to summarise needs \d+ tokens.*200 less 50"):
        conv.compact()
    _unchanged(conv, before)


# -- on_overflow --------------------------------------------------------------------------------

def _long(conv: Conversation, n: int) -> None:
    for i in range(1, n + 1):
        say(conv, f"answer {i} " + "word " * 10)
        conv.begin("send", f"question {i} " + "word " * 10).consume()


def test_on_overflow_drop_oldest_changes_nothing_before_a_send() -> None:
    conv = make(ctx=400)
    _long(conv, 12)
    assert conv.overflow("next") is not None
    assert conv.before_send("next") is None and len(conv.tree.roots) == 1


def test_on_overflow_refuse_says_the_numbers_and_stores_nothing() -> None:
    conv = make(ctx=400, on_overflow="refuse")
    _long(conv, 12)
    count = len(stored(conv).all_messages)
    with pytest.raises(UsageError, match=r"need [\d,]+ tokens and the context leaves 300 \(400 less"):
        conv.before_send("next")
    assert len(stored(conv).all_messages) == count


def test_on_overflow_compact_compacts_first_and_the_turn_then_fits() -> None:
    conv = make(ctx=400, on_overflow="compact")
    _long(conv, 12)
    why: list[tuple[int, int, int]] = []
    backend = say(conv, SUMMARY)
    done = conv.before_send("next", starting=why.append)
    assert done is not None and why and why[0][1] == 300
    say(conv, "fits")
    turn = conv.begin("send", "next")
    turn.consume()
    assert turn.plan is not None and turn.plan.dropped == 0
    assert backend.seen[-1][0].role == "system" and SUMMARY in backend.seen[-1][0].content
    assert conv.before_send("again") is None  # it fits now: no second compaction


def test_on_overflow_is_read_checked_and_kept_by_the_config(tmp_path: Path) -> None:
    path = tmp_path / "config.toml"
    path.write_text('[generation]\non_overflow = "compact"\ntemperature = 0.3\n')
    cfg = load_config(path, environ={})
    assert cfg.on_overflow == "compact" and cfg.generation.temperature == 0.3
    cfg.tui["theme"] = "nord"
    save_config(cfg)
    assert load_config(path, environ={}).on_overflow == "compact"
    path.write_text('[generation]\non_overflow = "truncate"\n')
    with pytest.raises(ConfigError, match=r"generation.on_overflow.*drop_oldest, compact, refuse"):
        load_config(path, environ={})


# -- shown as a summary, never as the user -------------------------------------------------

def test_exports_and_json_mark_the_summary(cli: str) -> None:
    conv = make()
    chat(conv, 3)
    say(conv, SUMMARY)
    conv.compact(keep=1)
    s = stored(conv)
    md = conversation_to_markdown(s)
    assert "## Summary of messages 1-4" in md and "## User\n\nquestion 1" not in md
    data = conversation_to_dict(s)
    first = data["messages"][0]
    assert first["role"] == "system" and first["kind"] == "summary" and first["meta"]["range"] == [1, 4]
    conv.close(10)
    out = run_cli(cli, "history", "show", str(s.summary.id), "--tree")
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert any(line.startswith("└─● [summary #") and "of messages 1-4" in line for line in lines), out.stdout
    assert any(line.startswith("├─○ [user #") for line in lines), out.stdout
    shown = run_cli(cli, "history", "show", str(s.summary.id))
    assert "[summary #" in shown.stdout and "[user" in shown.stdout
    as_json = json.loads(run_cli(cli, "history", "show", str(s.summary.id), "--json").stdout)
    assert [m["kind"] for m in as_json["messages"]].count("summary") == 1


def test_the_documented_summary_prompt_is_the_one_sent() -> None:
    doc = (Path(__file__).parent.parent / "docs" / "history.md").read_text(encoding="utf-8")
    assert compaction.SUMMARY_PROMPT in " ".join(doc.split())


def test_through_the_openai_backend_against_a_real_http_server(server) -> None:  # type: ignore[no-untyped-def]
    from tests.fault_server import chunk, openai_backend

    def chat(h, body) -> None:  # type: ignore[no-untyped-def]
        summarising = body["messages"][0]["content"].startswith(compaction.SUMMARY_PROMPT)
        h.sse([chunk(SUMMARY if summarising else "ok", "stop")])

    server.chat = chat
    conv = make()
    backend = openai_backend(server.url, "m1")
    backend.load()
    conv.attach_backend(backend)
    for i in range(1, 4):
        conv.begin("send", f"question {i}").consume()
    done = conv.compact(keep=1)
    asked = server.requests[-1]["messages"]
    assert [m["role"] for m in asked] == ["system", "user"] and "User: question 2" in asked[1]["content"]
    assert done.summary.content == SUMMARY and done.meta["model"] == "m1"
    conv.begin("send", "question 4").consume()
    sent = server.requests[-1]["messages"]
    assert sent[0]["role"] == "system" and SUMMARY in sent[0]["content"]
    assert [m["content"] for m in sent[1:]] == ["question 3", "ok", "question 4"]
    assert [m.kind for m in stored(conv).messages][:2] == ["summary", "text"]


def test_bad_input_to_compaction_is_one_line_and_exit_2(cli: str, tmp_path: Path) -> None:
    conv = make()
    chat(conv, 2)
    cid = conv.wait_for_id()
    conv.close(10)
    cases = [
        (("--compact", "-p", "hi"), "--compact needs the conversation: --conversation ID or --continue"),
        (("--continue", "--compact", "--no-history"), "--compact adds a branch to a saved conversation: not with "
                                                      "--no-history"),
        (("--continue", "--compact"), "nothing to compact: this branch has 2 exchanges, and the last 2"),
        (("history", "compact", str(cid)), "nothing to compact: this branch has 2 exchanges, and the last 2"),
        (("history", "compact", str(cid), "--keep", "-1"), "expected a number of exchanges, got '-1'"),
        (("history", "compact", "999"), "no conversation 999"),
    ]
    for args, line in cases:
        r = run_cli(cli, *args, timeout=60)
        assert r.returncode == 2 and line in r.stderr and r.stderr.count("\n") == 1, (args, r.stderr)
        assert "Traceback" not in r.stderr
    config = tmp_path / "config.toml"
    config.write_text('[generation]\non_overflow = "summarise"\n')
    r = run_cli(cli, "-p", "hi", env={"AIGC_CHAT_CONFIG": str(config)}, timeout=60)
    assert r.returncode == 2 and "generation.on_overflow: expected one of drop_oldest, compact, refuse" in r.stderr
