"""The conversation core (aigc_chat.conversation) and the start-up rules both front ends share
(aigc_chat.launch), on real SQLite and the one scripted backend: fast, and each rule once."""

from __future__ import annotations

import argparse
import os
import stat
import threading
from pathlib import Path

import pytest

from aigc_chat.chat_types import Message
from aigc_chat.config import Config
from aigc_chat.conversation import SAVE_INTERVAL, Conversation, plan_prompt
from aigc_chat.errors import UsageError
from aigc_chat.history import HistoryError
from aigc_chat.history_export import render
from aigc_chat.history_service import HistoryService
from aigc_chat.history_store import HistoryStore, default_path
from aigc_chat.launch import conversation_to_open, flag_settings, open_history
from tests.scripted_backend import ScriptedBackend


class StepClock:
    """A clock the test moves: when a streaming reply is saved is decided by it alone."""

    def __init__(self) -> None:
        self.now = 1000.0

    def __call__(self) -> float:
        return self.now


def make(pieces: list[str] | None = None, *, store: HistoryStore | None = None, save: bool = True,
         clock: StepClock | None = None, failures: list[Exception] | None = None,
         config: Config | None = None) -> Conversation:
    cfg = config or Config(path=Path(os.environ["AIGC_CHAT_CONFIG"]))
    history = HistoryService(store if store is not None else HistoryStore()) if save else None
    conv = Conversation(cfg, history, clock=clock or StepClock(),
                        on_history_failure=(failures.append if failures is not None else None))
    conv.attach_backend(ScriptedBackend(pieces or ["Hello", " there"]))
    return conv


def stored(conversation_id: int | None = None) -> list[tuple[str, str, str | None]]:
    with HistoryStore(readonly=True) as s:
        cid = conversation_id if conversation_id is not None else s.latest_conversation_id()
        assert cid is not None, "nothing was saved"
        return [(m.role, m.content, m.finish_reason) for m in s.get_conversation(cid).messages]


def args(**kw: object) -> argparse.Namespace:
    base: dict[str, object] = {"no_history": False, "continue_": False, "conversation": None,
                               "model": None, "backend": None, "system": None}
    base.update(kw)
    return argparse.Namespace(**base)


# -- turns -------------------------------------------------------------------------------

def test_a_turn_stores_the_question_first_then_the_reply_with_its_end() -> None:
    conv = make(["Hel", "lo"])
    turn = conv.begin("send", "Hi there")
    assert conv.messages == [Message("user", "Hi there")]
    assert "".join(turn.run()) == "Hello"
    assert turn.result is not None and turn.result.finish_reason == "stop"
    assert conv.messages[-1] == Message("assistant", "Hello")
    cid = conv.wait_for_id()
    assert conv.close()
    assert stored(cid) == [("user", "Hi there", None), ("assistant", "Hello", "stop")]


def test_the_reply_is_saved_while_it_streams_once_per_interval() -> None:
    clock = StepClock()
    backend_pieces = ["a", "b", "c", "d"]
    conv = make(backend_pieces, clock=clock)
    turn = conv.begin("send", "go")
    seen = []
    run = turn.run()
    for piece in run:
        seen.append(piece)
        if piece == "b":  # a second has passed by the time "b" is out: it is written
            clock.now += SAVE_INTERVAL
        conv.history.writer.wait(5)  # type: ignore[union-attr]
        if piece == "a":
            assert stored()[-1][1] == ""  # the row exists, nothing written yet (no time passed)
        if piece == "c":
            assert stored()[-1][1] == "ab"  # written at the interval, not at every piece
    assert seen == backend_pieces
    conv.close()
    assert stored()[-1] == ("assistant", "abcd", "stop")


def test_stopping_a_turn_keeps_what_was_said_marked_cancelled() -> None:
    conv = make(["one ", "two ", "three"])
    turn = conv.begin("send", "count")
    run = turn.run()
    assert next(run) == "one "
    run.close()  # Ctrl-C in the one-shot mode, quitting in the TUI
    assert turn.result is not None and turn.result.finish_reason == "cancelled"
    assert conv.messages[-1] == Message("assistant", "one ")
    conv.close()
    assert stored()[-1] == ("assistant", "one ", "cancelled")


def test_a_cancel_event_ends_the_reply_as_cancelled() -> None:
    conv = make(["one ", "two ", "three"])
    cancel = threading.Event()
    turn = conv.begin("send", "count")
    out = []
    for piece in turn.run(cancel):
        out.append(piece)
        cancel.set()
    assert turn.result is not None and turn.result.finish_reason == "cancelled"
    assert "".join(out) == turn.result.text and "three" not in turn.result.text


