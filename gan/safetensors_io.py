"""Read and write the safetensors format with numpy alone.

The format is small and documented (an 8-byte little-endian header length, a JSON header
naming each tensor's dtype, shape and byte range, then the raw bytes). Reading it here keeps
`gan sample` free of torch and of the safetensors package, and lets us treat every file as
untrusted: each bound is checked before any byte is interpreted, and nothing is unpickled.
"""

from __future__ import annotations

import json
import struct
from pathlib import Path
from typing import Any

import numpy as np

from aigc_chat.atomic_write import write_atomic
from aigc_chat.errors import UsageError
from aigc_chat.safe_open import read_regular

_DTYPES: dict[str, np.dtype[Any]] = {
    "F32": np.dtype("<f4"),
    "F16": np.dtype("<f2"),
    "F64": np.dtype("<f8"),
    "I64": np.dtype("<i8"),
    "I32": np.dtype("<i4"),
    "U8": np.dtype("u1"),
}
_NAMES = {v: k for k, v in _DTYPES.items()}
MAX_HEADER = 16 * 1024 * 1024
MAX_FILE = 2 * 1024**3  # read whole into memory: refuse anything absurd up front


class NotSafetensors(UsageError):
    """The file is not a (valid) safetensors file."""


def read_safetensors(path: str | Path) -> tuple[dict[str, np.ndarray], dict[str, str]]:
    """Return (tensors, metadata) from a safetensors file, validating every offset."""
    path = Path(path)
    try:
        raw = read_regular(path, MAX_FILE, "checkpoint")  # never a FIFO or a device
    except OSError as err:
        raise UsageError(f"cannot read checkpoint {path}: {err.strerror or err}") from None
    bad = NotSafetensors(f"{path}: not a safetensors checkpoint")
    if len(raw) < 8:
        raise bad
    (hlen,) = struct.unpack("<Q", raw[:8])
    if hlen < 2 or hlen > MAX_HEADER or 8 + hlen > len(raw):
        raise bad
    try:
        header = json.loads(raw[8 : 8 + hlen].decode("utf-8"))
    except (UnicodeDecodeError, json.JSONDecodeError, RecursionError):  # RecursionError: [[[[… deep
        raise bad from None
    if not isinstance(header, dict):
        raise bad
    meta = header.pop("__metadata__", {}) or {}
    if not isinstance(meta, dict) or not all(isinstance(v, str) for v in meta.values()):
        raise bad
    data = memoryview(raw)[8 + hlen :]
    tensors: dict[str, np.ndarray] = {}
    for name, info in header.items():
        try:
            dtype = _DTYPES[info["dtype"]]
            shape = tuple(int(s) for s in info["shape"])
            start, end = (int(x) for x in info["data_offsets"])
        except (KeyError, TypeError, ValueError):
            raise NotSafetensors(f"{path}: unsupported or malformed tensor entry {name!r}") from None
        count = int(np.prod(shape)) if shape else 1
        if any(s < 0 for s in shape) or not 0 <= start <= end <= len(data) or end - start != count * dtype.itemsize:
            raise NotSafetensors(f"{path}: tensor {name!r} has inconsistent offsets")
        tensors[name] = np.frombuffer(data[start:end], dtype=dtype).reshape(shape).copy()
    return tensors, {str(k): v for k, v in meta.items()}


def write_safetensors(path: str | Path, tensors: dict[str, np.ndarray], metadata: dict[str, str]) -> None:
    """Write tensors + string metadata atomically (a temp file renamed over the target)."""
    path = Path(path)
    header: dict[str, object] = {"__metadata__": dict(metadata)}
    blobs: list[bytes] = []
    offset = 0
    for name in sorted(tensors):
        arr = np.ascontiguousarray(tensors[name])
        if arr.dtype.newbyteorder("<") in _NAMES:
            arr = arr.astype(arr.dtype.newbyteorder("<"), copy=False)
        key = _NAMES.get(arr.dtype)
        if key is None:
            raise ValueError(f"unsupported dtype {arr.dtype} for {name}")
        blob = arr.tobytes()
        header[name] = {"dtype": key, "shape": list(arr.shape), "data_offsets": [offset, offset + len(blob)]}
        blobs.append(blob)
        offset += len(blob)
    hbytes = json.dumps(header, separators=(",", ":")).encode("utf-8")
    hbytes += b" " * (-len(hbytes) % 8)  # keep the data 8-byte aligned, as the spec suggests
    path.parent.mkdir(parents=True, exist_ok=True)
    # atomic (temp file beside it, fsync, rename): a full disk keeps the last checkpoint whole
    write_atomic(path, b"".join([struct.pack("<Q", len(hbytes)), hbytes, *blobs]), new_mode=None)
