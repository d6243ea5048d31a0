"""Quiet redraws in a real terminal: the installed `aigc-chat` in tmux streams a reply that
scrolls the chat (prose and a code block, on the paced plugin backend), once with
`[tui] quiet_output` on and once off. tmux's own screen afterwards, colours and attributes
included (`capture-pane -e`), must be the same: the filter only decides which cells to
resend, never what the screen shows."""

from __future__ import annotations

import difflib
import re
import shutil
from pathlib import Path

import pytest

from tests.paced_backend import install
from tests.tmux_driver import idle, tmux_server

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")

REPLY = ("The keeper climbs the stairs at dusk and trims the wick. " * 14 + "\n\n```python\n"
         + "".join("def step(lamp):\n    return lamp.bright()\n\n" for _ in range(6)) + "```\n\n"
         + "Ships pass far out on the grey water while gulls circle the rocks. " * 6)
TIMING = re.compile(r"\d+\.\d+")  # the stats line's seconds and tokens per second


def final_screen(tmp_path: Path, config: Path, cli: str, quiet: bool, resize: bool = False) -> str:
    delay = 15 if resize else 5  # a reply of ~2 s: the resize comes while it streams
    tmp_path.mkdir()
    pythonpath = install(tmp_path)
    text = tmp_path / "reply.txt"
    text.write_text(REPLY)
    with tmux_server("aigc-quiet", config,
                     f'backend = "paced"\n[paced]\ntext_file = "{text}"\npiece_chars = 16\ndelay_ms = {delay}\n'
                     f"[generation]\nmax_tokens = 400\n[tui]\nquiet_output = {str(quiet).lower()}\n") as t:
        t.start(["env", f"PYTHONPATH={pythonpath}", cli, "--no-history"])
        t.wait(idle, 60, "the paced backend to load")
        t.text("Tell me about the lighthouse")
        t.keys("Enter")
        if resize:  # mid-reply, smaller and back: the terminal may keep anything of the old screen
            t.wait(lambda s: "keeper" in s, 30, "the reply to be streaming")
            t.run("resize-window", "-t", "t", "-x", "70", "-y", "20")
            t.wait(lambda s: len(s.splitlines()) <= 20, 10, "the smaller window")
            t.run("resize-window", "-t", "t", "-x", "100", "-y", "30")
        t.wait(lambda s: "tok/s" in s and idle(s), 60, "the reply to end")
        screen = t.run("capture-pane", "-p", "-e", "-t", "t").stdout
        t.keys("C-q")
        t.wait_exit()
    # the stats line's figures differ from run to run, and so the padding after them
    return "\n".join(re.sub(" +", " ", TIMING.sub("N", line)) if "tok/s" in line else line
                     for line in screen.splitlines())


@pytest.mark.parametrize("resize", [False, True], ids=["still", "resized-mid-reply"])
def test_the_screen_after_a_streamed_reply_is_the_same_with_quiet_output(
        tmp_path: Path, isolated_dirs: dict[str, Path], cli: str, resize: bool) -> None:
    quiet = final_screen(tmp_path / "on", isolated_dirs["config"], cli, quiet=True, resize=resize)
    textual = final_screen(tmp_path / "off", isolated_dirs["config"], cli, quiet=False, resize=resize)
    assert "rocks." in quiet and "tok/s" in quiet  # the reply's end is on screen
    assert "lighthouse" not in quiet  # the question scrolled away: the chat scrolled as it streamed
    assert quiet == textual, "\n".join(difflib.unified_diff(textual.splitlines(), quiet.splitlines(), lineterm=""))
