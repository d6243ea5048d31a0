"""End to end: a reply built to break out of a bracketed paste cannot run a command.

The real app in tmux, on a real llama.cpp model (a tiny GGUF whose greedy reply is exactly
`safe ESC[201~ CR touch PWNED LF`), copies the reply with F5. tmux takes the OSC 52 write
into its paste buffer (`set-clipboard on`), and the buffer is pasted, bracketed, into a real
bash in the next window. Pasted raw, `ESC[201~` would end the paste and the carriage return
would run `touch PWNED`; what we copy is the text as the screen shows it, so nothing runs.
"""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.tiny_gguf import write_chain_gguf
from tests.tmux_driver import Tmux, idle, tmux_server
from tests.waiting import poll_until

pytestmark = [pytest.mark.skipif(shutil.which("tmux") is None or shutil.which("bash") is None,
                                 reason="needs tmux and bash")]

# Every token once (the chain model gives each token one successor): ESC, "~" and CR are
# byte tokens, the rest ordinary pieces.
CHAIN = ["s", "a", "f", "e", "<0x1B>", "[", "2", "0", "1", "<0x7E>", "<0x0D>",
         "t", "o", "u", "c", "h", "▁", "P", "W", "N", "E", "D", "\n"]
REPLY = "safe\x1b[201~\rtouch PWNED\n"


@pytest.fixture
def tmux(isolated_dirs: dict[str, Path]) -> Iterator[Tmux]:
    """conftest's `tmux`, overridden: no default model to assemble, and max_tokens with room
    for the whole chain reply."""
    with tmux_server("aigc-paste", isolated_dirs["config"], "[generation]\ntemperature = 0.0\nmax_tokens = 40\n") as t:
        yield t


def test_copied_reply_cannot_break_out_of_a_bracketed_paste(tmux: Tmux, cli: str, tmp_path: Path) -> None:
    model = write_chain_gguf(tmp_path / "hostile.gguf", CHAIN)
    shell_dir = tmp_path / "shell"
    shell_dir.mkdir()
    inputrc = tmp_path / "inputrc"
    inputrc.write_text("set enable-bracketed-paste on\n")

    tmux.start([cli, "--model", str(model), "--no-history"])
    tmux.run("set-option", "-g", "set-clipboard", "on")
    tmux.wait(idle, 120, "the model to load")
    tmux.text("give me a command")
    tmux.keys("Enter")
    tmux.wait(lambda s: "touch PWNED" in s and idle(s), 60, "the reply")
    tmux.keys("F5")
    seen = [""]

    def copied() -> bool:
        seen[0] = tmux.run("show-buffer", check=False).stdout
        return "PWNED" in seen[0]

    poll_until(copied, 20, interval=0.1)
    buffer = seen[0]
    assert "touch PWNED" in buffer, f"no clipboard write reached tmux: {buffer!r}"
    assert "\x1b" not in buffer and "\r" not in buffer, repr(buffer)

    # a real shell that asked for bracketed paste, as bash 5.1+ does by default
    tmux.run("new-window", "-t", "t", "-n", "sh", "-c", str(shell_dir),
             "env", f"INPUTRC={inputrc}", "PS1=READY$ ", "bash", "--norc", "--noprofile", "-i")
    tmux.wait(lambda s: "READY$" in s, 20, "the shell")  # the capture follows the new window
    tmux.run("paste-buffer", "-p", "-t", "t:sh")
    tmux.wait(lambda s: "PWNED" in s, 10, "the paste on the command line")
    tmux.run("send-keys", "-t", "t:sh", "C-c")  # throw the pasted line away, unrun
    tmux.run("send-keys", "-t", "t:sh", "-l", "echo DONE-$((6*7))")
    tmux.run("send-keys", "-t", "t:sh", "Enter")
    tmux.wait(lambda s: "DONE-42" in s, 10, "the shell to run a command of ours")
    assert not (shell_dir / "PWNED").exists(), "the pasted reply ran a command"
    assert list(shell_dir.iterdir()) == []
