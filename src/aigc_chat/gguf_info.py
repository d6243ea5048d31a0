"""Check a GGUF file before llama.cpp sees it, and read its metadata quickly.

llama.cpp can abort the process or segfault on a truncated or corrupt file; a user should get
one line instead. `gguf.GGUFReader` would do the parsing but builds numpy views of every
field (about 9 s for Gemma's 262k-token vocabulary on a busy 2-core machine), so this module
walks the header itself: scalar metadata is decoded, large arrays are skipped, and the tensor
table is checked against the file size.

Stepping over a vocabulary's strings is most of the cost (`aigc-chat models` reads every
header it has not seen): a Python loop pays 120-200 ns a string, 14 ms for SmolLM2's 98k
tokens and merges. Long string arrays are stepped over with numpy instead
(`_prove_short_strings`: 5 ms for that header), which finds the chain of length prefixes in
bulk and proves it link by link; what it cannot prove (an empty string, one of 256 bytes or
more, a truncated file) goes through the exact loop, so the result and the errors are the same.
"""

from __future__ import annotations

import os
import struct
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from aigc_chat.errors import ModelError
from aigc_chat.safe_open import open_regular

_MAGIC = b"GGUF"
_SCALARS = {0: "<B", 1: "<b", 2: "<H", 3: "<h", 4: "<I", 5: "<i", 6: "<f", 7: "<?",
            10: "<Q", 11: "<q", 12: "<d"}
_STRING, _ARRAY = 8, 9
_U64 = struct.Struct("<Q")
_MAX_DECODED_ARRAY = 64  # arrays longer than this are skipped, only their length is kept
# String arrays at least this long are stepped over with numpy (below that, its set-up costs
# more than the loop). A pass ends at a string it cannot prove (empty, long) and wastes at
# most the rest of its chunk; after this many passes that proved fewer than _BULK_GOOD_PASS
# strings the exact loop takes the rest, so no file costs much more than the loop alone.
_BULK_MIN_STRINGS = 256
_BULK_MAX_SHORT_PASSES = 32
_BULK_GOOD_PASS = 128
_CHUNK = 1 << 16  # the most bytes numpy looks at in one step (see _prove_short_strings)
# A header's context length past this is not believed (the longest real ones are about 10M
# tokens; backends.base.MAX_CONTEXT is the same bound for n_ctx in the config).
MAX_CONTEXT_CLAIM = 1 << 24


@dataclass
class GGUFInfo:
    path: Path
    version: int
    architecture: str
    metadata: dict[str, Any] = field(default_factory=dict)
    array_lengths: dict[str, int] = field(default_factory=dict)
    tensor_count: int = 0
    tensor_types: set[int] = field(default_factory=set)
    file_size: int = 0
    # (name, dims as stored, ggml type, offset from data_offset): lets a loader map tensors
    # without gguf.GGUFReader, which is slow on large vocabularies.
    tensors: list[tuple[str, list[int], int, int]] = field(default_factory=list)
    data_offset: int = 0

    def get(self, key: str, default: Any = None) -> Any:
        """Architecture-scoped keys may be given without the prefix: get('context_length')."""
        if key in self.metadata:
            return self.metadata[key]
        return self.metadata.get(f"{self.architecture}.{key}", default)

    @property
    def name(self) -> str:
        return str(self.metadata.get("general.name") or self.path.stem)

    @property
    def chat_template(self) -> str | None:
        tpl = self.metadata.get("tokenizer.chat_template")
        return tpl if isinstance(tpl, str) and tpl.strip() else None

    @property
    def context_length(self) -> int | None:
        """The training context, or None when the file does not say or claims more than any
        model has (2^28, 2^32-1: what `n_ctx = 0` would allocate for); `context_note` says so."""
        value = self.get("context_length")
        if not isinstance(value, int) or isinstance(value, bool) or not 0 < value <= MAX_CONTEXT_CLAIM:
            return None
        return value

    @property
    def context_note(self) -> str:
        """One line when the header's context length was set aside as implausible, else ""."""
        value = self.get("context_length")
        if value is None or self.context_length is not None:
            return ""
        shown = f"{value:,}" if isinstance(value, int) else repr(value)[:40]
        return (f"{self.path.name} claims a context of {shown} tokens, which no model has: "
                "it is ignored (set n_ctx to choose one)")

    @property
    def block_count(self) -> int | None:
        value = self.get("block_count")
        return int(value) if value is not None else None


