"""A copy of a Q4_1 model that llama.cpp can read prompts with matrix kernels, made once.

Why: on x86 without AMX, llama.cpp has no matrix-matrix kernel for Q4_1 (llamafile's GEMMs
and the repacked layouts cover Q8_0, Q4_0, Q4_K, IQ4_NL, ...). A Q4_1 prompt is then read
one dot product per output, at about decode speed: a 7,000-token attachment took minutes.
The bundled default model is Q4_1. Requantising it to Q8_0 takes about a second, is close
to lossless (Q8_0 has 255 levels per block where Q4_1 has 16, so every Q4_1 value is
within half a Q8_0 step of where it was), and reads prompts about twice as fast
(docs/performance.md has the figures and the commands).

The copy lives in the cache dir, named by the source's identity, and is checked before it
is used (its header read back, its tensors the expected type); a failure anywhere means
the original file is used, with one line saying why. Nothing is written beside the user's
model.
"""

from __future__ import annotations

import ctypes
import hashlib
import json
import os
import shutil
from collections.abc import Callable
from pathlib import Path
from typing import Any

from aigc_chat import paths
from aigc_chat.gguf_info import GGUFInfo, read_gguf_info

# ggml type ids (ggml.h) and llama.cpp file types (llama.h) we use
GGML_Q4_1 = 3
GGML_Q8_0 = 8
LLAMA_FTYPE_MOSTLY_Q8_0 = 7

# A copy costs disk (Q8_0 is 1.7x a Q4_1 file) and a minute per few GB; past this size the
# user should choose a better-suited file themselves (docs/performance.md says which).
MAX_SOURCE_BYTES = 2 << 30


def main_weight_type(info: GGUFInfo) -> int | None:
    """The ggml type holding most of the model's matrix weights (2-D tensors, by elements)."""
    counts: dict[int, int] = {}
    for _name, dims, ggml_type, _offset in info.tensors:
        if len(dims) < 2:
            continue
        n = 1
        for d in dims:
            n *= int(d)
        counts[ggml_type] = counts.get(ggml_type, 0) + n
    return max(counts, key=lambda t: counts[t]) if counts else None


def wants_copy(info: GGUFInfo, gpu_layers: int) -> bool:
    """Whether `info`'s file reads prompts without a matrix kernel here: Q4_1, on the CPU.
    (On a GPU, Q4_1 has its kernels; on AMX, llama.cpp's AMX path covers it, but that path
    is the one a GCC bug breaks, so extra buffers are often off there: requantise too.)"""
    return gpu_layers == 0 and main_weight_type(info) == GGML_Q4_1 and 0 < info.file_size <= MAX_SOURCE_BYTES


def copy_dir() -> Path:
    return paths.cache_dir() / "requantized"


def _key(source: Path, llama_version: str) -> str:
    st = source.stat()
    ident = f"{source.resolve()}|{st.st_size}|{st.st_mtime_ns}|{llama_version}|q8_0"
    return hashlib.sha256(ident.encode()).hexdigest()[:20]


def fast_copy(source: Path, llama_cpp: Any, report: Callable[[str], None]) -> tuple[Path, str]:
    """(the file to load, a note for the user: "" when nothing was done). Never raises for a
    copy that cannot be made: the original is the answer then, and the note says why."""
    try:
        version = str(getattr(llama_cpp, "__version__", "?"))
        key = _key(source, version)
        folder = copy_dir()
        target = folder / f"{source.stem}.{key}.Q8_0.gguf"
        stamp = target.with_suffix(".json")
        if _stamp_ok(stamp, target):
            return target, f"read through a Q8_0 copy ({target})"
        folder.mkdir(parents=True, exist_ok=True)
        need = source.stat().st_size * 2  # Q8_0 is ~1.7x a Q4_1 file, and a margin
        free = shutil.disk_usage(folder).free
        if free < need:
            return source, (f"reading prompts at Q4_1 speed: no room for a Q8_0 copy in {folder} "
                            f"({free >> 20:,} MB free, {need >> 20:,} MB needed)")
        report(f"making a Q8_0 copy of {source.name} for fast prompt reading (once)")
        tmp = target.with_name(f".{target.name}.{os.getpid()}.tmp")
        try:
            params = llama_cpp.llama_model_quantize_default_params()
            params.ftype = LLAMA_FTYPE_MOSTLY_Q8_0
            params.allow_requantize = True
            params.nthread = 0
            code = llama_cpp.llama_model_quantize(str(source).encode(), str(tmp).encode(), ctypes.byref(params))
            if code != 0:
                raise OSError(f"llama.cpp could not requantise it (code {code})")
            check(source, tmp)
            os.replace(tmp, target)
        finally:
            if tmp.exists():
                tmp.unlink()
        try:
            st = target.stat()
            stamp.write_text(json.dumps({"source": str(source), "size": st.st_size, "mtime_ns": st.st_mtime_ns}))
        except OSError:
            discard_copy(target)  # an unstamped copy would never be trusted: do not leave it
            raise
        _prune(folder, source.stem, keep=target)
        return target, f"read through a Q8_0 copy ({target})"
    except (OSError, ValueError) as exc:
        return source, f"reading prompts at Q4_1 speed: no Q8_0 copy ({exc})"


def discard_copy(copy: Path) -> None:
    for p in (copy, copy.with_suffix(".json")):
        try:
            p.unlink()
        except OSError:
            pass


def _prune(folder: Path, stem: str, keep: Path) -> None:
    """Copies of the same file under older keys (another llama.cpp, a changed source) are
    never used again: each costs 1.7x the model on disk."""
    for old in folder.glob(f"{stem}.*.Q8_0.gguf"):
        if old != keep and len(old.name) == len(keep.name):
            discard_copy(old)


def check(source: Path, copy: Path) -> None:
    """The copy is a model we can trust to be the source's: every tensor there, the
    matrices Q8_0. A truncated or foreign file fails here, not at load."""
    src, out = read_gguf_info(source), read_gguf_info(copy)
    if out.tensor_count != src.tensor_count or out.architecture != src.architecture:
        raise ValueError("the copy does not match its source")
    if main_weight_type(out) != GGML_Q8_0:
        raise ValueError("the copy is not Q8_0")


def _stamp_ok(stamp: Path, target: Path) -> bool:
    try:
        data = json.loads(stamp.read_text()[:4096])
        st = target.stat()
    except (OSError, ValueError):
        return False
    return isinstance(data, dict) and data.get("size") == st.st_size and data.get("mtime_ns") == st.st_mtime_ns