def test_regenerate_replaces_the_last_reply_in_the_messages_and_the_store() -> None:
    conv = make(["first"])
    conv.begin("send", "q").consume()
    conv.backend.pieces = ["second"]  # type: ignore[union-attr]
    conv.begin("regenerate").consume()
    assert conv.messages == [Message("user", "q"), Message("assistant", "second")]
    conv.close()
    assert stored() == [("user", "q", None), ("assistant", "second", "stop")]


def test_edit_replaces_the_last_question_and_its_reply() -> None:
    conv = make(["A1"])
    conv.begin("send", "Q1").consume()
    conv.begin("send", "Q2").consume()
    conv.backend.pieces = ["A2b"]  # type: ignore[union-attr]
    conv.begin("edit", "Q2b").consume()
    assert [m.content for m in conv.messages] == ["Q1", "A1", "Q2b", "A2b"]
    conv.close()
    assert [c for _, c, _ in stored()] == ["Q1", "A1", "Q2b", "A2b"]


@pytest.mark.parametrize("action,text,reason", [
    ("send", "   ", "empty message"),
    ("regenerate", "", "nothing to regenerate"),
    ("edit", "x", "no message to edit"),
])
def test_what_a_turn_cannot_do_is_one_usage_error_and_changes_nothing(action: str, text: str, reason: str) -> None:
    conv = make(save=False)
    with pytest.raises(UsageError, match=reason):
        conv.begin(action, text)  # type: ignore[arg-type]
    assert conv.messages == []


def test_no_model_no_turn() -> None:
    conv = Conversation(Config(path=Path(os.environ["AIGC_CHAT_CONFIG"])))
    with pytest.raises(UsageError, match="no model is loaded"):
        conv.begin("send", "hi")


def test_an_engine_failure_with_no_text_keeps_no_reply_but_keeps_the_question() -> None:
    conv = make(["never"])
    conv.backend.fail_after = 0  # type: ignore[union-attr]
    turn = conv.begin("send", "hi")
    assert list(turn.run()) == []
    assert turn.result is not None and turn.result.finish_reason == "error"
    assert conv.messages == [Message("user", "hi")]
    conv.close()
    assert stored() == [("user", "hi", None)]


def test_a_failed_first_message_leaves_no_empty_conversation() -> None:
    """Whatever stops the first message being stored (here text SQLite cannot encode: what
    argv gives for b"caf\\xe9"), the conversation made for it goes too, and the failure is
    reported once while the answer goes on."""
    failures: list[Exception] = []
    conv = make(["ok"], failures=failures)
    # the title (its first line) is fine: the conversation row is made, then the message fails
    assert conv.begin("send", "A fine title\ncaf\udce9").consume().text == "ok"
    conv.close()
    assert len(failures) == 1
    with HistoryStore(readonly=True) as s:
        assert s.list_conversations() == []


def test_a_history_that_fails_mid_conversation_is_reported_once_and_the_chat_goes_on() -> None:
    failures: list[Exception] = []
    store = HistoryStore()
    conv = make(["fine"], store=store, failures=failures)
    conv.begin("send", "one").consume()
    conv.history.writer.wait(5)  # type: ignore[union-attr]
    store.connection.execute("PRAGMA query_only = ON")  # every later write fails, as a full disk would
    for text in ("two", "three"):
        assert conv.begin("send", text).consume().text == "fine"
    conv.history.writer.wait(5)  # type: ignore[union-attr]
    assert len(failures) == 1 and not conv.saving
    assert [m.content for m in conv.messages] == ["one", "fine", "two", "fine", "three", "fine"]
    conv.close()


# -- settings and stored conversations ---------------------------------------------------

def test_the_prompt_leaves_out_the_oldest_exchanges_and_keeps_the_system_prompt() -> None:
    backend = ScriptedBackend(["x"], context_length=40)
    turns = [Message("user" if i % 2 == 0 else "assistant", "word " * 5) for i in range(8)]
    turns.append(Message("user", "the new question"))
    plan = plan_prompt(backend, "be brief", turns, Config(path=Path("/x")).generation)
    assert plan.messages[0] == Message("system", "be brief")
    assert plan.messages[-1].content == "the new question"
    assert plan.dropped > 0 and plan.dropped % 2 == 0  # whole exchanges
    assert plan.prompt_tokens is not None and plan.prompt_tokens <= 40


def test_settings_changes_are_saved_with_the_conversation() -> None:
    conv = make(["ok"])
    conv.begin("send", "hi").consume()
    conv.set_params(temperature=0.25)
    conv.set_system_prompt("be terse")
    cid = conv.wait_for_id()
    conv.close()
    with HistoryStore(readonly=True) as s:
        settings = s.get_conversation(cid).settings
    assert settings["system_prompt"] == "be terse" and settings["generation"]["temperature"] == 0.25


