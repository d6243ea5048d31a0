"""Terminal safety and terminal-facing features: untrusted model output, OSC 52 clipboard
(tmux-wrapped inside tmux), themes remembered, "save as default", NO_COLOR, 80x24."""

from __future__ import annotations

import tomllib
from pathlib import Path

import pytest

from aigc_chat.history_store import HistoryStore
from aigc_chat.tui.app import ChatApp
from tests.scripted_backend import ScriptedBackend
from tests.tui_driver import SIZE, make_config, screen_text, send, type_text, wait_for, wait_idle

pytestmark = [pytest.mark.asyncio]

HOSTILE = ["Sure", " [bold]", "not bold", "[/]", " \x1b[2J", "\x1b]0;pwned\x07", "\x1b]52;c;ZXZpbA==\x07",
           " [link=http://x]y[/link]", " bell\x07", " \x1b", "[31mred", "\n\n```python\nprint('[b]')\n```\n"]


MODEL = "scripted.gguf"  # the status bar and the snapshots show a model file's name


async def test_hostile_model_output_is_shown_literally_and_never_reaches_the_terminal(tmp_path: Path) -> None:
    backend = ScriptedBackend(HOSTILE, model=MODEL)
    app = ChatApp(make_config(tmp_path, max_tokens=100), store=HistoryStore(), backend=backend)
    written: list[str] = []
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        original = app._driver.write
        app._driver.write = lambda data: (written.append(data), original(data))[1]
        reply = await send(pilot, app, "Say [bold]hi[/] \x1b[2J")
        assert reply.finish_reason == "stop", (reply.stats, app.conversation.settings.params)
        await wait_for(pilot, lambda: "[bold]not bold[/]" in screen_text(app), 10, "the final paint")
        shown = screen_text(app)
        assert "[bold]not bold[/]" in shown, shown
        assert "[link=http://x]y[/link]" in shown
        assert "print('[b]')" in shown
        assert "\x1b" not in shown and "\x07" not in shown
        segments = [seg.text for strip in app.screen._compositor.render_strips() for seg in strip]
        assert not any(ch in text for text in segments for ch in "\x1b\x07\x9b")
        # nothing the model sent reached the terminal: no clear, no title, no clipboard write
        out = "".join(written)
        assert "pwned" not in out and "ZXZpbA==" not in out and "\x1b[2J" not in out
        # the stored text is the model's own (raw); only its display is neutralised
        conv = app.conversation.history.store.get_conversation(app.conversation.wait_for_id())
        assert conv.messages[-1].content == "".join(HOSTILE)


async def test_copy_uses_osc52_wrapped_for_tmux(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    reply = ["Here:\n\n```sh\necho hi\n```\n"]
    app = ChatApp(make_config(tmp_path), store=None, backend=ScriptedBackend(reply, model=MODEL))
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, app, "code please")
        written: list[str] = []
        app._driver.write = written.append
        monkeypatch.delenv("TMUX", raising=False)
        await pilot.press("f5")
        import base64
        full = base64.b64encode("".join(reply).encode()).decode()
        assert written == [f"\x1b]52;c;{full}\x07"]
        written.clear()
        monkeypatch.setenv("TMUX", "/tmp/tmux-0/default,1,0")
        await pilot.press("f6")
        code = base64.b64encode(b"echo hi\n").decode()
        bare = f"\x1b]52;c;{code}\x07"
        assert written == [bare + "\x1bPtmux;" + bare.replace("\x1b", "\x1b\x1b") + "\x1b\\"]
        assert app.clipboard == "echo hi\n"
        # a focused message copies itself with "c"
        written.clear()
        app.chat_screen.chat.last("user").focus()
        await pilot.press("c")
        assert app.clipboard == "code please"


