"""The TUI against hostile model text and hostile paths: what reaches the clipboard, the
screen and the notices is safe, and a special file never hangs a load (issue 9, cases 2, 4,
9, 10). The replies come from the one scripted backend: a real model cannot be made to emit
`ESC[201~` or U+202E on demand."""

from __future__ import annotations

import base64
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from aigc_chat.history_store import HistoryStore
from aigc_chat.sanitize import sanitize
from aigc_chat.tui.app import ChatApp
from aigc_chat.tui.launch import require_terminal
from aigc_chat.tui.text_utils import last_code_block
from tests.scripted_backend import ScriptedBackend
from tests.tui_driver import SIZE, make_config, screen_text, send, wait_for, wait_idle

# A reply that, pasted raw into a shell with bracketed paste, ends the paste early and runs
# a command: ESC[201~ closes the paste, the carriage return submits what follows.
PASTE_ESCAPE = "Run this:\n\n```sh\necho safe\x1b[201~\rtouch /tmp/pwned\r\n```\n"
TROJAN = "access = \u202e}\u2066if (admin)\u2069\u2066 {\u200b\ufeff\u2060 done"

OSC52 = re.compile(r"\x1b\]52;c;([A-Za-z0-9+/=]*)\x07")


def pasted(written: list[str]) -> str:
    """What the terminal puts on the clipboard: the payload of the (first) OSC 52 write."""
    found = OSC52.search("".join(written))
    assert found, written
    return base64.b64decode(found.group(1)).decode("utf-8")


def assert_safe_to_paste(text: str) -> None:
    """Pasted into a terminal in bracketed-paste mode, this text stays one paste: it cannot
    end the paste, submit a line, or carry any other control or invisible character."""
    assert "\x1b" not in text and "\x9b" not in text
    assert "\r" not in text
    assert not any(ord(c) < 0x20 and c not in "\n\t" for c in text)
    bracketed = f"\x1b[200~{text}\x1b[201~"
    assert bracketed.count("\x1b[201~") == 1 and bracketed.endswith("\x1b[201~")
    for ch in "\u202e\u2066\u2069\u200b\ufeff\u2060":
        assert ch not in text


@pytest.mark.asyncio
@pytest.mark.parametrize("key,focus_message", [("f5", False), ("f6", False), ("c", True), ("b", True)])
async def test_every_copy_is_safe_to_paste(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, key: str,
                                           focus_message: bool) -> None:
    monkeypatch.delenv("TMUX", raising=False)
    app = ChatApp(make_config(tmp_path), store=None, backend=ScriptedBackend([PASTE_ESCAPE]))
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, app, "give me a command")
        written: list[str] = []
        app._driver.write = written.append
        if focus_message:
            app.chat_screen.chat.last("assistant").focus()
            await pilot.pause()
        await pilot.press(key)
        await wait_for(pilot, lambda: bool(written), 5, "the clipboard write")
        text = pasted(written)
        assert_safe_to_paste(text)
        # what is copied is what the screen shows, nothing dropped: the command is visible
        assert "touch /tmp/pwned" in text and "\u240d" in text  # ␍, as on screen
        assert app.clipboard == text
        whole = key in ("f5", "c")
        assert text == sanitize(PASTE_ESCAPE if whole else last_code_block(PASTE_ESCAPE) or "")


@pytest.mark.asyncio
async def test_textual_own_copies_are_sanitised_and_tmux_wrapped(tmp_path: Path,
                                                               monkeypatch: pytest.MonkeyPatch) -> None:
    """A selection copied with Textual's own machinery goes the same way as F5."""
    monkeypatch.setenv("TMUX", "/tmp/tmux-0/default,1,0")
    app = ChatApp(make_config(tmp_path), store=None, backend=ScriptedBackend(["x"]))
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        written: list[str] = []
        app._driver.write = written.append
        app.copy_to_clipboard(TROJAN + "\x1b[201~\r")
        text = pasted(written)
        assert_safe_to_paste(text)
        assert "\x1bPtmux;" in "".join(written)  # wrapped for tmux as well


