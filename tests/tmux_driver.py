"""Drive the installed `aigc-chat` in a real terminal: a tmux server of the test's own.

Shared by the end-to-end tests (test_e2e_*.py). Each `Tmux` runs its own server on its own
socket (`tmux -L NAME`), so a test never touches the user's tmux, and `kill-server` at the
end stops exactly the server (and the app in it) that the test started.
"""

from __future__ import annotations

import itertools
import os
import subprocess
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from pathlib import Path

from tests.waiting import wait_for


class Tmux:
    """One tmux server on socket `socket`; the app runs in its session "t"."""

    def __init__(self, socket: str, env: dict[str, str]) -> None:
        self.socket = socket
        self.env = env

    def run(self, *args: str, check: bool = True) -> subprocess.CompletedProcess[str]:
        """A tmux command against this server."""
        return subprocess.run(["tmux", "-L", self.socket, *args], capture_output=True, text=True,
                              check=check, timeout=30, env=self.env)

    def start(self, command: list[str]) -> None:
        """Start `command` in a 100x30 session, with the test's isolated AIGC_CHAT_*/XDG_* dirs
        (tmux does not pass the client's environment to a new session's command)."""
        env_args = [f"{k}={v}" for k, v in self.env.items() if k.startswith(("AIGC_CHAT_", "XDG_"))]
        self.run("new-session", "-d", "-x", "100", "-y", "30", "-s", "t",
                 "env", *env_args, "TERM=xterm-256color", *command)

    def keys(self, *keys: str) -> None:
        """Named keys (Enter, C-q, F5), as tmux spells them."""
        self.run("send-keys", "-t", "t", *keys)

    def text(self, *keys: str) -> None:
        """Literal text, typed."""
        self.run("send-keys", "-t", "t", "-l", *keys)

    def screen(self) -> str:
        """The visible pane as plain text."""
        return self.run("capture-pane", "-p", "-t", "t", check=False).stdout

    def alive(self) -> bool:
        return self.run("has-session", "-t", "t", check=False).returncode == 0

    def wait(self, predicate: Callable[[str], bool], timeout: float = 120, what: str = "") -> str:
        """Poll the screen until `predicate(screen)` holds; return that screen. On a timeout
        the failure shows the last screen seen."""
        last = [""]

        def holds() -> bool:
            last[0] = self.screen()
            return predicate(last[0])

        wait_for(holds, timeout, what, interval=0.2, detail=lambda: f"screen:\n{last[0]}")
        return last[0]

    def wait_exit(self, timeout: float = 20) -> None:
        """Wait for the app to exit (its session ends with it)."""
        wait_for(lambda: not self.alive(), timeout, "aigc-chat to exit", interval=0.1,
                 detail=lambda: f"screen:\n{self.screen()}")


def status_line(screen: str) -> str:
    """The status bar: the last line showing the context meter."""
    lines = [ln for ln in screen.splitlines() if "│ ctx" in ln]
    return lines[-1] if lines else ""


def idle(screen: str) -> bool:
    """The status bar ends in "idle": not loading a model, not generating."""
    return status_line(screen).rstrip().endswith("idle")


_SERVERS = itertools.count()


@contextmanager
def tmux_server(name: str, config: Path, config_text: str) -> Iterator[Tmux]:
    """Write the app's config file, yield a `Tmux` on a socket of this test run's own
    (`NAME-<pid>`), and kill that server, and so the app in it, however the test ends."""
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(config_text)
    # a socket per server, not per test run: a test's kill-server can still be shutting the
    # last one down when the next test starts ("server exited unexpectedly")
    t = Tmux(f"{name}-{os.getpid()}-{next(_SERVERS)}", dict(os.environ))
    try:
        yield t
    finally:
        t.run("kill-server", check=False)
