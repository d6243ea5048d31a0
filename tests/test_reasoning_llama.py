"""Reasoning on real llama.cpp: tiny GGUF files whose greedy reply is a chosen token chain,
so each shape (markers split across tokens, an opening the template prefilled, a block cut
off, a marker inside the answer) comes out of the real engine, through the installed
command: stdout, --show-reasoning, --json and the history."""

from __future__ import annotations

import json
from pathlib import Path

import pytest

from aigc_chat.history_store import HistoryStore
from tests.conftest import run_cli
from tests.tiny_gguf import write_chain_gguf

# the template of a model whose generation prompt opens the block itself (Qwen3-style)
PREFILLED = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
             "{% if add_generation_prompt %}<|assistant|><think>\n{% endif %}")


def model(tmp: Path, chain: list[str], template: str | None = None) -> Path:
    return write_chain_gguf(tmp / "m.gguf", chain, extra=chain, template=template)


def ask(cli: str, path: Path, *flags: str) -> tuple[dict, str, str]:
    """(the --json record, plain stdout, plain stderr) of one question."""
    rec = run_cli(cli, "--model", str(path), "--prompt", "hi", "--temperature", "0", *flags, "--json", timeout=120)
    assert rec.returncode == 0, rec.stderr
    plain = run_cli(cli, "--model", str(path), "--prompt", "hi", "--temperature", "0", *flags, timeout=120)
    assert plain.returncode == 0, plain.stderr
    return json.loads(rec.stdout), plain.stdout, plain.stderr


def last_reply() -> tuple[str, str]:
    with HistoryStore(readonly=True) as s:
        conv = s.get_conversation(s.latest_conversation_id())
    m = conv.messages[-1]
    return m.content, m.meta.get("reasoning", "")


def test_markers_split_across_tokens(cli: str, tmp_path: Path) -> None:
    chain = ["<th", "ink>", "pl", "an", " it", "</", "think", ">\n\n", "Ans", "wer."]
    rec, out, err = ask(cli, model(tmp_path, chain))
    assert rec["text"] == "Answer." and rec["reasoning"] == "plan it"
    assert rec["usage"]["reasoning_tokens"] >= 5 and rec["usage"]["completion_tokens"] == len(chain)
    assert rec["timings"]["thinking_s"] is not None
    assert out == "Answer.\n" and err == ""  # stdout is the answer alone; the thinking is hidden
    assert last_reply() == ("Answer.", "plan it")  # stored with the reply, apart


def test_show_reasoning_puts_the_thinking_on_stderr(cli: str, tmp_path: Path) -> None:
    path = model(tmp_path, ["<think>", "pl", "an", "</think>", "Ans", "wer"])
    r = run_cli(cli, "--model", str(path), "--prompt", "hi", "--show-reasoning", timeout=120)
    assert r.returncode == 0 and r.stdout == "Answer\n" and r.stderr == "plan\n"


def test_an_opening_the_template_prefilled(cli: str, tmp_path: Path) -> None:
    rec, out, _ = ask(cli, model(tmp_path, ["pl", "an", "</th", "ink>", "Ans", "wer"], PREFILLED))
    assert (rec["text"], rec["reasoning"]) == ("Answer", "plan") and out == "Answer\n"


def test_a_block_cut_off_by_max_tokens_stays_reasoning(cli: str, tmp_path: Path) -> None:
    rec, out, _ = ask(cli, model(tmp_path, ["<think>", "a", "b", "c", "d", "</think>", "X"]), "--max-tokens", "3")
    assert rec["finish_reason"] == "length" and rec["text"] == "" and rec["reasoning"] == "ab"
    assert out == ""


def test_a_closing_marker_in_the_answers_code_block_is_kept(cli: str, tmp_path: Path) -> None:
    chain = ["Code:", "\n```\n", "</think>", "\n```"]
    rec, out, _ = ask(cli, model(tmp_path, chain))
    assert rec["text"] == "".join(chain) and rec["reasoning"] == ""
    assert out == "".join(chain) + "\n"


