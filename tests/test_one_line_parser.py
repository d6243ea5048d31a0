"""One parser error policy for every command line (aigc_chat.argtypes.OneLineParser):
a mistake is one line, `PROG: error: MESSAGE (see PROG --help)`, and exit 2."""

from __future__ import annotations

import pytest

from tests.conftest import run_cli

CASES = [
    (["--bogus"], "aigc-chat", "unrecognized arguments: --bogus"),
    (["--top-k", "x"], "aigc-chat", "argument --top-k: expected an integer, got 'x'"),
    (["doctor", "--bogus"], "aigc-chat doctor", "unrecognized arguments: --bogus"),
    (["models", "--json", "--nope"], "aigc-chat models", "unrecognized arguments: --nope"),
    (["config", "delete"], "aigc-chat config", "argument action: invalid choice: 'delete'"),
    (["history", "show", "x"], "aigc-chat history show", "argument ID: expected a conversation id, got 'x'"),
    (["history", "frob"], "aigc-chat history", "argument COMMAND: invalid choice: 'frob'"),
    (["gan", "--bogus"], "aigc-chat gan", "unrecognized arguments: --bogus"),
    (["gan", "--n", "0"], "aigc-chat gan sample", "argument --n: expected an integer from 1 to 10000, got '0'"),
    (["gan", "train", "--lr", "2"], "aigc-chat gan train", "argument --lr: expected a learning rate"),
]


@pytest.mark.parametrize(("args", "prog", "message"), CASES, ids=[" ".join(c[0]) for c in CASES])
def test_every_command_reports_a_usage_error_in_one_line(cli: str, args: list[str], prog: str, message: str) -> None:
    r = run_cli(cli, *args, timeout=60)
    assert r.returncode == 2, r.stderr
    assert r.stdout == ""
    (line,) = r.stderr.splitlines()
    assert line.startswith(f"{prog}: error: {message}"), line
    assert line.endswith(f" (see {prog} --help)"), line


def test_what_was_typed_cannot_drive_the_terminal_or_break_the_line(cli: str) -> None:
    r = run_cli(cli, "--bogus", "\x1b]0;pwned\x07", "two\nlines", timeout=60)
    assert r.returncode == 2
    assert "\x1b" not in r.stderr and "\x07" not in r.stderr
    assert r.stderr.count("\n") == 1 and "two\u240alines" in r.stderr
