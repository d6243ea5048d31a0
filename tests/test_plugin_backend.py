"""A third-party package adds a backend through the entry-point group, with no change to us."""

from __future__ import annotations

import textwrap

from tests.conftest import run_cli

PLUGIN = '''
from aigc_chat.backends.base import Backend, BackendInfo, EngineEnd, Option


class ReverseBackend(Backend):
    """Answers with the last user message reversed, one character per token."""

    name = "reverse"
    supported_params = frozenset({"max_tokens", "stop"})
    OPTIONS = {"shout": Option(False, bool, "upper-case the answer")}

    def load(self, progress=None):
        pass

    def info(self):
        return BackendInfo("reverse", "none", 1024, "CPU", False)

    def _generate(self, messages, params, cancel):
        text = messages[-1].content[::-1]
        for ch in (text.upper() if self.options["shout"] else text):
            yield ch
        yield EngineEnd("stop")
'''


def install_plugin(root):
    (root / "reverse_plugin.py").write_text(PLUGIN)
    dist = root / "reverse_plugin-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: reverse-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[aigc_chat.backends]\nreverse = reverse_plugin:ReverseBackend\n"
    )
    return {"PYTHONPATH": str(root)}


def test_plugin_backend_is_found_configured_and_used(tmp_path, cli, isolated_dirs):
    env = install_plugin(tmp_path)
    r = run_cli(cli, "--backend", "reverse", "--prompt", "hello world", "--no-history", env=env)
    assert r.returncode == 0, r.stderr
    assert r.stdout == "dlrow olleh\n"
    # its options are validated from config like a built-in's
    isolated_dirs["config"].parent.mkdir(parents=True, exist_ok=True)
    isolated_dirs["config"].write_text(textwrap.dedent("""
        backend = "reverse"
        [reverse]
        shout = true
        [generation]
        stop = ["O"]
    """))
    r = run_cli(cli, "--prompt", "hello world", "--no-history", env=env)
    assert r.stdout == "DLR\n"  # shouted, cut at the shared stop filter
    isolated_dirs["config"].write_text('backend = "reverse"\n[reverse]\nshout = "yes"\n')
    r = run_cli(cli, "--prompt", "x", env=env)
    assert r.returncode == 2 and "reverse.shout" in r.stderr


def test_unsupported_parameter_is_reported(tmp_path, cli):
    env = install_plugin(tmp_path)
    r = run_cli(cli, "--backend", "reverse", "--prompt", "abc", "--temperature", "0.1",
                "--no-history", env=env)
    assert r.returncode == 0 and r.stdout == "cba\n"
    assert "cannot honour temperature" in r.stderr


def test_unknown_backend_lists_the_available_ones(cli):
    r = run_cli(cli, "--backend", "nosuch", "--prompt", "x")
    assert r.returncode == 2 and "unknown backend 'nosuch'" in r.stderr and "llama" in r.stderr


# -- doctor: every backend answers for itself ---------------------------------------------------

DOCTOR_PLUGINS = {
    "reverse": PLUGIN + '''

    @classmethod
    def doctor_lines(cls, options):
        mood = "loud" if options["shout"] else "quiet"
        return [("reverse mood", mood), ("reverse engine", "missing", "the reverse engine is not installed")]
''',
    "broken": "import no_such_module_for_aigc_tests\n",
}


def install_doctor_plugins(root):
    for module, source in DOCTOR_PLUGINS.items():
        (root / f"{module}_plugin.py").write_text(source)
    dist = root / "doctor_plugins-0.1.dist-info"
    dist.mkdir()
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: doctor-plugins\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text(
        "[aigc_chat.backends]\nreverse = reverse_plugin:ReverseBackend\nbroken = broken_plugin:Nothing\n"
    )
    return {"PYTHONPATH": str(root)}


def test_doctor_shows_each_backends_own_lines_and_one_line_for_a_broken_one(tmp_path, cli, isolated_dirs,
                                                                            default_path):
    env = install_doctor_plugins(tmp_path)
    isolated_dirs["config"].parent.mkdir(parents=True, exist_ok=True)
    isolated_dirs["config"].write_text("[reverse]\nshout = true\n")
    r = run_cli(cli, "doctor", env=env, timeout=120)
    assert "Traceback" not in r.stdout + r.stderr
    rows = r.stdout.splitlines()
    broken = [line for line in rows if "broken" in line and not line.startswith("backends ")]
    assert len(broken) == 1 and broken[0].startswith("broken backend") and "ERROR" in broken[0], r.stdout
    assert "no_such_module_for_aigc_tests" in broken[0]
    assert any(line.split() == ["reverse", "mood", "loud"] for line in rows), r.stdout  # its configured options
    # neither plug-in is the configured backend: their problems are shown, not counted
    assert r.returncode == 0, r.stderr
    assert "llama.cpp GPU offload" in r.stdout and "llama.cpp build" in r.stdout


def test_doctor_counts_the_problems_of_the_configured_backend_only(tmp_path, cli, default_path):
    env = install_doctor_plugins(tmp_path)
    r = run_cli(cli, "doctor", "--backend", "reverse", env=env, timeout=120)
    assert r.returncode == 1
    assert r.stderr.strip().splitlines() == ["aigc-chat doctor: problem: the reverse engine is not installed"]
    r = run_cli(cli, "doctor", "--backend", "broken", env=env, timeout=120)
    assert r.returncode == 1 and "Traceback" not in r.stderr
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("aigc-chat doctor: problem: the broken backend: "), r.stderr


def test_a_backend_that_cannot_list_models_lists_none(tmp_path, cli):
    """Front ends call list_models() on any backend: the base answers [] rather than echoing
    the configured model back as if the engine had offered it."""
    from aigc_chat.backends.llama_cpp_backend import LlamaCppBackend
    from aigc_chat.backends.torch_gpt.backend import TorchBackend
    from tests.scripted_backend import ScriptedBackend

    assert ScriptedBackend([]).list_models() == []  # it has a model, "scripted-model"
    assert LlamaCppBackend("/some/model.gguf").list_models() == []  # discovery lists local files
    assert TorchBackend("/some/model.gguf").list_models() == []
    env = install_plugin(tmp_path)
    r = run_cli(cli, "models", "--backend", "reverse", "--model", "anything", env=env)
    assert (r.returncode, r.stdout) == (0, ""), r.stderr
