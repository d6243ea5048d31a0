"""First paint of the TUI now vs at an older commit, measured side by side in one run.

    .venv/bin/python bench/bench_first_paint_ab.py REV [--runs N]

The older tree is laid out as the installed package (src/aigc_chat, or core/ before the
src layout, with tui/, backends/ and gan/ under it) in a temp dir and put first on
PYTHONPATH; both run with this venv, in a real pty, with no model to load
(`--model missing.gguf`), interleaved so load affects both alike.
"""

from __future__ import annotations

import argparse
import os
import shutil
import statistics
import subprocess
import sys
import tempfile
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from bench.bench_tui import first_paint  # noqa: E402 - importable once the checkout is on sys.path


def main() -> None:
    ap = argparse.ArgumentParser()
    ap.add_argument("rev")
    ap.add_argument("--runs", type=int, default=7)
    args = ap.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tree, pkg = Path(tmp) / "tree", Path(tmp) / "pkg"
        subprocess.run(["git", "-C", str(REPO), "worktree", "add", "-q", "--detach", str(tree), args.rev], check=True)
        try:
            if (tree / "src" / "aigc_chat").is_dir():  # links to tui/ etc. are followed
                shutil.copytree(tree / "src" / "aigc_chat", pkg / "aigc_chat", symlinks=False)
            else:
                shutil.copytree(tree / "core", pkg / "aigc_chat")
                for part in ("tui", "backends", "gan"):
                    shutil.copytree(tree / part, pkg / "aigc_chat" / part)
        finally:
            subprocess.run(["git", "-C", str(REPO), "worktree", "remove", "--force", str(tree)], check=False)
        base = dict(os.environ, TERM="xterm-256color", AIGC_CHAT_CONFIG=f"{tmp}/c.toml",
                    AIGC_CHAT_CACHE_DIR=str(REPO / ".test-cache"))
        # bytecode caches on, as in any install (this workplace sets PYTHONDONTWRITEBYTECODE,
        # which makes every start compile every module from source: the bigger tree pays more)
        base.pop("PYTHONDONTWRITEBYTECODE", None)
        # a data dir each: an older build refuses the history file a newer one has migrated
        envs = {args.rev: dict(base, PYTHONPATH=str(pkg), AIGC_CHAT_DATA_DIR=f"{tmp}/d-old"),
                "HEAD": dict(base, AIGC_CHAT_DATA_DIR=f"{tmp}/d-head")}
        cmd = [sys.executable, "-c", "import sys; from aigc_chat.cli import main; sys.exit(main())",
               "--model", f"{tmp}/missing.gguf"]
        times: dict[str, list[float]] = {name: [] for name in envs}
        for env in envs.values():
            first_paint(cmd, env)  # warm the page cache
        for _ in range(args.runs):
            for name, env in envs.items():
                times[name].append(first_paint(cmd, env))
        for name, values in times.items():
            print(f"first paint at {name}: median {statistics.median(values):.3f} s "
                  f"(min {min(values):.3f}, max {max(values):.3f}, {args.runs} runs)")


if __name__ == "__main__":
    main()
