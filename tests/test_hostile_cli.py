"""The installed `aigc-chat` against hostile and broken input, as a user or an attacker runs it.

Each case is one a hostile battery broke (issue 9): bytes that are not UTF-8, numbers past
what SQLite or llama.cpp can take, closed or full standard streams, special files where a
regular one belongs, invisible direction changes in model text, stop sequences typed with
escapes. Every run is the real console script in a subprocess, on the real default model
or a real HTTP server on 127.0.0.1; the rule checked each time is the same: one clear line,
the right exit code, never a traceback, a hang or a native crash, and nothing lost.
"""

from __future__ import annotations

import base64
import json
import os
import sqlite3
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from tests.conftest import run_cli
from tests.fault_server import FaultServer, chunk

GREEDY = ("--temperature", "0", "--max-tokens", "12")


def one_error_line(proc: subprocess.CompletedProcess, code: int, *needles: str) -> str:
    """The run ended with `code` and exactly one line on stderr naming the problem."""
    err = proc.stderr if isinstance(proc.stderr, str) else proc.stderr.decode("utf-8", "replace")
    assert proc.returncode == code, (proc.returncode, err)
    lines = [line for line in err.splitlines() if line.strip()]
    assert len(lines) == 1, err
    assert "Traceback" not in err and "internal error" not in err, err
    for needle in needles:
        assert needle in lines[0], lines[0]
    return lines[0]


def conversations(data_dir: Path) -> list[tuple[int, str, int]]:
    """(id, title, number of messages) of every stored conversation, read with plain SQLite."""
    db = data_dir / "history.sqlite3"
    if not db.exists():
        return []
    with sqlite3.connect(db) as conn:
        return conn.execute(
            "SELECT c.id, c.title, (SELECT count(*) FROM messages m WHERE m.conversation_id = c.id) "
            "FROM conversations c ORDER BY c.id").fetchall()


# -- case 4: no terminal -------------------------------------------------------------------

def test_tui_without_a_terminal_says_so_and_exits(cli: str) -> None:
    # stdin at end-of-file used to spin at 100% CPU forever; the timeout would catch that.
    proc = run_cli(cli, timeout=30)  # stdin is /dev/null, stdout a pipe
    one_error_line(proc, 2, "needs a terminal", "--prompt")


# -- case 5: bytes that are not UTF-8 in an argument ----------------------------------------