@pytest.mark.asyncio
async def test_invisible_direction_changes_are_shown_visibly(tmp_path: Path) -> None:
    store = HistoryStore()
    app = ChatApp(make_config(tmp_path), store=store, backend=ScriptedBackend([TROJAN]))
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        await send(pilot, app, "title \u202eevil")
        await wait_for(pilot, lambda: "⟨U+2066⟩" in screen_text(app), 10, "the final paint")
        segments = [seg.text for strip in app.screen._compositor.render_strips() for seg in strip]
        for ch in "\u202e\u202c\u2066\u2069\u200b\ufeff\u2060":
            assert not any(ch in s for s in segments), repr(ch)
        shown = screen_text(app)
        assert "⟨U+202E⟩" in shown and "⟨U+200B⟩" in shown
        # stored exactly as the model said it
        conv = store.get_conversation(app.conversation.wait_for_id())
        assert conv.messages[-1].content == TROJAN


@pytest.mark.asyncio
async def test_notices_never_parse_markup(tmp_path: Path) -> None:
    """Errors carry file names and server text; `[/x]` in one once raised MarkupError."""
    app = ChatApp(make_config(tmp_path), store=None, backend=ScriptedBackend(["x"]))
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        from textual.widgets._toast import Toast

        app.notify("cannot load [/x] [bold]model[/bold] \x1b[2J\u202e", timeout=60)
        await wait_for(pilot, lambda: bool(app._notifications), 10, "the notice")
        note = list(app._notifications)[-1]
        assert note.markup is False
        shown = str(Toast(note).render())  # with markup on, `[/x]` raised MarkupError here
        assert "[bold]model[/bold]" in shown and "⟨U+202E⟩" in shown and "\x1b" not in shown


@pytest.mark.asyncio
@pytest.mark.slow
async def test_model_command_on_a_fifo_fails_at_once(tmp_path: Path, gemma_path: Path) -> None:
    fifo = tmp_path / "m.gguf"
    os.mkfifo(fifo)
    app = ChatApp(make_config(tmp_path), store=None, backend=ScriptedBackend(["x"]))
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        prompt = app.query_one("#prompt")
        prompt.focus()
        prompt.load_text(f"/model {fifo}")
        await pilot.press("enter")
        notes = lambda: " ".join(str(n.message) for n in app._notifications)  # noqa: E731
        await wait_for(pilot, lambda: "FIFO" in notes() or "FIFO" in screen_text(app), 30, "the refusal")
        # and a real model still loads after it: nothing is queued behind a stuck load
        prompt.load_text(f"/model {gemma_path}")
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.chat_screen.chat_state.phase == "idle"
                       and "gemma" in screen_text(app).lower(), 120,
                       "the next load")


def test_require_terminal() -> None:
    class Pipe:
        def isatty(self) -> bool:
            return False

    class Tty:
        def isatty(self) -> bool:
            return True

    with pytest.raises(Exception, match="stdin is not one"):
        require_terminal(Pipe(), Tty())
    with pytest.raises(Exception, match="stdout is not one"):
        require_terminal(Tty(), Pipe())
    require_terminal(Tty(), Tty())


def test_a_stuck_worker_does_not_keep_the_process_alive() -> None:
    """ctrl+q while a worker sits in a call that cannot be interrupted: the process ends."""
    code = (
        "import threading\n"
        "from aigc_chat.tui.launch import exit_when_stuck\n"
        "threading.Thread(target=threading.Event().wait).start()  # never returns, not a daemon\n"
        "exit_when_stuck(7, grace=0.2)\n"
        "raise SystemExit(99)\n"
    )
    proc = subprocess.run([sys.executable, "-c", code], timeout=30, capture_output=True)
    assert proc.returncode == 7, proc.stderr


@pytest.mark.asyncio
async def test_settings_pane_and_slash_stop_take_the_command_line_escapes(tmp_path: Path) -> None:
    from tests.tui_driver import type_text

    app = ChatApp(make_config(tmp_path), store=None, backend=ScriptedBackend(["line one\n", "line two\n"]))
    async with app.run_test(size=SIZE) as pilot:
        await wait_idle(pilot, app)
        await pilot.press("f3")
        app.query_one("#set-stop-add").focus()
        await type_text(pilot, "\\n")  # a backslash and an n, as a user types them
        await pilot.press("enter")
        await wait_for(pilot, lambda: app.conversation.settings.params.stop == ("\n",), 5, "the stop")
        assert "\\n" in screen_text(app)  # listed the way it was typed
        await pilot.press("f3")
        reply = await send(pilot, app, "two lines please")
        assert reply.text == "line one" and reply.finish_reason == "stop"
        await send(pilot, app, "/stop add \\t\\x41")
        assert app.conversation.settings.params.stop == ("\n", "\tA")
