"""Hostile chat templates and context lengths in model files (issue 22, items 2, 3, 8), and
llama.cpp's abort handler, on real llama.cpp and tiny GGUF files carrying them.

A template runs in the renderer process (aigc_chat.template_process): a loop that never ends,
a gigabyte string, an exception inside it, each end as one line naming the template, exit 1,
the app's own memory untouched. A header's absurd context length no longer sizes buffers.
"""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from aigc_chat import template_process
from aigc_chat.chat_types import Message
from aigc_chat.errors import ModelError, UsageError
from aigc_chat.templates import ChatTemplate, choose_template
from tests.conftest import run_cli
from tests.tiny_gguf import CHATML, write_chain_gguf
from tests.waiting import wait_for

FAST = ("--no-history", "--temperature", "0", "--max-tokens", "3")

LOOP = "{% for i in range(100000) %}{% for j in range(100000) %}{% endfor %}{% endfor %}x"
HUGE = {  # each builds a gigabyte or more, or spends minutes, inside Jinja's sandbox
    "nested range loops": LOOP,
    "string times 10**9": "{{ 'x' * 10**9 }}",
    "format width": "{{ '{:>999999999}'.format(1) }}",
    "percent width": "{{ '%999999999d' % 1 }}",
    "doubling in a namespace": "{% set ns = namespace(s='x') %}{% for i in range(40) %}"
                               "{% set ns.s = ns.s ~ ns.s %}{% endfor %}{{ ns.s }}",
}
FAILING = {  # Python exceptions from inside a template, not Jinja's own
    "ZeroDivisionError": "{{ 1 // 0 }}",
    "RecursionError": "{% macro f(n) %}{{ f(n) }}{% endmacro %}{{ f(1) }}",
    "OverflowError": "{{ 10.0 ** 400 }}",
    "ValueError": "{{ '{:d}'.format('a') }}",
    "TypeError": "{{ 1 + 'a' }}",
}


