"""Two processes on one history, in a real terminal: the installed `aigc-chat` in tmux on the
paced plugin backend (tests/paced_backend.py), and another process writing beside it."""

from __future__ import annotations

import shutil
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.paced_backend import install
from tests.tmux_driver import Tmux, idle, tmux_server

pytestmark = pytest.mark.skipif(shutil.which("tmux") is None, reason="needs tmux")


@pytest.fixture
def setup(isolated_dirs: dict[str, Path], tmp_path: Path, cli: str) -> Iterator[tuple[Tmux, list[str], str]]:
    pythonpath = install(tmp_path)
    with tmux_server("aigc-reattach", isolated_dirs["config"],
                     'backend = "paced"\n[paced]\nwords = 5\ndelay_ms = 10\n') as t:
        yield t, ["env", f"PYTHONPATH={pythonpath}", cli], pythonpath


def test_the_history_pane_shows_a_one_shot_conversation_without_a_restart(
        setup: tuple[Tmux, list[str], str], cli: str) -> None:
    tmux, command, pythonpath = setup
    tmux.start(command)
    tmux.wait(lambda s: idle(s) and "0 conversations" in s, 60, "the app, its empty history listed")
    r = run_cli(cli, "--prompt", "Asked from elsewhere", env={"PYTHONPATH": pythonpath})
    assert r.returncode == 0 and r.stdout == "w0 w1 w2 w3 w4\n", r.stderr
    tmux.wait(lambda s: "Asked from elsewhere" in s and "1 conversation" in s, 15, "the pane to list it")
