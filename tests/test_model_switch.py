"""Conversation.switch_model, the one way every front end switches model or role: the sampling
is resolved once through the whole chain (flags > conversation > role > [models."GLOB"] >
[generation] > model file > built-in). Real tiny GGUF headers, nothing loaded."""

from __future__ import annotations

from pathlib import Path

import pytest

from aigc_chat.config import load_config
from aigc_chat.conversation import Conversation
from aigc_chat.errors import UsageError
from aigc_chat.loader import model_settings_for
from tests.tiny_gguf import CHATML, write_tiny_gguf


@pytest.fixture
def files(tmp_path: Path) -> dict[str, Path]:
    one = write_tiny_gguf(tmp_path / "tiny-one.gguf", "llama", seed=1, extra={"tokenizer.chat_template": CHATML})
    two = write_tiny_gguf(tmp_path / "tiny-two.gguf", "llama", seed=2, extra={"tokenizer.chat_template": CHATML})
    config = tmp_path / "config.toml"
    config.write_text(f'model = "{one}"\n[generation]\ntemperature = 0.5\nmax_tokens = 4\n'
                      '[models."tiny-two*"]\ntemperature = 0.33\ntop_k = 7\n'
                      f'[roles.twin]\nmodel = "{two}"\ntop_p = 0.42\n'
                      '[roles.plain]\nsystem_prompt = "Plainly."\nrepeat_penalty = 1.3\n', encoding="utf-8")
    return {"one": one, "two": two, "config": config}


def _conversation(files: dict[str, Path], **flags: object) -> Conversation:
    cfg = load_config(files["config"], environ={}).with_overrides(**flags)  # type: ignore[arg-type]
    conv = Conversation(model_settings_for(cfg))  # as `aigc-chat` starts
    conv.keep = frozenset(flags)
    return conv


def _sampling(conv: Conversation) -> tuple[object, ...]:
    p = conv.settings.params
    return p.temperature, p.top_k, p.top_p, p.repeat_penalty, p.max_tokens


def test_the_new_model_brings_its_own_sampling_and_back(files: dict[str, Path]) -> None:
    conv = _conversation(files)
    before = _sampling(conv)
    assert before[:2] == (0.5, 40)
    assert conv.switch_model(None, str(files["two"])) is True
    assert _sampling(conv)[:2] == (0.33, 7) and conv.settings.model == str(files["two"])
    assert conv.config.source("temperature") == 'config [models."tiny-two*"]'
    assert conv.switch_model(None, str(files["one"])) is True
    assert _sampling(conv) == before


def test_what_this_conversation_or_a_flag_set_stays(files: dict[str, Path]) -> None:
    conv = _conversation(files, repeat_penalty=1.2)
    conv.set_params(top_k=11)
    conv.switch_model(None, str(files["two"]))
    assert _sampling(conv)[:4] == (0.33, 11, conv.config.generation.top_p, 1.2)


def test_a_role_starts_afresh_with_its_model_and_values(files: dict[str, Path]) -> None:
    conv = _conversation(files)
    conv.set_params(top_k=11)
    assert conv.switch_model(None, None, role="twin") is True
    s = conv.settings
    assert (s.role, s.model) == ("twin", str(files["two"]))
    assert _sampling(conv)[:3] == (0.33, 7, 0.42)  # the model's glob, the role's own; not this conversation's
    assert conv.switch_model(None, None, role="plain") is False  # names no model: the one answering stays
    assert (conv.settings.system_prompt, conv.settings.params.repeat_penalty) == ("Plainly.", 1.3)
    assert conv.settings.model == str(files["two"])


def test_a_flag_model_beats_the_roles(files: dict[str, Path]) -> None:
    conv = _conversation(files, model=str(files["one"]))
    assert conv.switch_model(None, None, role="twin") is False
    assert conv.settings.model == str(files["one"]) and conv.settings.params.top_p == 0.42


def test_an_unknown_backend_changes_nothing(files: dict[str, Path]) -> None:
    conv = _conversation(files)
    before = (conv.settings.backend, conv.settings.model, _sampling(conv), conv.config)
    with pytest.raises(UsageError, match="unknown backend"):
        conv.switch_model("nonesuch", str(files["two"]))
    assert (conv.settings.backend, conv.settings.model, _sampling(conv), conv.config) == before


def test_saved_defaults_are_used_at_once_in_their_layer(files: dict[str, Path]) -> None:
    conv = _conversation(files)
    conv.switch_model(None, str(files["two"]))
    conv.set_system_prompt("Be brief.")
    conv.set_params(temperature=0.6, top_p=0.8)
    conv.save_as_default()
    conv.new()
    s = conv.settings
    # top_p is [generation]'s now; temperature stays the model's glob, as it would after a restart
    assert (s.system_prompt, s.params.top_p, s.params.temperature) == ("Be brief.", 0.8, 0.33)
    assert conv.config.source("top_p") == "config [generation]"


def test_an_opened_conversation_answered_by_another_model_switches_like_a_fresh_one(
        files: dict[str, Path]) -> None:
    """A run started with model one opens a conversation answered by model two (with two's own
    sampling): a switch then brings the new model's values, as it would have in the run that
    answered it, instead of keeping two's as if this conversation had chosen them."""
    from aigc_chat.history import ConversationSummary, StoredConversation

    answered = _conversation(files)
    answered.switch_model(None, str(files["two"]))
    assert _sampling(answered)[:2] == (0.33, 7)
    stored = StoredConversation(ConversationSummary(5, "t", str(files["two"]), "llama", 0.0, 0.0, 0),
                                answered.settings.to_dict(), [])
    conv = _conversation(files)
    conv.load(stored)
    assert conv.settings.model == str(files["two"]) and _sampling(conv)[:2] == (0.33, 7)
    conv.switch_model(None, str(files["one"]))
    assert _sampling(conv)[:2] == (0.5, 40)  # one's values, as after switching back in the first run


def test_a_new_conversation_after_opening_one_gets_the_model_answerings_sampling(files: dict[str, Path]) -> None:
    """ctrl+n after opening a conversation answered by model two keeps model two, so it starts
    with two's own sampling (as a run started with two would), not the first model's."""
    from aigc_chat.history import ConversationSummary, StoredConversation

    answered = _conversation(files)
    answered.switch_model(None, str(files["two"]))
    stored = StoredConversation(ConversationSummary(5, "t", str(files["two"]), "llama", 0.0, 0.0, 0),
                                answered.settings.to_dict(), [])
    conv = _conversation(files)
    conv.load(stored)
    conv.new()
    assert conv.settings.model == str(files["two"]) and _sampling(conv)[:2] == (0.33, 7)