class _Cursor:
    def __init__(self, buf: memoryview, path: Path) -> None:
        self.buf, self.pos, self.path = buf, 0, path

    def need(self, n: int) -> None:
        if n < 0 or self.pos + n > len(self.buf):
            raise ModelError(f"{self.path} is truncated or corrupt (GGUF header ends early)")

    def unpack(self, fmt: str) -> Any:
        size = struct.calcsize(fmt)
        self.need(size)
        (value,) = struct.unpack_from(fmt, self.buf, self.pos)
        self.pos += size
        return value

    def string(self, decode: bool = True) -> str:
        n = self.unpack("<Q")
        self.need(n)
        raw = self.buf[self.pos : self.pos + n]
        self.pos += n
        if not decode:
            return ""
        return bytes(raw).decode("utf-8", errors="replace")

    def skip_strings(self, count: int) -> None:
        """Step over `count` strings without slicing them: in bulk with numpy where it can
        prove where they end, else (and for what is left) with the exact loop."""
        pos, short_passes = self.pos, 0
        while count >= _BULK_MIN_STRINGS and short_passes < _BULK_MAX_SHORT_PASSES:
            done, pos = _prove_short_strings(self.buf, pos, count)
            count -= done
            short_passes += done < _BULK_GOOD_PASS
            if count:  # the pass stopped at a string it could not prove: that one exactly
                pos = self._skip_exact(pos, 1)
                count -= 1
        self.pos = self._skip_exact(pos, count)

    def _skip_exact(self, pos: int, count: int) -> int:
        """The position after `count` strings from `pos`, one length at a time (u64, any
        value); ModelError if the header ends first."""
        buf, end = self.buf, len(self.buf)
        unpack = _U64.unpack_from
        for _ in range(count):
            if pos + 8 > end:
                self.need(end + 1 - self.pos)  # raises: the header ends early
            pos += 8 + unpack(buf, pos)[0]
        if pos > end:
            self.need(end + 1 - self.pos)
        return pos

    def value(self, vtype: int, key: str) -> tuple[Any, int | None]:
        if vtype in _SCALARS:
            return self.unpack(_SCALARS[vtype]), None
        if vtype == _STRING:
            return self.string(), None
        if vtype == _ARRAY:
            itype = self.unpack("<I")
            count = self.unpack("<Q")
            if count > len(self.buf):
                raise ModelError(f"{self.path} is corrupt (array {key} claims {count} items)")
            decode = count <= _MAX_DECODED_ARRAY
            if itype in _SCALARS:
                size = struct.calcsize(_SCALARS[itype])
                self.need(size * count)
                if decode:
                    items = list(struct.unpack_from("<" + _SCALARS[itype][1] * count, self.buf, self.pos))
                self.pos += size * count
            elif itype == _STRING:
                if decode:
                    items = [self.string() for _ in range(count)]
                else:
                    self.skip_strings(count)
            else:
                raise ModelError(f"{self.path} is corrupt (array {key} has item type {itype})")
            return (items if decode else None), count
        raise ModelError(f"{self.path} is corrupt (metadata {key} has unknown type {vtype})")


def _prove_short_strings(buf: memoryview, pos: int, count: int) -> tuple[int, int]:
    """Step over up to `count` strings from `pos` in bulk: (how many, the position after them).

    A string of 1-255 bytes starts with the u64 [n, 0, 0, 0, 0, 0, 0, 0], n > 0: the candidates
    are the positions of a nonzero byte followed by seven zeros, found with a few vector
    operations. Where every string is that short, the candidates from `pos` are exactly the
    chain pos -> pos + 8 + n -> ... . Each link is checked (the next candidate must be where
    this string ends; a candidate's length is its first byte, the other seven being zero), so
    the answer is exact: a false candidate (seven zeros inside a string) or a string that is
    no candidate (empty, 256 bytes or more) only ends the proof there, and the caller steps
    over that one exactly. Never raises on a corrupt file: what it cannot prove is left to the
    exact loop, which says why. Works in chunks of at most _CHUNK bytes: the temporaries stay
    in the CPU cache and come from the heap (an array per step the size of a 4 MB vocabulary
    costs a page fault per 4 KiB, more than the arithmetic). The chunks start at 4 KiB and
    double, so a proof that ends early has looked at no more than twice what it proved (plus
    4 KiB), not at the whole array."""
    import numpy as np

    done, end, step = 0, len(buf), min(4096, _CHUNK)
    while done < count and end - pos >= 16:
        width = min(end - pos, step, max(4096, (count - done) * 32))
        step = min(2 * step, _CHUNK)
        a = np.frombuffer(buf, dtype=np.uint8, count=width, offset=pos)
        any2 = a[:-1] | a[1:]
        any4 = any2[:-2] | any2[2:]  # any4[q]: bytes q..q+3 OR-ed
        zeros7 = (any4[1:-3] | any4[4:]) == 0  # bytes q+1..q+7 are all zero
        zeros7 &= a[:-7] != 0
        starts = zeros7.nonzero()[0][: count - done]
        if not len(starts) or starts[0] != 0:
            break
        ends = starts + 8 + a[starts]
        broken = (starts[1:] != ends[:-1]).nonzero()[0]
        last = int(broken[0]) if len(broken) else len(starts) - 1
        done += last + 1
        pos += int(ends[last])
        if len(broken):
            break
    return done, pos


