"""The chat's lifecycle without Textual (aigc_chat.chat_state): the phase moves only through
its transitions, the one busy rule answers every action, and the status snapshot is read from
the core's conversation."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

from aigc_chat.chat_state import ChatState, EngineFacts, Phase, status_facts
from aigc_chat.config import Config
from aigc_chat.conversation import Conversation
from aigc_chat.tree import Node

ACTIONS = ("send", "edit", "regenerate", "branch", "new", "open", "delete_current", "keep",
           "switch_model", "pick_model", "role", "compact", "gan")


def test_no_textual_is_loaded_for_it() -> None:
    code = "import aigc_chat.chat_state, sys; print('textual' in sys.modules)"
    out = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, check=True)
    assert out.stdout.strip() == "False"


def test_a_load_then_a_reply_then_idle_and_every_change_is_seen() -> None:
    state = ChatState()
    seen: list[str] = []
    state.watch(lambda s: seen.append(s.shown))
    assert state.phase is Phase.LOADING and state.why_busy("send") == "the model is loaded"
    state.progress("reading the file")
    state.loaded(EngineFacts("CPU", 4096))
    assert state.phase is Phase.IDLE and all(state.why_busy(a) is None for a in ACTIONS)
    job, cancel, _done = state.begin_turn()
    assert state.phase is Phase.GENERATING and state.engine_busy and job == state.job == 1
    assert state.why_busy("send") == "the reply ends"
    assert state.why_busy("new") == "wait for the reply to end (Esc stops it)"
    assert state.why_busy("switch_model") == "wait for the reply to end (Esc stops it) before switching model"
    assert state.why_busy("keep") is not None
    assert (state.why_busy("compact") or "").startswith("a reply is streaming")
    state.queue_message("next")
    assert state.next_queued() is None  # not while busy
    assert state.stop_turn() == ["next"]  # not sent: handed back for the prompt box
    assert cancel.is_set() and state.queue == [] and state.shown == "stopping"
    state.turn_ended()
    assert seen == ["loading: reading the file", "idle", "generating", "stopping", "idle"]
    assert state.engine == EngineFacts("CPU", 4096)


def test_opening_counts_and_queued_messages_wait_for_the_last_open() -> None:
    state = ChatState()
    state.open_started()  # at start: the model still loading
    state.loaded()
    assert state.phase is Phase.OPENING
    state.open_started()
    state.queue_message("hello")
    state.open_ended()
    assert state.phase is Phase.OPENING and state.next_queued() is None
    assert state.why_busy("regenerate") == "wait: the conversation is still opening"
    state.open_ended()
    assert state.phase is Phase.IDLE and state.next_queued() == "hello" and state.queue == []


def test_a_failed_switch_goes_back_and_a_failed_load_hands_the_queue_back() -> None:
    state = ChatState()
    state.loaded(EngineFacts("CPU", 512))
    previous = state.loading("loading: two", engine_stays=True)
    assert state.why_busy("pick_model") == "a model is loading; pick again when it is ready"
    assert state.why_busy("role") == "a model is loading; pick a role when it is ready"
    # /model and the settings pane too: every route waits for the load (two would race)
    assert state.why_busy("switch_model") == "a model is loading; switch when it is ready"
    assert state.engine.context_size == 512  # the old model still answers
    state.restore(previous)
    assert state.phase is Phase.IDLE
    state.loading()
    state.queue_message("kept")
    assert state.load_failed("no such file") == ["kept"]
    assert state.phase is Phase.LOAD_FAILED and state.queue == [] and state.load_error == "no such file"
    assert state.why_busy("send") is None and state.why_busy("branch") is None
    assert state.why_busy("regenerate") == "no model is ready"


def test_hand_over_gives_the_running_reply_and_the_queue_away() -> None:
    state = ChatState()
    state.loaded()
    assert state.hand_over(True) is None
    _, cancel, done = state.begin_turn()
    state.queue_message("after")
    given = state.hand_over(True)
    assert given == (done, cancel, ["after"]) and state.queue == [] and state.cancel is None


def test_the_status_snapshot_reads_the_core(tmp_path: Path) -> None:
    conv = Conversation(Config(path=tmp_path / "config.toml"))
    state = ChatState()
    state.loaded(EngineFacts("CPU", 8192))
    facts = status_facts(state, conv, "history off │ ")
    assert (facts.model, facts.context_used, facts.branches, facts.doing) == ("smollm2-135m", None, 0,
                                                                             "history off │ idle")
    q = conv.tree.add(Node("user", "hi"), None)
    a = conv.tree.add(Node("assistant", "yo", stats={"prompt_tokens": 30, "completion_tokens": 5}), q)
    conv.tree.add(Node("assistant", "other"), q)
    conv.tree.show(a)
    conv.settings.role, conv.settings.model = "coder", "/models/Qwen3-0.6B-Q8_0.gguf"
    facts = status_facts(state, conv)
    assert (facts.role, facts.model, facts.context_used, facts.branches) == ("coder", "Qwen3-0.6B-Q8_0", 35, 2)
