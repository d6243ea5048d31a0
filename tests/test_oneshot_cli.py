"""`aigc-chat --prompt` as scripts use it: the installed command, the real default model."""

from __future__ import annotations

import json
import signal
import subprocess

import pytest

from tests.conftest import run_cli, run_python

FAST = ("--temperature", "0", "--max-tokens", "12")


@pytest.fixture(autouse=True)
def _model(default_path):
    """Every test here runs on the real default model (assembled once)."""
    return default_path


def test_answer_on_stdout_nothing_else(cli):
    r = run_cli(cli, "--prompt", "Say hello.", *FAST)
    assert r.returncode == 0, r.stderr
    assert r.stdout.strip() and r.stdout.endswith("\n")
    assert r.stderr == ""  # no progress noise when stderr is not a terminal


def test_greedy_runs_agree_across_processes(cli):
    a = run_cli(cli, "--prompt", "Count to five.", *FAST)
    b = run_cli(cli, "--prompt", "Count to five.", *FAST)
    assert a.stdout == b.stdout and a.stdout.strip()


def test_seed_with_temperature_is_repeatable(cli):
    args = ("--prompt", "Tell me a story.", "--temperature", "1.0", "--max-tokens", "16")
    a = run_cli(cli, *args, "--seed", "11")
    b = run_cli(cli, *args, "--seed", "11")
    c = run_cli(cli, *args, "--seed", "12")
    assert a.returncode == 0 and a.stdout == b.stdout
    assert a.stdout != c.stdout


def test_json_output(cli):
    r = run_cli(cli, "--prompt", "Say hello.", *FAST, "--json")
    assert r.returncode == 0
    obj = json.loads(r.stdout)
    assert obj["finish_reason"] in ("stop", "length")
    assert obj["usage"]["completion_tokens"] > 0 and obj["usage"]["prompt_tokens"] > 0
    assert obj["usage"]["total_tokens"] == obj["usage"]["prompt_tokens"] + obj["usage"]["completion_tokens"]
    assert isinstance(obj["text"], str) and obj["backend"] == "llama"


def test_stdin_is_sent_with_the_prompt(cli):
    alone = json.loads(run_cli(cli, "--prompt", "Summarise.", *FAST, "--json").stdout)
    piped = json.loads(run_cli(cli, "--prompt", "Summarise.", *FAST, "--json",
                               input="The cat sat on the mat. " * 5).stdout)
    assert piped["usage"]["prompt_tokens"] > alone["usage"]["prompt_tokens"] + 20


def test_prompt_dash_reads_only_stdin(cli):
    r = run_cli(cli, "--prompt", "-", *FAST, input="Say hello.")
    assert r.returncode == 0 and r.stdout.strip()
    r = run_cli(cli, "--prompt", "-", *FAST, input="")
    assert r.returncode == 2 and "prompt is empty" in r.stderr


def test_stop_flag(cli):
    full = run_cli(cli, "--prompt", "Write a sentence about the sea.", "--temperature", "0",
                   "--max-tokens", "30").stdout.rstrip("\n")
    word = full.split()[2]
    r = run_cli(cli, "--prompt", "Write a sentence about the sea.", "--temperature", "0",
                "--max-tokens", "30", "--stop", word, "--json")
    obj = json.loads(r.stdout)
    assert obj["text"] == full[: full.index(word)] and obj["finish_reason"] == "stop"


def test_verbose_stats_go_to_stderr(cli):
    r = run_cli(cli, "--prompt", "Hi", *FAST, "--verbose")
    assert r.returncode == 0
    assert "tok/s" in r.stderr and "prompt" in r.stderr and "tok/s" not in r.stdout


def test_ctrl_c_keeps_partial_text_exit_130(cli):
    proc = subprocess.Popen([cli, "--prompt", "Write a long essay about rivers.", "--temperature", "0",
                             "--max-tokens", "2000"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    first = proc.stdout.read(8)  # the answer has started streaming
    assert first
    proc.send_signal(signal.SIGINT)
    out, err = proc.communicate(timeout=60)
    assert proc.returncode == 130, err
    text = (first + out).decode()
    assert len(text) > 8 and text.endswith("\n")
    assert b"Traceback" not in err


def test_closed_pipe_is_quiet(cli):
    proc = subprocess.Popen([cli, "--prompt", "Write a long essay about rivers.", "--temperature", "0",
                             "--max-tokens", "400"], stdin=subprocess.DEVNULL,
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE)
    proc.stdout.read(1)
    proc.stdout.close()  # like `| head -c 1`
    err = proc.stderr.read()
    proc.wait(timeout=60)
    assert proc.returncode == 0
    assert err == b""


def test_llama_path_never_imports_torch(tmp_path):
    code = (
        "import sys\n"
        "from aigc_chat.cli import main\n"
        "rc = main(['--prompt', 'hi', '--temperature', '0', '--max-tokens', '2'])\n"
        "assert 'torch' not in sys.modules, 'torch was imported'\n"
        "sys.exit(rc)\n"
    )
    r = run_python(code, timeout=120)
    assert r.returncode == 0, r.stderr


def test_help_is_quick_and_imports_nothing_heavy():
    code = (
        "import sys\n"
        "from aigc_chat.cli import main\n"
        "try:\n    main(['--help'])\nexcept SystemExit:\n    pass\n"
        "heavy = [m for m in ('torch', 'llama_cpp', 'textual', 'numpy') if m in sys.modules]\n"
        "assert not heavy, heavy\n"
    )
    r = run_python(code)
    assert r.returncode == 0, r.stderr
