"""A backend plugin that answers slowly and always the same: `w0 w1 ... w{N-1}`, one word every
`delay_ms`. For the end-to-end tests that must act mid-reply in a real terminal (a hang-up,
a reattach): a real model is either too fast to catch mid-reply or too slow for the suite.

`install(root)` writes it as an installed distribution under `root` (the entry-point group
`aigc_chat.backends`, as tests/test_plugin_backend.py does) and returns the PYTHONPATH that
finds it; the installed `aigc-chat` then takes `--backend paced`. `[paced] pidfile = PATH`
makes it write its process id there when it loads (to check that the process ends);
`text_file = PATH` makes it answer with that file's text, `piece_chars` characters a piece
(bench/bench_terminal_bytes.py)."""

from __future__ import annotations

import os
from pathlib import Path

PLUGIN = '''
import os

from aigc_chat.backends.base import Backend, EngineEnd, EngineStart, Option
from aigc_chat.chat_types import BackendInfo


class PacedBackend(Backend):
    name = "paced"
    supported_params = frozenset({"max_tokens"})
    OPTIONS = {
        "words": Option(100, int, "how many words the reply has"),
        "delay_ms": Option(50, int, "milliseconds between words"),
        "pidfile": Option("", str, "a file to write this process id to on load"),
        "text_file": Option("", str, "answer with this file's text instead of the words"),
        "piece_chars": Option(5, int, "with text_file: characters per piece (a token)"),
    }

    def load(self, progress=None):
        if self.options["pidfile"]:
            with open(self.options["pidfile"], "w") as f:
                f.write(str(os.getpid()))

    def info(self):
        return BackendInfo("paced", "paced-model", 4096, "CPU", False)

    def count_tokens(self, messages):
        return sum(len(m.content.split()) + 4 for m in messages)

    def _pieces(self):
        if self.options["text_file"]:
            with open(self.options["text_file"], encoding="utf-8") as f:
                text = f.read()
            n = max(1, self.options["piece_chars"])
            return [text[i:i + n] for i in range(0, len(text), n)]
        return [("w%d" % i) if i == 0 else (" w%d" % i) for i in range(self.options["words"])]

    def _generate(self, messages, params, cancel):
        yield EngineStart(self.count_tokens(messages))
        for piece in self._pieces():
            if cancel.wait(self.options["delay_ms"] / 1000):
                return
            yield piece
        yield EngineEnd("stop")
'''


def reply_text(words: int) -> str:
    """The full reply of a `words`-word paced backend."""
    return " ".join(f"w{i}" for i in range(words))


def install(root: Path) -> str:
    """Install the plugin under `root`; returns the PYTHONPATH for a process that uses it
    (the current one's first, so the code under test is what runs)."""
    (root / "paced_plugin.py").write_text(PLUGIN)
    dist = root / "paced_plugin-0.1.dist-info"
    dist.mkdir(exist_ok=True)
    (dist / "METADATA").write_text("Metadata-Version: 2.1\nName: paced-plugin\nVersion: 0.1\n")
    (dist / "entry_points.txt").write_text("[aigc_chat.backends]\npaced = paced_plugin:PacedBackend\n")
    return os.pathsep.join(p for p in (os.environ.get("PYTHONPATH", ""), str(root)) if p)
