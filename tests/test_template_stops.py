"""The stop strings a built-in chat template needs, applied to every turn of the engines that
render with our templates (llama.cpp and torch), on a real tiny GGUF whose greedy reply runs
on into the next turn's header, as a base model on the `plain` or `llama-2` format does.

`plain` and `llama-2` have no end-of-turn token of their own: without "\\nUser:" and
"[INST]" as stops, the reply would go on to write the user's next question itself."""

from __future__ import annotations

from pathlib import Path

import pytest

from aigc_chat.chat_types import Message
from aigc_chat.params import GenerationParams
from aigc_chat.templates import BUILTIN, BUILTIN_STOPS, ChatTemplate
from tests.tiny_gguf import write_chain_gguf

GREEDY = GenerationParams(temperature=0.0, max_tokens=32)
Q = [Message("user", "hi")]
# The answer, then what the model would write as the next turn's header, then more. The
# header is one token ("User:", "[INST]"): each chain token has one successor, and the
# prompt's own last token (":" of "Assistant:", "]" of "[/INST]") must start the chain.
RUNS_ON = {
    "plain": (["H", "i", "\n", "User:", "▁h", "o", "w"], "Hi", "\nUser:"),
    "llama-2": (["O", "k", "[INST]", "▁h", "o", "w"], "Ok", "[INST]"),
}


@pytest.fixture(scope="module")
def models(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("stops")
    return {name: write_chain_gguf(d / f"{name}.gguf", chain, extra=chain) for name, (chain, _, _) in RUNS_ON.items()}


def _backend(kind: str, path: Path, template: str):
    if kind == "llama":
        from aigc_chat.backends.llama_cpp_backend import LlamaCppBackend

        return LlamaCppBackend(str(path), {"n_ctx": 256, "chat_template": template})
    from aigc_chat.backends.torch_gpt.backend import TorchBackend

    return TorchBackend(str(path), {"device": "cpu", "dtype": "float32", "n_ctx": 256, "chat_template": template})


def test_the_table_names_built_in_templates_only() -> None:
    assert set(BUILTIN_STOPS) <= set(BUILTIN)
    assert ChatTemplate("plain").extra_stops == ("\nUser:",)
    assert ChatTemplate("gguf", "{{ x }}").extra_stops == ()  # a file's own template ends its turns itself


@pytest.mark.parametrize("kind", ["llama", "torch"])
@pytest.mark.parametrize("template", sorted(RUNS_ON))
def test_a_built_in_templates_stops_end_the_reply(models: dict[str, Path], kind: str, template: str) -> None:
    _, answer, stop = RUNS_ON[template]
    backend = _backend(kind, models[template], template)
    backend.load()
    try:
        result = backend.stream_chat(Q, GREEDY).consume()
        assert (result.text, result.finish_reason, result.stop_sequence) == (answer, "stop", stop)
        # the user's own stops still apply beside the template's
        result = backend.stream_chat(Q, GREEDY.with_updates(stop=[answer[1]])).consume()
        assert (result.text, result.stop_sequence) == (answer[0], answer[1])
    finally:
        backend.close()


def test_a_template_without_stops_runs_to_the_models_end(models: dict[str, Path]) -> None:
    """The stops are the template's, not a list every model gets: chatml has its own end token."""
    from aigc_chat.backends.llama_cpp_backend import LlamaCppBackend

    backend = LlamaCppBackend(str(models["llama-2"]), {"n_ctx": 256, "chat_template": "chatml"})
    backend.load()
    try:
        result = backend.stream_chat(Q, GREEDY).consume()
        assert result.text == "Ok[INST] how" and result.stop_sequence is None
    finally:
        backend.close()
