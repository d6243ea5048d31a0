"""Compaction through real llama.cpp and the installed CLI, on a chain GGUF whose every reply
(the summary included) is a fixed text, so the stored tree can be asserted exactly:
`aigc-chat history compact`, `--continue --compact`, `on_overflow = "compact"` and "refuse",
and `history show --tree` drawing it."""

from __future__ import annotations

import json
import os
from pathlib import Path
from typing import Any

import pytest

from aigc_chat.history_store import HistoryStore
from tests.conftest import run_cli
from tests.tiny_gguf import write_chain_gguf

WORDS = ["▁Ada", "▁likes", "▁green."]
TEXT = "Ada likes green."
REPLY = " " + TEXT  # a reply is stored as the model wrote it; a summary is stripped
FAST = ("--max-tokens", "8", "--temperature", "0")


@pytest.fixture(scope="module")
def chain(tmp_path_factory: pytest.TempPathFactory) -> Path:
    return write_chain_gguf(tmp_path_factory.mktemp("chain") / "chain.gguf", WORDS, extra=WORDS,
                            context_length=1024)


def tree():
    with HistoryStore(readonly=True) as s:
        return s.get_conversation(s.latest_conversation_id())


def ask(cli: str, chain: Path, text: str, *more: str) -> str:
    r = run_cli(cli, "--model", str(chain), "--continue", "--prompt", text, *FAST, *more, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() == TEXT
    return r.stderr


def test_history_compact_and_continue_compact_store_the_exact_tree(cli: str, chain: Path) -> None:
    for i in range(1, 5):
        ask(cli, chain, f"question {i}")
    cid = tree().summary.id
    r = run_cli(cli, "history", "compact", str(cid), "--keep", "1", "--instructions", "keep names",
                timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr.startswith(f"aigc-chat: conversation {cid}: compacted: messages 1-6 summarised, ")
    conv = tree()
    every = conv.all_messages
    summary = every[8]
    assert int(r.stdout) == summary.id
    # the original eight messages, untouched, then the new root: the summary and one kept exchange
    assert [(m.role, m.content, m.parent_id) for m in every[:8]] == [
        ("user", "question 1", None), ("assistant", REPLY, every[0].id),
        ("user", "question 2", every[1].id), ("assistant", REPLY, every[2].id),
        ("user", "question 3", every[3].id), ("assistant", REPLY, every[4].id),
        ("user", "question 4", every[5].id), ("assistant", REPLY, every[6].id)]
    assert (summary.role, summary.kind, summary.content, summary.parent_id) == ("system", "summary", TEXT, None)
    meta = summary.meta
    assert meta["range"] == [1, 6] and meta["ids"] == [every[0].id, every[5].id]
    assert meta["from_leaf"] == every[7].id and meta["kept_exchanges"] == 1 and meta["chunks"] == 1
    assert meta["instructions"] == "keep names" and meta["model"].endswith("chain.gguf")
    assert meta["tokens_before"] > meta["tokens_after"] > 0
    assert [(m.role, m.content, m.parent_id) for m in every[9:]] == [
        ("user", "question 4", summary.id), ("assistant", REPLY, every[9].id)]
    assert conv.leaf_id == every[10].id and conv.branch_count == 2
    # a turn after it is answered from the summary's branch
    ask(cli, chain, "question 5")
    conv = tree()
    assert [m.content for m in conv.messages] == [TEXT, "question 4", REPLY, "question 5", REPLY]
    # --continue --compact: a compaction of the compaction, then the answer, one line on stderr
    r = run_cli(cli, "--model", str(chain), "--continue", "--compact", *FAST, timeout=120)
    assert r.returncode == 2 and "nothing to compact: this branch has 2 exchanges after its summary" in r.stderr
    ask(cli, chain, "question 5b")
    err = ask(cli, chain, "question 6", "--compact")
    assert err.count("\n") == 1 and "compacted: messages 1-3 summarised" in err
    conv = tree()
    roots = [m for m in conv.all_messages if m.parent_id is None]
    assert [m.kind for m in roots] == ["text", "summary", "summary"]
    assert roots[2].meta["compacts"] == summary.id
    # --json: the compaction in the record, marked as a summary (never as the user's text)
    ask(cli, chain, "question 7")
    r = run_cli(cli, "--model", str(chain), "--continue", "--compact", "--json", timeout=120)
    assert r.returncode == 0, r.stderr
    record = json.loads(r.stdout)["compacted"]
    assert (record["kind"], record["role"], record["summary"]) == ("summary", "system", TEXT)
    assert record["range"] == [1, 5] and record["compacts"] == roots[2].id
    assert [m.content for m in conv.messages] == [TEXT, "question 5", REPLY, "question 5b", REPLY, "question 6", REPLY]
    drawn = run_cli(cli, "history", "show", str(cid), "--tree").stdout.splitlines()
    assert drawn[2].startswith("├─○ [user #") and drawn[2].endswith("question 1")
    assert any(line.startswith("├─○ [summary #") and "of messages 1-6" in line for line in drawn), drawn
    assert any(line.startswith("├─○ [summary #") and "of messages 1-3" in line for line in drawn), drawn
    assert any(line.startswith("└─● [summary #") and "of messages 1-5" in line for line in drawn), drawn


def test_on_overflow_compact_and_refuse_in_one_shot(cli: str, chain: Path, tmp_path: Path) -> None:
    config = tmp_path / "config.toml"
    for i in range(1, 9):
        ask(cli, chain, f"question {i} " + "and more words " * 6)
    count = len(tree().all_messages)
    env = {"AIGC_CHAT_CONFIG": str(config)}
    # 1,024 tokens of context, 64 kept for the reply: the conversation (a token per character
    # in this vocabulary) no longer fits, and its older part is summarised in chunks
    small = ("--max-tokens", "64", "--temperature", "0")
    config.write_text('[generation]\non_overflow = "refuse"\n[llama]\nn_ctx = 1024\n')
    r = run_cli(cli, "--model", str(chain), "--continue", "-p", "next", *small, env=env, timeout=120)
    assert r.returncode == 2 and r.stdout == ""
    assert r.stderr.startswith("aigc-chat: error: the conversation and this question need ")
    assert "nothing was sent" in r.stderr and len(tree().all_messages) == count
    config.write_text('[generation]\non_overflow = "compact"\n[llama]\nn_ctx = 1024\n')
    r = run_cli(cli, "--model", str(chain), "--continue", "-p", "next", *small, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert r.stderr.count("\n") == 1 and "the context leaves 960: compacted: messages 1-12 summarised in " in r.stderr
    conv = tree()
    assert conv.messages[0].kind == "summary" and [m.content for m in conv.messages][-2:] == ["next", REPLY]
    assert os.environ.get("AIGC_CHAT_CONFIG") != str(config)


def test_the_torch_backend_writes_the_same_summary(chain: Path) -> None:
    pytest.importorskip("torch")
    from aigc_chat.config import Config
    from aigc_chat.conversation import Conversation
    from aigc_chat.history_service import HistoryService

    cfg = Config(path=Path(os.environ["AIGC_CHAT_CONFIG"]), backend="torch", model=str(chain))
    cfg.generation = cfg.generation.with_updates(temperature=0.0, max_tokens=8)
    conv = Conversation(cfg, HistoryService(HistoryStore()))
    conv.attach_backend(conv.load_backend())
    for i in range(1, 4):
        assert conv.begin("send", f"question {i}").consume().text == REPLY
    with conv.backend_lock:
        done = conv.compact(keep=1)
    assert done.summary.content == TEXT and done.meta["backend"] == "torch"
    assert [n.content for n in conv.path()] == [TEXT, "question 3", REPLY]
    conv.close(10)
    stored = tree()
    assert [(m.kind, m.parent_id is None) for m in stored.messages] == [("summary", True), ("text", False),
                                                                      ("text", False)]


def test_back_to_the_original_branch_re_reads_nothing_on_llama(chain: Path) -> None:
    from aigc_chat.config import Config
    from aigc_chat.conversation import Conversation

    cfg = Config(path=Path(os.environ["AIGC_CHAT_CONFIG"]), model=str(chain))
    cfg.generation = cfg.generation.with_updates(temperature=0.0, max_tokens=8)
    conv = Conversation(cfg)
    conv.attach_backend(conv.load_backend())
    backend: Any = conv.backend
    for i in range(1, 5):
        conv.begin("send", f"question {i} " + "and more words " * 4).consume()
    first = conv.path()[0]
    with conv.backend_lock:
        done = conv.compact()
    conv.begin("send", "on the summary's branch").consume()
    restored = backend.kept.restored
    assert conv.switch(done.summary, -1) is first  # alt+←: the original branch
    result = conv.begin("send", "back on the original").consume()
    assert backend.kept.restored == restored + 1  # its KV state was kept and put back
    evaluated = result.prompt_tokens - backend.last_reused
    # a next turn on the same branch, with a question as long: what a turn costs anyway
    same = conv.begin("send", "back on the origin 2").consume()
    assert evaluated <= same.prompt_tokens - backend.last_reused + 2  # the switch re-read nothing more
    conv.close()