def test_nested_and_unbalanced_markers(cli: str, tmp_path: Path) -> None:
    chain = ["<think>", "a", "<thi", "nk>", "b", "</think>", "c", "</th", "ink>"]
    rec, _, _ = ask(cli, model(tmp_path, chain))
    assert rec["reasoning"] == "a<think>b" and rec["text"] == "c</think>"


def test_a_huge_block_and_history_show(cli: str, tmp_path: Path) -> None:
    words = [f"w{i} " for i in range(600)]
    chain = ["<think>", *words, "</think>", "Done"]
    path = write_chain_gguf(tmp_path / "big.gguf", chain, extra=chain, context_length=2048)
    rec, out, _ = ask(cli, path, "--max-tokens", "1000")
    assert rec["reasoning"] == "".join(words) and rec["text"] == "Done" and out == "Done\n"
    assert rec["usage"]["reasoning_tokens"] >= 600
    show = run_cli(cli, "history", "show", "1")
    assert "w599" not in show.stdout  # hidden unless asked
    show = run_cli(cli, "history", "show", "1", "--reasoning")
    assert "[reasoning]\nw0 w1" in show.stdout and "[answer]\nDone" in show.stdout


def test_a_continued_conversation_keeps_each_replys_reasoning_apart(cli: str, tmp_path: Path) -> None:
    path = model(tmp_path, ["<think>", "secret", "</think>", "Ok"])
    assert run_cli(cli, "--model", str(path), "--prompt", "one", timeout=120).returncode == 0
    r = run_cli(cli, "--model", str(path), "--continue", "--prompt", "two", timeout=120)
    assert r.returncode == 0 and r.stdout == "Ok\n", r.stderr
    with HistoryStore(readonly=True) as s:
        conv = s.get_conversation(s.latest_conversation_id())
    assert [m.content for m in conv.messages] == ["one", "Ok", "two", "Ok"]
    assert [m.meta.get("reasoning") for m in conv.messages] == [None, "secret", None, "secret"]


@pytest.mark.slow  # the installed app on torch: ~15 s of imports
@pytest.mark.parametrize("backend", ["torch"])
def test_the_torch_backend_splits_the_same_way(cli: str, tmp_path: Path, backend: str) -> None:
    pytest.importorskip("torch")
    rec, out, _ = ask(cli, model(tmp_path, ["pl", "an", "</th", "ink>", "Ans", "wer"], PREFILLED),
                      "--backend", backend, "--device", "cpu")
    assert (rec["text"], rec["reasoning"]) == ("Answer", "plan") and out == "Answer\n"


# Qwen3's switch: the generation prompt opens the block, unless thinking is off, when it
# writes an empty one (the model then answers at once)
SWITCHABLE = ("{% for m in messages %}<|{{ m['role'] }}|>{{ m['content'] }}\n{% endfor %}"
              "{% if add_generation_prompt %}<|assistant|>"
              "{% if enable_thinking is defined and enable_thinking is false %}<think></think>"
              "{% else %}<think>\n{% endif %}"
              "{% endif %}")


def test_thinking_can_be_turned_off_where_the_template_allows(cli: str, tmp_path: Path) -> None:
    path = model(tmp_path, ["pl", "an", "</th", "ink>", "Ans", "wer"], SWITCHABLE)
    rec, _, _ = ask(cli, path)
    assert (rec["text"], rec["reasoning"]) == ("Answer", "plan")  # on: the block is open
    rec, _, err = ask(cli, path, "--no-thinking")
    # off: the prompt closes the block, so this model's whole reply is the answer
    assert rec["reasoning"] == "" and rec["text"] == "plan</think>Answer" and err == ""


def test_turning_thinking_off_without_a_switch_in_the_template_says_so(cli: str, tmp_path: Path) -> None:
    path = model(tmp_path, ["<think>", "pl", "an", "</think>", "Ans", "wer"])
    r = run_cli(cli, "--model", str(path), "--prompt", "hi", "--no-thinking", timeout=120)
    assert r.returncode == 0 and r.stdout == "Answer\n"
    assert "cannot honour thinking" in r.stderr