@pytest.fixture(autouse=True)
def _short_deadline(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(template_process, "RENDER_SECONDS", 1.0)


def _render(source: str) -> str:
    return ChatTemplate("gguf", source).render([Message("user", "hi")])[0].text


@pytest.mark.parametrize("source", HUGE.values(), ids=HUGE.keys())
def test_a_template_that_would_run_forever_or_build_gigabytes_is_stopped(source: str) -> None:
    t0 = time.monotonic()
    with pytest.raises(ModelError) as err:
        _render(source)
    message = str(err.value)
    assert message.startswith("the model's chat template ") and "[llama] chat_template" in message
    assert any(w in message for w in ("did not finish", "memory", "over the")), message
    assert time.monotonic() - t0 < 30  # bounded (the deadline is 1 s here), never minutes
    proc = template_process.shared()._proc
    assert proc is None  # the renderer that ran it is gone, with whatever it had built
    assert _render(CHATML).endswith("<|im_start|>assistant\n")  # the next render works, in a fresh one


@pytest.mark.parametrize("name", FAILING)
def test_a_python_error_inside_a_template_is_one_line_naming_it(name: str) -> None:
    with pytest.raises(ModelError) as err:
        _render(FAILING[name])
    assert str(err.value).startswith(f"the model's chat template failed: {name}")
    assert "\n" not in str(err.value) and "set [llama] chat_template" in str(err.value)


def test_what_a_template_does_on_purpose_or_by_accident_says_so() -> None:
    with pytest.raises(UsageError, match="refused this conversation: roles must alternate"):
        _render("{{ raise_exception('roles must alternate') }}")
    with pytest.raises(ModelError, match="made an empty prompt"):  # was a bare "AssertionError:"
        _render("{{ '{0[1000]}'.format([1]) }}")
    assert _render("{{ '\\ud800' }}ok") == "?ok"  # a lone surrogate cannot reach the tokenizer
    own = choose_template("{{ 1 // 0 }}", None, "llama", section="torch")
    with pytest.raises(ModelError, match=r"the \[torch\] chat_template failed: ZeroDivisionError"):
        own.render([Message("user", "hi")])
    with pytest.raises(UsageError, match="invalid Jinja"):
        choose_template("{% for %}", None, "llama")
    assert choose_template("", "{% for %}", "gemma3").name == "gemma"  # a broken file's template: set aside


def test_a_render_is_remembered_and_a_changed_conversation_rendered_again() -> None:
    t = ChatTemplate("gguf", CHATML)
    one = t.render([Message("user", "a")])
    assert t.render([Message("user", "a")]) == one
    assert "b" in t.render([Message("user", "b")])[0].text


@pytest.fixture(scope="module")
def ggufs(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Path]:
    d = tmp_path_factory.mktemp("hostile")
    return {
        "loop": write_chain_gguf(d / "loop.gguf", list("ok"), template=LOOP),
        "zero": write_chain_gguf(d / "zero.gguf", list("ok"), template=FAILING["ZeroDivisionError"]),
        "syntax": write_chain_gguf(d / "syntax.gguf", list("ok"), template="{% for %}"),
        "ctx28": write_chain_gguf(d / "ctx28.gguf", list("ok"), template=CHATML, context_length=2**28),
        "ctx32": write_chain_gguf(d / "ctx32.gguf", list("ok"), template=CHATML, context_length=2**32 - 1),
    }


def test_one_shot_with_a_failing_or_looping_template_ends_in_one_line(cli: str, ggufs: dict[str, Path]) -> None:
    for name, why in (("zero", "failed: ZeroDivisionError"), ("loop", "did not finish within")):
        r = run_cli(cli, "--model", str(ggufs[name]), "-p", "hi", *FAST, timeout=60)
        assert r.returncode == 1, (name, r.stderr)
        assert r.stderr.count("\n") == 1 and why in r.stderr and "chat_template" in r.stderr, r.stderr
        assert r.stdout == ""


def test_a_template_that_is_not_jinja_is_set_aside_not_an_internal_error(cli: str, ggufs: dict[str, Path]) -> None:
    r = run_cli(cli, "--model", str(ggufs["syntax"]), "-p", "hi", *FAST, timeout=60)
    assert r.returncode == 0 and r.stdout == "ok\n", r.stderr  # was "internal error: TemplateSyntaxError"


def test_ctrl_c_during_a_looping_render_ends_at_once(cli: str, ggufs: dict[str, Path]) -> None:
    p = subprocess.Popen([cli, "--model", str(ggufs["loop"]), "-p", "hi", *FAST], stdout=subprocess.PIPE,
                         stderr=subprocess.PIPE, stdin=subprocess.DEVNULL, text=True)
    try:
        worker = wait_for(lambda: _worker_of(p.pid), 30, "the template renderer to start")
        # past its start (about 0.1 s of CPU: Python and Jinja), into the endless loop
        wait_for(lambda: _cpu_ticks(worker) > 30, 30, "the renderer to be busy with the loop")
        p.send_signal(signal.SIGINT)
        out, err = p.communicate(timeout=10)  # the deadline is 2 s; Ctrl-C does not wait for it
    finally:
        p.kill()
    assert p.returncode == 130, err
    assert "Traceback" not in err and out.strip() == ""  # an interrupted answer ends its line
    wait_for(lambda: not Path(f"/proc/{worker}").exists() or _zombie(worker), 10, "the renderer to be gone")


def _worker_of(pid: int) -> int | None:
    for entry in Path("/proc").iterdir():
        if not entry.name.isdigit():
            continue
        try:
            stat = (entry / "stat").read_text()
            cmd = (entry / "cmdline").read_bytes()
        except OSError:
            continue
        if int(stat.rsplit(")", 1)[1].split()[1]) == pid and b"template_worker" in cmd:
            return int(entry.name)
    return None


def _cpu_ticks(pid: int) -> int:
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0
    return int(fields[11]) + int(fields[12])


def _zombie(pid: int) -> bool:
    try:
        return Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()[0] == "Z"
    except OSError:
        return True


_SPAWN_AND_MEASURE = """
import os, sys
flags = os.O_WRONLY | os.O_CREAT | os.O_TRUNC
pid = os.posix_spawn(sys.argv[3], sys.argv[3:], dict(os.environ), file_actions=[
    (os.POSIX_SPAWN_OPEN, 0, os.devnull, os.O_RDONLY, 0),
    (os.POSIX_SPAWN_OPEN, 1, sys.argv[1], flags, 0o644), (os.POSIX_SPAWN_OPEN, 2, sys.argv[2], flags, 0o644)])
_, status, usage = os.wait4(pid, 0)
print(os.waitstatus_to_exitcode(status), usage.ru_maxrss)
"""


@pytest.mark.parametrize("name", ["ctx28", "ctx32"])
def test_an_absurd_context_length_costs_no_memory_and_says_so(cli: str, ggufs: dict[str, Path], name: str,
                                                            tmp_path: Path) -> None:
    out, err = tmp_path / "out", tmp_path / "err"
    # Measured from a small Python that starts the command: a child of pytest itself (fork or
    # vfork alike) keeps pytest's resident size as its high-water mark across exec, so in a long
    # test run ru_maxrss measured pytest, not aigc-chat.
    r = subprocess.run([sys.executable, "-c", _SPAWN_AND_MEASURE, str(out), str(err), cli, "--model",
                        str(ggufs[name]), "-p", "hi", *FAST], capture_output=True, text=True, timeout=120)
    code, maxrss = map(int, r.stdout.split())
    assert code == 0, err.read_text()  # 2^32-1 was "internal error: ValueError"
    assert out.read_text() == "ok\n"
    assert maxrss < 400_000, maxrss  # KiB; 2^28 used 1.1 GB, 2^31-1 would need 8 GB
    (note,) = err.read_text().splitlines()
    assert note.startswith(f"aigc-chat: note: {name}.gguf claims a context of ") and "ignored" in note


def test_n_ctx_zero_does_not_believe_an_absurd_header(ggufs: dict[str, Path]) -> None:
    from aigc_chat.backends.llama_cpp_backend import LlamaCppBackend
    from aigc_chat.gguf_info import read_gguf_info

    info = read_gguf_info(ggufs["ctx32"])
    assert info.context_length is None and info.metadata["llama.context_length"] == 2**32 - 1
    b = LlamaCppBackend(str(ggufs["ctx32"]), {"n_ctx": 0})
    b.load()
    try:
        assert b.info().context_length == 4096  # the default for "the file does not say"
        assert len(b.notices) == 1 and "4,294,967,295" in b.notices[0]
        assert b.count_tokens([Message("user", "hello")]) > 0
    finally:
        b.close()


FAKE_GDB = "#!/bin/sh\necho GDB-ON-STDOUT\n"
ABORT = """
import ctypes, os, sys
from aigc_chat.backends.llama_cpp_backend import import_llama_cpp
llama_cpp = import_llama_cpp()
lib = ctypes.CDLL(os.path.join(os.path.dirname(llama_cpp.__file__), "lib", "libggml-base.so"))
lib.ggml_abort.argtypes = [ctypes.c_char_p, ctypes.c_int, ctypes.c_char_p]
lib.ggml_abort(b"ggml.c", 1, b"GGML_ASSERT(n_tokens <= n_batch) failed")
"""


def test_a_native_abort_prints_nothing_on_stdout(tmp_path: Path) -> None:
    """llama.cpp's abort handler forks gdb for a backtrace, whose output lands on stdout (the
    answer's stream); a stand-in gdb first on PATH shows whether it still runs."""
    import llama_cpp

    if not (Path(llama_cpp.__file__).parent / "lib" / "libggml-base.so").exists():
        pytest.skip("this llama-cpp-python has no separate libggml-base.so")
    gdb = tmp_path / "gdb"
    gdb.write_text(FAKE_GDB)
    gdb.chmod(0o755)
    env = {**os.environ, "PATH": f"{tmp_path}:{os.environ['PATH']}"}
    env.pop("AIGC_CHAT_DEBUG", None)
    r = subprocess.run([sys.executable, "-c", ABORT], capture_output=True, text=True, timeout=60, env=env)
    assert r.returncode == -signal.SIGABRT
    assert r.stdout == ""
    assert "GGML_ASSERT(n_tokens <= n_batch) failed" in r.stderr


@pytest.mark.slow  # the installed app in a real terminal (tmux)
def test_tui_esc_and_ctrl_q_do_not_hang_on_a_looping_template(cli: str, ggufs: dict[str, Path],
                                                              isolated_dirs: dict[str, Path]) -> None:
    """In a real terminal: Esc during the endless render leaves "stopping" (the render is
    stopped at its deadline and said so in one notice), and ctrl+q during another quits."""
    import shutil

    from tests.tmux_driver import idle, status_line, tmux_server

    if shutil.which("tmux") is None:
        pytest.skip("needs tmux")
    with tmux_server("aigc-tpl", isolated_dirs["config"], "[generation]\nmax_tokens = 3\n") as t:
        t.start([cli, "--model", str(ggufs["loop"])])
        t.wait(idle, 60, "the model to load")
        t.text("hi")
        t.keys("Enter")
        t.wait(lambda s: "generating" in status_line(s), 20, "the turn to start")
        t.keys("Escape")
        screen = t.wait(lambda s: "did not finish" in s and idle(s), 20, "the render to be stopped")
        assert "chat_template" in screen
        t.text("again")
        t.keys("Enter")
        t.wait(lambda s: "generating" in status_line(s), 20, "the second turn to start")
        t.keys("C-q")
        t.wait_exit(15)


def test_a_template_of_megabytes_is_set_aside_unread() -> None:
    huge = "{{ messages[0].content }}" + "x" * (template_process.MAX_SOURCE + 1)
    assert choose_template("", huge, "llama").name == "llama-2"  # as for a file without one
    with pytest.raises(UsageError, match="over the 1,048,576 limit"):
        choose_template(huge, None, "llama")