def test_a_continued_conversation_keeps_its_settings_except_what_flags_set() -> None:
    with HistoryStore() as s:
        cid = s.create_conversation("old", model="old.gguf", backend="llama",
                                    settings={"system_prompt": "stored system", "model": "old.gguf",
                                              "generation": {"temperature": 0.1, "top_k": 7}})
        s.add_message(cid, "user", "earlier")
        s.add_message(cid, "assistant", "answer", finish_reason="stop")
        conv_stored = s.get_conversation(cid)
    cfg = Config(path=Path(os.environ["AIGC_CHAT_CONFIG"])).with_overrides(system_prompt="flag system",
                                                                          temperature=0.9)
    conv = make(save=False, config=cfg)
    conv.load(conv_stored, keep=flag_settings(cfg, args(system="flag system")))
    assert conv.settings.system_prompt == "flag system"  # the flag wins
    assert conv.settings.params.temperature == 0.9  # the flag wins
    assert conv.settings.params.top_k == 7 and conv.settings.model == "old.gguf"  # the rest is stored
    assert conv.messages == [Message("user", "earlier"), Message("assistant", "answer")]


def test_exports_are_private_files(tmp_path: Path) -> None:
    conv = make(["reply"])
    conv.begin("send", "secret").consume()
    out = tmp_path / "c.md"
    assert conv.export(conv.conversation_ref, out).result(10) == "markdown"
    assert stat.S_IMODE(out.stat().st_mode) == 0o600 and "secret" in out.read_text()
    assert conv.export(conv.conversation_ref, tmp_path / "c.json").result(10) == "json"
    conv.close()


def test_deleting_the_open_conversation_starts_a_new_one() -> None:
    conv = make(["r"])
    conv.begin("send", "q").consume()
    cid = conv.wait_for_id()
    assert cid is not None
    conv.delete(cid).result(10)
    assert conv.conversation_ref is None and conv.messages == []
    conv.close()
    with HistoryStore(readonly=True) as s:
        assert s.list_conversations() == []


# -- the start-up rules (docs/history.md) ---------------------------------------------------

def test_no_history_alone_never_touches_the_file() -> None:
    opening = open_history(args(no_history=True))
    assert opening.store is None and opening.off_by_flag and not default_path().exists()


def test_no_history_with_continue_reads_the_conversation_and_writes_nothing() -> None:
    with HistoryStore() as s:
        cid = s.create_conversation("t")
        s.add_message(cid, "user", "earlier")
    before = default_path().read_bytes()
    opening = open_history(args(no_history=True, continue_=True))
    assert opening.store is not None and opening.store.readonly and not opening.saving
    assert conversation_to_open(opening.store, args(no_history=True, continue_=True)) == (cid, "")
    conv = make(["r"], store=opening.store)
    conv.load(opening.store.get_conversation(cid))
    conv.begin("send", "more").consume()
    conv.close()
    assert default_path().read_bytes() == before


@pytest.mark.parametrize("no_history", [False, True])
def test_continue_with_nothing_saved_starts_a_new_conversation_with_a_note(no_history: bool) -> None:
    a = args(continue_=True, no_history=no_history)
    opening = open_history(a)
    cid, note = conversation_to_open(opening.store, a)
    assert cid is None and "no saved conversation to continue" in note
    if opening.store is not None:
        opening.store.close()


@pytest.mark.parametrize("no_history", [False, True])
def test_a_missing_conversation_is_an_error(no_history: bool) -> None:
    HistoryStore().close()
    a = args(conversation=42, no_history=no_history)
    opening = open_history(a)
    with pytest.raises(UsageError, match="no conversation 42"):
        conversation_to_open(opening.store, a)


def test_a_corrupt_history_is_a_warning_unless_a_saved_conversation_was_asked_for() -> None:
    path = default_path()
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(b"not a database" * 100)
    opening = open_history(args())
    assert opening.store is None and opening.problem is not None
    with pytest.raises(HistoryError, match="not a history database"):
        open_history(args(continue_=True))


def test_each_reply_records_the_model_that_wrote_it() -> None:
    """A conversation can switch models; the history says which one wrote each reply, from
    the reply's first row on (a reply cut off by a kill -9 says it too)."""
    conv = make(["one"])
    first = conv.begin("send", "q1")
    conv.history.writer.wait(5)  # type: ignore[union-attr]
    with HistoryStore(readonly=True) as s:
        (cid,) = [c.id for c in s.list_conversations()]
        assert s.get_conversation(cid).messages[-1].stats == {"backend": "scripted", "model": "scripted-model"}
    first.consume()
    conv.attach_backend(ScriptedBackend(["two"], model="other.gguf"))
    turn = conv.begin("send", "q2")
    turn.consume()
    assert turn.stats()["model"] == "other.gguf" and turn.stats()["completion_tokens"] == 1
    conv.close()
    with HistoryStore(readonly=True) as s:
        replies = [m for m in s.get_conversation(cid).messages if m.role == "assistant"]
        assert [m.stats["model"] for m in replies] == ["scripted-model", "other.gguf"]
        assert "## Assistant (other)" in render(s.get_conversation(cid), "markdown")