@pytest.mark.slow
def test_non_utf8_prompt_is_answered_and_saved(cli: str, gemma_path: Path, isolated_dirs: dict) -> None:
    proc = subprocess.run([cli, "-p", b"caf\xe9 au lait", *GREEDY], capture_output=True, timeout=300,
                          stdin=subprocess.DEVNULL)
    err = proc.stderr.decode()
    assert proc.returncode == 0, err
    assert proc.stdout.strip(), "no answer"
    assert "not valid UTF-8" in err and "Traceback" not in err
    convs = conversations(isolated_dirs["data"])
    assert len(convs) == 1 and convs[0][1] == "caf\ufffd au lait" and convs[0][2] == 2, convs
    # the same bytes in a history search and a rename are text too
    proc = subprocess.run([cli, "history", "search", b"caf\xe9"], capture_output=True, timeout=60)
    assert proc.returncode in (0, 1) and b"Traceback" not in proc.stderr and b"internal" not in proc.stderr
    proc = subprocess.run([cli, "history", "rename", "1", b"th\xe9"], capture_output=True, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert conversations(isolated_dirs["data"])[0][1] == "th\ufffd"


# (The class behind case 5, a first message that cannot be stored leaving no empty
# conversation behind, is tested on the conversation core both front ends use:
# tests/test_conversation_core.py::test_a_failed_first_message_leaves_no_empty_conversation.)


# -- case 6: numbers that reach native code --------------------------------------------------

@pytest.mark.parametrize("section,key,value", [
    ("llama", "n_threads", 65536), ("llama", "n_threads", 100000), ("llama", "n_threads", 2147483647),
    ("llama", "n_batch", 2**40), ("llama", "n_ctx", 2**40), ("llama", "n_gpu_layers", 2**40),
    ("torch", "n_threads", 100000), ("torch", "n_ctx", 2**40),
])
def test_native_numbers_out_of_range_are_one_line(cli: str, isolated_dirs: dict, section: str, key: str,
                                                  value: int) -> None:
    cfg = isolated_dirs["config"]
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text(f"[{section}]\n{key} = {value}\n")
    proc = run_cli(cli, "-p", "hi", "--backend", section, timeout=60)
    one_error_line(proc, 2, f"{section}.{key}", "must be")


@pytest.mark.parametrize("args,needle", [
    (["--top-k", "99999999999"], "top-k"),
    (["--seed", str(2**40)], "seed"),
    (["--temperature", "nan"], "temperature"),
    (["--max-tokens", str(2**70)], "max-tokens"),
])
def test_generation_numbers_out_of_range_are_one_line(cli: str, args: list[str], needle: str) -> None:
    one_error_line(run_cli(cli, "-p", "hi", *args, timeout=60), 2, needle)


@pytest.mark.parametrize("args", [
    ["gan", "train", "--threads", "100000", "--epochs", "0"],
    ["gan", "sample", "--n", "1000000000"],
    ["gan", "sample", "--scale", "100000"],
    ["gan", "train", "--lr", "inf", "--epochs", "0"],
    ["gan", "train", "--batch-size", str(2**40), "--epochs", "0"],
])
def test_gan_numbers_out_of_range_are_one_line(cli: str, args: list[str]) -> None:
    one_error_line(run_cli(cli, *args, timeout=60), 2, "expected")


# -- case 8: numbers past SQLite, broken standard streams, a cache dir that is a file ---------

@pytest.mark.parametrize("args", [
    ["--conversation", "99999999999999999999999", "-p", "hi"],
    ["history", "show", "99999999999999999999999"],
    ["history", "export", "99999999999999999999999"],
    ["history", "list", "--limit", "99999999999999999999999"],
    ["history", "search", "x", "--limit", "99999999999999999999999"],
])
def test_numbers_past_int64_are_usage_errors(cli: str, args: list[str]) -> None:
    one_error_line(run_cli(cli, *args, timeout=60), 2, "expected")


def _shell(cli: str, redirect: str, *args: str) -> subprocess.CompletedProcess[str]:
    quoted = " ".join(f"'{a}'" for a in (cli, *args))
    return subprocess.run(["bash", "-c", f"exec {quoted} {redirect}"], capture_output=True, text=True,
                          timeout=300, stdin=subprocess.DEVNULL, env=dict(os.environ))


@pytest.mark.slow
def test_stdout_full_or_closed_is_one_line(cli: str, gemma_path: Path, isolated_dirs: dict) -> None:
    one_error_line(_shell(cli, ">/dev/full", "-p", "hi", *GREEDY), 1, "cannot write to stdout")
    # the answer was generated and is in the history: only the terminal copy was lost
    assert [c[2] for c in conversations(isolated_dirs["data"])] == [2]
    one_error_line(_shell(cli, ">&-", "-p", "hi", *GREEDY), 1, "stdout is closed")
    one_error_line(_shell(cli, ">&-", "history", "list"), 1, "stdout is closed")


@pytest.mark.slow
def test_closed_stderr_still_gives_the_answer(cli: str, gemma_path: Path, isolated_dirs: dict) -> None:
    expected = run_cli(cli, "-p", "hi", *GREEDY, "--no-history").stdout
    assert expected.strip()
    proc = _shell(cli, "2>&-", "-p", "hi", *GREEDY, "--no-history")
    assert proc.returncode == 0 and proc.stdout == expected
    # a failure with stderr closed still exits with its code, silently
    assert _shell(cli, "2>&-", "-p", "hi", "--top-k", "-5").returncode == 2


def test_cache_dir_that_is_a_file(cli: str, tmp_path: Path) -> None:
    blocker = tmp_path / "not-a-dir"
    blocker.write_text("x")
    env = {"AIGC_CHAT_CACHE_DIR": str(blocker)}
    one_error_line(run_cli(cli, "-p", "hi", env=env, timeout=60), 2, "not a directory", "AIGC_CHAT_CACHE_DIR")
    doctor = run_cli(cli, "doctor", env=env, timeout=60)
    assert doctor.returncode == 1, doctor.stdout
    assert "AIGC_CHAT_CACHE_DIR" in doctor.stderr and "ok: the default run can work" not in doctor.stdout


# -- case 9: special files ---------------------------------------------------------------------

@pytest.fixture
def fifo(tmp_path: Path) -> Path:
    path = tmp_path / "model.gguf"
    os.mkfifo(path)
    return path


def test_config_on_a_device_is_refused_at_once(cli: str) -> None:
    proc = run_cli(cli, "config", "show", env={"AIGC_CHAT_CONFIG": "/dev/zero"}, timeout=30)
    one_error_line(proc, 2, "/dev/zero", "character device")


def test_oversized_config_is_refused(cli: str, isolated_dirs: dict) -> None:
    cfg = isolated_dirs["config"]
    cfg.parent.mkdir(parents=True, exist_ok=True)
    cfg.write_text("# " + "x" * (2 << 20) + "\n")
    one_error_line(run_cli(cli, "config", "show", timeout=30), 2, "limit")


@pytest.mark.parametrize("backend", ["llama", "torch"])
def test_model_fifo_is_refused_at_once(cli: str, fifo: Path, backend: str) -> None:
    proc = run_cli(cli, "--backend", backend, "--model", str(fifo), "-p", "hi", timeout=60)
    one_error_line(proc, 1, "FIFO")


def test_gan_checkpoint_fifo_is_refused_at_once(cli: str, fifo: Path) -> None:
    one_error_line(run_cli(cli, "gan", "sample", "--checkpoint", str(fifo), timeout=60), 2, "FIFO")


def test_endless_stdin_is_refused(cli: str) -> None:
    with open("/dev/zero", "rb") as zero:
        proc = subprocess.run([cli, "-p", "summarise"], stdin=zero, capture_output=True, text=True, timeout=60)
    one_error_line(proc, 2, "stdin", "limit")


# -- case 7: stop sequences with escapes ---------------------------------------------------------

@pytest.mark.slow
def test_stop_escape_from_the_readme_matches(cli: str, gemma_path: Path) -> None:
    prompt = ("-p", "Write two short paragraphs about cats.", "--temperature", "0", "-n", "80", "--no-history")
    free = run_cli(cli, *prompt)
    assert free.returncode == 0 and free.stdout.count("\n") >= 2, free.stdout  # it does write lines
    first_line = free.stdout.split("\n")[0]
    stopped = run_cli(cli, *prompt, "--stop", r"\n")
    assert stopped.returncode == 0
    assert stopped.stdout == first_line + "\n"  # cut at the first newline; the stop never shown
    # a backslash before anything else stays itself
    from aigc_chat.argtypes import unescape

    assert unescape(r"\n\n") == "\n\n" and unescape(r"C:\path\x41") == "C:\\pathA"


# -- case 10 and the class of case 2: hostile model text on every way out -----------------------

HOSTILE = "ok \u202eevil\u202c \u2066x\u2069 zero\u200bwidth\ufeff join\u2060 \x1b[201~\rrm -rf ~\r\n"


@pytest.fixture
def hostile_server() -> Iterator[FaultServer]:
    with FaultServer() as srv:
        srv.chat = lambda h, body: h.sse([chunk(HOSTILE[:9]), chunk(HOSTILE[9:]), chunk(None, "stop")])
        yield srv


def test_one_shot_stdout_shows_invisible_characters_visibly(cli: str, hostile_server: FaultServer,
                                                           isolated_dirs: dict) -> None:
    env = {"AIGC_CHAT_BACKEND": "openai"}
    proc = run_cli(cli, "-p", "hi", "--base-url", hostile_server.url, env=env, timeout=60)
    assert proc.returncode == 0, proc.stderr
    out = proc.stdout
    for ch in "\u202e\u202c\u2066\u2069\u200b\ufeff\u2060\x1b\r":
        assert ch not in out, (ch, out)
    assert "\u27e8U+202E\u27e9evil\u27e8U+202C\u27e9" in out and "\u27e8U+200B\u27e9" in out
    # --json is exact and escaped; the history keeps the model's own text
    proc = run_cli(cli, "-p", "hi", "--base-url", hostile_server.url, "--json", env=env, timeout=60)
    assert proc.stdout.isascii() and json.loads(proc.stdout)["text"] == HOSTILE
    shown = run_cli(cli, "history", "show", "1").stdout
    assert "\u202e" not in shown and "\x1b" not in shown and "\u27e8U+202E\u27e9" in shown
    exported = run_cli(cli, "history", "export", "1", "--format", "markdown").stdout
    assert "\u202e" not in exported and "\x1b" not in exported and "\u27e8U+2066\u27e9" in exported
    data = json.loads(run_cli(cli, "history", "export", "1", "--format", "json").stdout)
    assert data["messages"][-1]["content"] == HOSTILE  # stored text stays exact
    hits = run_cli(cli, "history", "search", "evil").stdout
    assert hits and "\u202e" not in hits


def test_server_supplied_names_and_errors_are_sanitised(cli: str, hostile_server: FaultServer) -> None:
    hostile_server.models = ["good", "bad\x1b]52;c;" + base64.b64encode(b"pwn").decode() + "\x07\u202e"]
    proc = run_cli(cli, "models", "--backend", "openai", "--base-url", hostile_server.url, timeout=60)
    assert proc.returncode == 0, proc.stderr
    assert "\x1b" not in proc.stdout and "\u202e" not in proc.stdout and "\u27e8U+202E\u27e9" in proc.stdout
    hostile_server.chat = lambda h, body: h.status(500, {"error": {"message": "boom \x1b[2J\u202e"}})
    proc = run_cli(cli, "-p", "hi", "--backend", "openai", "--base-url", hostile_server.url, timeout=60)
    assert proc.returncode == 1
    assert "\x1b" not in proc.stderr and "\u202e" not in proc.stderr, proc.stderr
