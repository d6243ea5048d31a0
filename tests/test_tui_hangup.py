"""The terminal goes away under a running TUI (an SSH link drops, a tmux pane is killed).

Textual's input thread treats end-of-file as "no input yet", so a TUI whose terminal has
gone spun a core forever (seen: 44 CPU-minutes from one orphaned `make run`). The app now
quits on SIGHUP and, when no SIGHUP comes (the terminal was not its controlling one), on the
hang-up its input shows. Both run the installed app in a real pseudo-terminal and close it.
"""

from __future__ import annotations

import os
import sys
from pathlib import Path

import pytest

from tests.pty_app import PtyApp
from tests.waiting import poll_until

# Runs the app in a session of its own, so the pty is not its controlling terminal and
# closing it sends no SIGHUP: only the input's hang-up tells.
NO_SIGHUP = (
    "import os, signal, sys\n"
    "pid = os.fork()\n"
    "if pid == 0:\n"
    "    os.setsid()\n"
    "    os.execv(sys.argv[1], sys.argv[1:])\n"
    "signal.signal(signal.SIGHUP, signal.SIG_IGN)  # this wrapper owns the terminal; it waits\n"
    "open(os.environ['AIGC_TEST_CHILD_PID'], 'w').write(str(pid))\n"
    "_, status = os.waitpid(pid, 0)\n"
    "sys.exit(os.waitstatus_to_exitcode(status))\n"
)


def _exit_status(pid: int, timeout: float) -> int | None:
    """The child's exit code once it has exited, or None if it is still running after
    `timeout` seconds (the caller then kills it and fails)."""
    codes: list[int] = []

    def exited() -> bool:
        done, status = os.waitpid(pid, os.WNOHANG)
        if done:
            codes.append(os.waitstatus_to_exitcode(status))
        return bool(done)

    return codes[0] if poll_until(exited, timeout) else None


@pytest.mark.parametrize("sighup", [True, False], ids=["sighup", "no-sighup"])
def test_tui_quits_when_its_terminal_goes_away(cli: str, isolated_dirs: dict[str, Path], sighup: bool) -> None:
    pidfile = isolated_dirs["home"] / "child.pid"
    env = dict(os.environ, AIGC_TEST_CHILD_PID=str(pidfile))
    cmd = [cli, "--model", str(isolated_dirs["home"] / "missing.gguf")]
    if not sighup:
        cmd = [sys.executable, "-c", NO_SIGHUP, *cmd]
    app = PtyApp(cmd, env, rows=24, cols=80)
    try:
        assert app.read(60, marker=b"load failed", quiet=0.5), bytes(app.buf[-400:])
    finally:
        os.close(app.fd)  # the terminal goes away
    code = _exit_status(app.pid, 20)
    if code is None:
        for pid in (int(pidfile.read_text()) if pidfile.exists() else None, app.pid):
            if pid:
                os.kill(pid, 9)  # the app in its own session would outlive the wrapper
        os.waitpid(app.pid, 0)
        raise AssertionError("the TUI kept running after its terminal went away")
    assert code == 129, code


def test_a_shutdown_that_cannot_finish_still_ends_the_process() -> None:
    """After a hang-up the watchdog ends the process even if the app's own shutdown blocks
    (Textual's writer thread stuck on a dead terminal); a shutdown that finishes first
    leaves it nothing to do (it is a daemon timer)."""
    import threading

    from aigc_chat.tui.terminal_watch import HANGUP_EXIT, arm_watchdog

    ended: list[int] = []
    fired = threading.Event()

    def end(code: int) -> None:
        ended.append(code)
        fired.set()

    timer = arm_watchdog(0.05, end)
    assert timer.daemon and fired.wait(10) and ended == [HANGUP_EXIT]
