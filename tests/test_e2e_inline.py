"""`aigc-chat --inline` in a real terminal (tmux): the app runs below the shell's output, not
on the alternate screen, and on quit the conversation is left in the terminal's scrollback
as plain text, with a model's escapes, markup and bidi controls as inert as on the full
screen. The reply comes from the paced plugin backend (tests/paced_backend.py), here with a
hostile text."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.paced_backend import install
from tests.tmux_driver import Tmux, idle, tmux_server

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")

HOSTILE = "Plain start [bold]not bold[/] \x1b]0;pwned\x07\x1b[2J mid \u202eevil\u202c end of reply."


@pytest.fixture
def tmux(isolated_dirs: dict[str, Path], tmp_path: Path) -> Iterator[Tmux]:
    text = tmp_path / "hostile.txt"
    text.write_text(HOSTILE, encoding="utf-8")
    config = f'backend = "paced"\n[paced]\ntext_file = "{text}"\ndelay_ms = 5\n'
    with tmux_server("aigc-inline", isolated_dirs["config"], config) as t:
        yield t


def test_inline_keeps_the_conversation_in_the_scrollback_inert(tmux: Tmux, cli: str, tmp_path: Path) -> None:
    pythonpath = install(tmp_path)
    tmux.start(["sh", "-c", 'echo "shell output before"; "$@"; echo "app exited $?"; exec sleep 60', "sh",
                "env", f"PYTHONPATH={pythonpath}", cli, "--inline"])
    screen = tmux.wait(idle, 60, "the inline app to load")
    assert "shell output before" in screen  # not the alternate screen: what was there stays
    tmux.text("Say something odd")
    tmux.keys("Enter")
    tmux.wait(lambda s: "end of reply." in s and idle(s), 30, "the reply")
    tmux.keys("C-q")
    tmux.wait(lambda s: "app exited 0" in s, 20, "the app to quit")
    history = tmux.run("capture-pane", "-p", "-S", "-", "-t", "t").stdout
    assert "shell output before" in history
    after = history[history.rindex("shell output before"):]
    assert "You:\nSay something odd" in after and "Assistant:\nPlain start [bold]not bold[/]" in after
    assert "end of reply." in after and "\u202e" not in after and "\x1b" not in after
    title = tmux.run("display-message", "-p", "-t", "t", "#{pane_title}").stdout
    assert "pwned" not in title


def test_inline_with_a_prompt_is_refused_in_one_line(cli: str) -> None:
    r = run_cli(cli, "--inline", "--prompt", "hi", "--no-history")
    assert r.returncode == 2 and r.stderr.count("\n") == 1 and "--inline is for the TUI" in r.stderr
