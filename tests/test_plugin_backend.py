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