async def test_theme_choice_is_remembered(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    app = ChatApp(cfg, store=None, backend=ScriptedBackend(["x"], model=MODEL))
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        app.theme = "nord"
        await pilot.pause()
    saved = tomllib.loads(cfg.path.read_text())
    assert saved["tui"]["theme"] == "nord"
    from aigc_chat.config import load_config

    app2 = ChatApp(load_config(cfg.path), store=None, backend=ScriptedBackend(["x"], model=MODEL))
    async with app2.run_test(size=SIZE) as pilot:
        assert app2.theme == "nord"


async def test_save_as_default_writes_config_without_flags_or_keys(tmp_path: Path) -> None:
    cfg = make_config(tmp_path)
    cfg.path.write_text('[openai]\nbase_url = "http://127.0.0.1:9/v1"\n')
    from aigc_chat.config import load_config

    cfg = load_config(cfg.path).with_overrides(temperature=1.5)  # a command-line flag
    app = ChatApp(cfg, store=None, backend=ScriptedBackend(["x"], model=MODEL))
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        await pilot.press("f3")
        field = app.query_one("#set-top_k")
        field.focus()
        field.value = ""
        await type_text(pilot, "7")
        await pilot.press("enter")
        await pilot.pause()
        app.query_one("#set-save").press()
        await pilot.pause()
    saved = tomllib.loads(cfg.path.read_text())
    assert saved["generation"]["top_k"] == 7
    assert saved["generation"]["temperature"] == 1.5  # the conversation's setting, flag included
    assert saved["openai"]["base_url"] == "http://127.0.0.1:9/v1"
    assert "api_key" not in cfg.path.read_text()


async def test_80x24_no_color_layout(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NO_COLOR", "1")
    backend = ScriptedBackend(["Hello", " there"], model=MODEL)
    app = ChatApp(make_config(tmp_path), store=HistoryStore(), backend=backend)
    async with app.run_test(size=(80, 24)) as pilot:
        await wait_idle(pilot, app)
        assert app.no_color
        await send(pilot, app, "hi")
        await wait_for(pilot, lambda: "Hello there" in screen_text(app), 10, "the reply on screen")
        text = screen_text(app)
        lines = text.splitlines()
        assert len(lines) == 24
        assert "Hello there" in text and "idle" in lines[-2] and "Help" in lines[-1]
        await pilot.press("f2")  # hide history for narrow terminals
        await pilot.pause()
        assert not app.chat_screen.history.display
        await pilot.press("f1")
        await wait_for(pilot, lambda: type(app.screen).__name__ == "HelpScreen" and "Keys" in screen_text(app), 10,
                       "the help screen drawn")
        assert "Keys" in screen_text(app) and "ctrl+j" in screen_text(app)


async def test_no_history_keeps_nothing(tmp_path: Path, isolated_dirs: dict[str, Path]) -> None:
    import argparse

    from aigc_chat.launch import open_history

    opening = open_history(argparse.Namespace(no_history=True))
    assert opening.store is None and opening.off_by_flag
    store = opening.store
    app = ChatApp(make_config(tmp_path, max_tokens=50), store=store, backend=ScriptedBackend(["fine"], model=MODEL))
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        reply = await send(pilot, app, "secret")
        assert reply.text == "fine"
        assert "history is off" in screen_text(app)
    data = isolated_dirs["data"]
    assert not data.exists() or not any(data.iterdir())


async def test_bad_conversation_flags_are_one_line_errors(cli: str) -> None:
    from tests.conftest import run_cli

    # (--continue with nothing saved is not an error: it starts a new conversation, in both
    # front ends; tests/test_front_end_rules.py)
    for args, reason in ((["--conversation", "999"], "no conversation 999"),
                         (["--conversation", "abc"], "expected a conversation id"),
                         (["--conversation", "7", "--no-history"], "no conversation 7")):
        out = run_cli(cli, *args, timeout=60)
        assert out.returncode == 2, (args, out.stderr)
        assert reason in out.stderr and out.stderr.count("\n") == 1 and "Traceback" not in out.stderr