def _two_models(tmp_path: Path) -> tuple[Path, Path]:
    from tests.tiny_gguf import write_tiny_gguf

    return (write_tiny_gguf(tmp_path / "a.gguf", "llama", seed=1),
            write_tiny_gguf(tmp_path / "b.gguf", "llama", seed=2))


def test_switching_back_to_the_previous_model_does_not_load_it_again(tmp_path: Path) -> None:
    a, b = _two_models(tmp_path)
    conv = Conversation(Config(path=Path(os.environ["AIGC_CHAT_CONFIG"])))
    first = conv.load_backend(backend="llama", model=str(a))
    conv.attach_backend(first)
    second = conv.load_backend(backend="llama", model=str(b))
    conv.attach_backend(second)
    assert conv.spare is first  # kept loaded: memory allows it here
    back = conv.load_backend(backend="llama", model=str(a))
    assert back is first  # the same engine, not a new load from disk
    conv.attach_backend(back)
    assert conv.spare is second and conv.backend is first
    assert conv.begin("send", "hi").consume().finish_reason in ("stop", "length")
    conv.close()
    assert conv.backend is None and conv.spare is None


def test_without_memory_to_spare_the_previous_model_is_closed(tmp_path: Path) -> None:
    a, b = _two_models(tmp_path)
    conv = Conversation(Config(path=Path(os.environ["AIGC_CHAT_CONFIG"])))
    conv.memory_available = lambda: 100 << 20  # 100 MiB left: under the reserve
    first = conv.load_backend(backend="llama", model=str(a))
    conv.attach_backend(first)
    conv.attach_backend(conv.load_backend(backend="llama", model=str(b)))
    assert conv.spare is None
    again = conv.load_backend(backend="llama", model=str(a))
    assert again is not first  # loaded anew
    conv.close()
    again.close()


def test_save_as_default_writes_choices_not_the_models_own_sampling(tmp_path: Path) -> None:
    """[generation] beats a model's own sampling (its file, the built-in table), so "save as
    default" writes what this run chose (a change, a flag) and leaves the model's values out."""
    import tomllib

    from aigc_chat.config import load_config, save_config
    from aigc_chat.loader import model_settings_for

    path = Path(os.environ["AIGC_CHAT_CONFIG"])
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_text('[tui]\ntheme = "nord"\n')
    cfg = model_settings_for(load_config(path).with_overrides(model="smollm2", max_tokens=99))
    assert cfg.source("temperature").startswith("built-in table")  # SmolLM2's own low temperature
    conv = Conversation(cfg)
    conv.set_params(top_k=7)
    conv.save_as_default()
    gen = tomllib.loads(path.read_text())["generation"]
    assert gen == {"top_k": 7, "max_tokens": 99}
    # and writing the config for another reason (the theme) adds no generation values at all
    path.write_text('[tui]\ntheme = "nord"\n')
    save_config(load_config(path))
    assert "generation" not in tomllib.loads(path.read_text())


def test_reasoning_is_stored_with_the_reply_and_never_sent_back() -> None:
    from aigc_chat.reasoning import Reasoning

    conv = make(["<think>", "sec", "ret", "</think>", "Ok"])
    turn = conv.begin("send", "one")
    pieces = list(turn.run())
    assert [p for p in pieces if isinstance(p, Reasoning)] == ["sec", "ret"]
    assert "".join(p for p in pieces if not isinstance(p, Reasoning)) == "Ok"
    assert turn.stats()["reasoning_tokens"] >= 3 and turn.stats()["thinking_time"] is not None
    conv.begin("send", "two").consume()
    sent = conv.backend.seen[-1]  # type: ignore[union-attr]
    assert [m.content for m in sent] == ["one", "Ok", "two"]  # the earlier thinking is not sent
    conv.close()
    with HistoryStore(readonly=True) as s:
        cid = s.latest_conversation_id()
        reply = s.get_conversation(cid).messages[1]
        assert (reply.content, reply.meta["reasoning"]) == ("Ok", "secret")
        stored = s.get_conversation(cid)
        assert "secret" not in render(stored, "markdown") and "secret" not in render(stored, "json")
        assert "> secret" in render(stored, "markdown", reasoning=True)
        assert '"reasoning": "secret"' in render(stored, "json", reasoning=True)
