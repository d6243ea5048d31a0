"""Kept KV states (backends/kept_states.py): moving back to a branch evaluates only what is
new, and gives exactly the tokens the branch would have given had it never been left.

The policy on its own, then real engines: llama.cpp on the real default model (llama
architecture) and on Gemma 3 (sliding-window attention, a second cache to restore), and the
torch backend on the default model."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import pytest

from aigc_chat.backends.kept_states import MIN_TOKENS, KeptStates
from aigc_chat.config import Config
from aigc_chat.conversation import Conversation

QUESTIONS = ["What is the capital of France?", "Name a river in Europe.", "What do bees make?",
             "Who wrote Hamlet?"]


# -- the policy -------------------------------------------------------------------------------

def test_a_state_is_kept_only_when_a_prompt_would_drop_enough_of_it() -> None:
    kept = KeptStates(1000)
    cached = list(range(100))
    assert not kept.worth_keeping(cached, [*cached, 7])  # going forward drops nothing
    assert not kept.worth_keeping(cached, [*cached[:100 - MIN_TOKENS + 1], -1])
    assert kept.worth_keeping(cached, [*cached[:100 - MIN_TOKENS], -1])
    assert not KeptStates(0).worth_keeping(cached, [-1])  # off


def test_the_best_state_must_beat_the_live_cache_and_the_budget_holds() -> None:
    kept = KeptStates(300, limit=3)
    a, b = tuple(range(50)), tuple(range(20)) + tuple(range(100, 130))
    kept.keep(a, "A", 100)
    kept.keep(b, "B", 100)
    prompt = [*list(a), 999]
    assert kept.best(prompt, have=50 - MIN_TOKENS + 1) is None  # not enough of a gain
    found = kept.best(prompt, have=20)
    assert found is not None and found.state == "A"
    kept.keep((*a, 1, 2, 3), "A+", 100)  # supersedes A (a prefix of it)
    assert [k.state for k in kept.kept] == ["B", "A+"]
    kept.keep(tuple(range(200, 260)), "C", 100)
    kept.keep(tuple(range(300, 360)), "D", 100)  # over the budget: the oldest goes
    assert [k.state for k in kept.kept] == ["A+", "C", "D"] and kept.used == 300
    kept.keep(tuple(range(400, 460)), "huge", 301)  # never fits: not kept, nothing evicted
    assert len(kept.kept) == 3


# -- real engines --------------------------------------------------------------------------------

def _conversation(backend: Any) -> Conversation:
    cfg = Config(path=Path(os.environ["AIGC_CHAT_CONFIG"]))
    cfg.generation = cfg.generation.with_updates(temperature=0.0, max_tokens=12, seed=1)
    conv = Conversation(cfg)
    conv.attach_backend(backend, external=True)
    return conv


def _answers(backend: Any, empty: Any, *, detour: bool) -> tuple[str, int]:
    """The reply to a last question on the original branch: straight on, or after an edit of
    the second question, a turn on that branch, and a move back. (text, prompt tokens reused)"""
    empty(backend)
    conv = _conversation(backend)
    for q in QUESTIONS:
        conv.begin("send", q).consume()
    if detour:
        second = [n for n in conv.path() if n.role == "user"][1]
        conv.begin("edit", "Name a mountain in Asia.", target=second).consume()
        conv.begin("send", "And a lake there?").consume()
        edited = [n for n in conv.path() if n.role == "user"][1]
        assert conv.switch(edited, -1) is second
    assert [n.content for n in conv.path() if n.role == "user"] == QUESTIONS
    text = conv.begin("send", "Thank you. One more fact?").consume().text
    return text, backend.last_reused


def _llama(path: Path, **options: Any) -> Any:
    from aigc_chat.backends.llama_cpp_backend import LlamaCppBackend

    b = LlamaCppBackend(str(path), {"n_ctx": 2048, **options})
    b.load()
    return b


def _llama_empty(b: Any) -> None:
    b._llm.reset()
    b.kept.clear()
    b.kept.restored = 0


@pytest.mark.slow
@pytest.mark.parametrize("which", ["default", "gemma"])
def test_llama_moves_back_to_a_branch_without_reading_it_again(which: str, request: pytest.FixtureRequest) -> None:
    path = request.getfixturevalue("default_path" if which == "default" else "gemma_path")
    b = _llama(path)
    try:
        straight, reused_straight = _answers(b, _llama_empty, detour=False)
        back, reused_back = _answers(b, _llama_empty, detour=True)
        assert b.kept.restored == 1
        assert back == straight  # the same tokens: the kept state is the branch's own cache
        assert reused_back >= reused_straight - 4  # the whole branch came back, not just the fork point
    finally:
        b.close()
    off = _llama(path, kept_states_mb=0)
    try:
        _, reused_off = _answers(off, _llama_empty, detour=True)
        assert off.kept.restored == 0 and reused_off < reused_back - 50  # without it: re-read
    finally:
        off.close()


@pytest.mark.slow
def test_torch_moves_back_to_a_branch_without_reading_it_again(default_path: Path) -> None:
    """The torch backend on the same real model (SmolLM2 is a llama-architecture GGUF)."""
    from aigc_chat.backends.torch_gpt.backend import TorchBackend

    def empty(b: Any) -> None:
        b._runner.reset()
        b._runner.kept.clear()
        b._runner.kept.restored = 0

    b = TorchBackend(str(default_path), {"device": "cpu", "n_ctx": 2048})
    b.load()
    try:
        straight, reused_straight = _answers(b, empty, detour=False)
        back, reused_back = _answers(b, empty, detour=True)
        assert b._runner.kept.restored == 1 and back == straight
        assert reused_back >= reused_straight - 4
    finally:
        b.close()