def read_gguf_info(path: str | Path, check_architecture: bool = True,
                   require_architecture: bool = True) -> GGUFInfo:
    """Parse and check the header of a GGUF file; raise ModelError with one line if unusable.
    require_architecture=False reads the later parts of a split model (only split.* keys)."""
    p = Path(path).expanduser()
    if not p.exists():
        raise ModelError(f"model file not found: {p}")
    if p.is_dir():
        raise ModelError(f"{p} is a directory, not a GGUF file")
    try:
        with open_regular(p, "model file", ModelError) as fh:  # never a FIFO or a device
            size = os.fstat(fh.fileno()).st_size
            head = fh.read(4)
            if head != _MAGIC:
                what = "empty" if not head else f"starts with {head!r}"
                raise ModelError(f"{p} is not a GGUF file ({what})")
            import mmap

            with mmap.mmap(fh.fileno(), 0, access=mmap.ACCESS_READ) as mm:
                return _parse(memoryview(mm), p, size, check_architecture, require_architecture)
    except PermissionError:
        raise ModelError(f"cannot read {p}: permission denied") from None
    except OSError as exc:
        raise ModelError(f"cannot read {p}: {exc.strerror or exc}") from None


def _parse(buf: memoryview, path: Path, size: int, check_arch: bool, require_arch: bool = True) -> GGUFInfo:
    cur = _Cursor(buf, path)
    try:
        cur.pos = 4
        version = cur.unpack("<I")
        if version not in (2, 3):
            raise ModelError(f"{path}: unsupported GGUF version {version} (2 and 3 are supported)")
        n_tensors = cur.unpack("<Q")
        n_kv = cur.unpack("<Q")
        if n_tensors > 1_000_000 or n_kv > 1_000_000:
            raise ModelError(f"{path} is corrupt (implausible header counts)")
        info = GGUFInfo(path=path, version=version, architecture="", tensor_count=n_tensors,
                        file_size=size)
        for _ in range(n_kv):
            key = cur.string()
            vtype = cur.unpack("<I")
            value, count = cur.value(vtype, key)
            if count is not None:
                info.array_lengths[key] = count
            if value is not None:
                info.metadata[key] = value
        tensors = []
        for _ in range(n_tensors):
            name = cur.string()
            n_dims = cur.unpack("<I")
            if n_dims > 8:
                raise ModelError(f"{path} is corrupt (tensor {name} has {n_dims} dimensions)")
            dims = [cur.unpack("<Q") for _ in range(n_dims)]
            ttype = cur.unpack("<I")
            offset = cur.unpack("<Q")
            tensors.append((name, dims, ttype, offset))
    finally:
        buf.release()
    arch = info.metadata.get("general.architecture")
    if (not isinstance(arch, str) or not arch) and require_arch:
        raise ModelError(f"{path} has no general.architecture: not a model GGUF")
    info.architecture = arch if isinstance(arch, str) else ""
    if check_arch and info.architecture:
        known = known_architectures()
        if known and arch not in known:
            raise ModelError(f"{path}: unsupported model architecture {arch!r}")
    align = int(info.metadata.get("general.alignment", 32) or 32)
    data_start = -(-cur.pos // align) * align
    info.tensors, info.data_offset = tensors, data_start
    sizes = _quant_sizes()
    need = data_start
    for name, dims, ttype, offset in tensors:
        if ttype not in sizes:
            raise ModelError(f"{path}: tensor {name} has an unknown type ({ttype})")
        info.tensor_types.add(ttype)
        block, type_size = sizes[ttype]
        n = 1
        for d in dims:
            n *= d
        if n % block:
            raise ModelError(f"{path} is corrupt (tensor {name} shape {dims} does not fit its type)")
        need = max(need, data_start + offset + n // block * type_size)
    if need > size:
        raise ModelError(
            f"{path} is truncated: its tensors need {need:,} bytes but the file has {size:,}"
        )
    return info


def known_architectures() -> set[str]:
    """Architectures the gguf package (kept in step with llama.cpp) knows."""
    try:
        from gguf.constants import MODEL_ARCH_NAMES
    except ImportError:  # pragma: no cover - gguf is a core dependency
        return set()
    return set(MODEL_ARCH_NAMES.values())


def _quant_sizes() -> dict[int, tuple[int, int]]:
    from gguf.constants import GGML_QUANT_SIZES

    return {int(k): v for k, v in GGML_QUANT_SIZES.items()}
