"""Pilot tests of the model picker (F4 / the palette's "Switch model").

Real tiny GGUF files in a models_dir (and every tool's variable pointed into the temp dir),
real llama.cpp loads in the background: the filter narrows the list as you type, a pick
switches the conversation to the new model, a file that fails to load keeps the old one.
"""

from __future__ import annotations

from pathlib import Path

import pytest

from aigc_chat.tui.app import ChatApp
from aigc_chat.tui.model_picker import ModelPicker, matches
from tests.tiny_gguf import CHATML, write_raw_gguf, write_tiny_gguf
from tests.tui_driver import make_config, screen_text, send, wait_for, wait_idle

SIZE = (120, 32)


@pytest.fixture
def models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    for var in ("HF_HUB_CACHE", "LLAMA_CACHE", "OLLAMA_MODELS"):
        monkeypatch.setenv(var, str(tmp_path / "nothing" / var))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "nothing" / "hf"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    d = tmp_path / "models"
    d.mkdir()
    one = write_tiny_gguf(d / "tiny-one.gguf", "llama", seed=1, extra={"tokenizer.chat_template": CHATML})
    two = write_tiny_gguf(d / "tiny-two.gguf", "llama", seed=2, extra={"tokenizer.chat_template": CHATML})
    doomed = write_tiny_gguf(d / "tiny-doomed.gguf", "llama", seed=3)
    proj = write_raw_gguf(d / "mmproj-tiny.gguf", "clip", {"general.type": "mmproj"})
    return {"dir": d, "one": one, "two": two, "doomed": doomed, "mmproj": proj}


def _app(tmp_path: Path, models: dict[str, Path]) -> ChatApp:
    cfg = make_config(tmp_path, max_tokens=4)
    cfg.model = str(models["one"])
    cfg.models_dir = [str(models["dir"])]
    return ChatApp(cfg, store=None)


def _picker(app: ChatApp) -> ModelPicker:
    screen = app.screen
    assert isinstance(screen, ModelPicker), type(screen)
    return screen


async def _open(pilot, app: ChatApp) -> ModelPicker:
    await pilot.press("f4")
    await wait_for(pilot, lambda: isinstance(app.screen, ModelPicker) and app.screen.entries is not None,
                   30, "the picker's list")
    return _picker(app)


@pytest.mark.asyncio
async def test_filter_as_you_type_and_switch_in_the_background(tmp_path: Path, models: dict[str, Path]) -> None:
    app = _app(tmp_path, models)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        first_backend = app.conversation.backend
        await send(pilot, app, "hello")
        picker = await _open(pilot, app)
        names = [e.name for e in picker.shown]
        assert {"tiny-one", "tiny-two", "tiny-doomed", "mmproj-tiny"} <= set(names)
        text = screen_text(app)
        assert "tiny-two" in text and "vision-projector" in text and "ctx 256" in text
        await pilot.press(*"two")
        await pilot.pause()
        assert [e.name for e in picker.shown] == ["tiny-two"]
        await pilot.press("enter")
        await wait_for(pilot, lambda: not isinstance(app.screen, ModelPicker), 10, "the picker to close")
        await wait_for(pilot, lambda: app.conversation.backend is not first_backend
                       and app.chat_screen.chat_state.phase == "idle",
                       60, "the new model")
        assert app.conversation.settings.model == str(models["two"])
        assert app.conversation.backend.model == str(models["two"])
        reply = await send(pilot, app, "and now?")
        assert reply.text is not None
        # the whole conversation went to the new model
        assert [m.content for m in app.conversation.messages if m.role == "user"] == ["hello", "and now?"]


@pytest.mark.asyncio
async def test_a_failed_load_keeps_the_old_model(tmp_path: Path, models: dict[str, Path]) -> None:
    app = _app(tmp_path, models)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        old = app.conversation.backend
        picker = await _open(pilot, app)
        models["doomed"].write_bytes(models["doomed"].read_bytes()[:2000])  # truncated after listing
        await pilot.press(*"doomed")
        await pilot.pause()
        assert [e.name for e in picker.shown] == ["tiny-doomed"]
        await pilot.press("enter")
        await wait_for(pilot, lambda: any("Could not load" in (n.title or "") for n in app._notifications),
                       60, "the failure notice")
        assert app.conversation.backend is old and app.chat_screen.chat_state.phase == "idle"
        assert app.conversation.settings.model == str(models["one"])
        note = next(n for n in app._notifications if "Could not load" in (n.title or ""))
        assert "truncated" in note.message and "still on" in note.message
        reply = await send(pilot, app, "still there?")
        assert reply.text is not None


@pytest.mark.asyncio
async def test_projectors_cannot_be_picked_and_esc_closes(tmp_path: Path, models: dict[str, Path]) -> None:
    app = _app(tmp_path, models)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        picker = await _open(pilot, app)
        await pilot.press(*"mmproj")
        await pilot.pause()
        assert [e.kind for e in picker.shown] == ["vision-projector"]
        await pilot.press("enter")
        await pilot.pause()
        assert isinstance(app.screen, ModelPicker)  # nothing to pick
        await pilot.press("escape")
        await pilot.pause()
        assert not isinstance(app.screen, ModelPicker)
        assert app.conversation.settings.model == str(models["one"])


@pytest.mark.asyncio
async def test_the_palette_offers_it(tmp_path: Path, models: dict[str, Path]) -> None:
    app = _app(tmp_path, models)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        titles = [c.title for c in app.get_system_commands(app.screen)]
        assert "Switch model" in titles


def test_filter_words_all_match() -> None:
    from aigc_chat.discovery import Found

    e = Found(name="qwen2.5-7b-instruct-q4_k_m", path="/m/q.gguf", source="lmstudio", architecture="qwen2",
              quantization="Q4_K_M")
    assert matches(e, "qwen q4") and matches(e, "LMSTUDIO") and not matches(e, "qwen llama")


@pytest.mark.asyncio
async def test_the_settings_pane_says_where_each_value_came_from(tmp_path: Path, models: dict[str, Path]) -> None:
    from aigc_chat.config import load_config
    from aigc_chat.loader import model_settings_for

    path = tmp_path / "config.toml"
    path.write_text(f'model = "{models["one"]}"\nmodels_dir = ["{models["dir"]}"]\n'
                    '[generation]\nmax_tokens = 4\n[models."tiny-one*"]\ntemperature = 0.0\n')
    cfg = model_settings_for(load_config(path).with_overrides(seed=5))
    app = ChatApp(cfg, store=None)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        await pilot.press("f3")
        await pilot.pause()

        def label(name: str) -> str:
            return str(app.query_one(f"#lbl-{name}").render())

        assert label("temperature").endswith('config [models."tiny-one*"]')
        assert label("max_tokens").endswith("config [generation]")
        assert label("seed").endswith("flag") and label("top_k").endswith("default")
        field = app.query_one("#set-top_k")
        field.focus()
        field.value = "12"
        await pilot.press("enter")
        await pilot.pause()
        assert app.conversation.settings.params.top_k == 12
        assert label("top_k").endswith("this conversation")
