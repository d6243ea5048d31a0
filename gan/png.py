"""A minimal PNG writer (stdlib zlib), so `gan sample --save` needs no imaging library."""

from __future__ import annotations

import struct
import zlib
from pathlib import Path

import numpy as np

from aigc_chat.atomic_write import write_atomic


def _chunk(kind: bytes, data: bytes) -> bytes:
    return struct.pack(">I", len(data)) + kind + data + struct.pack(">I", zlib.crc32(kind + data) & 0xFFFFFFFF)


def write_png(path: str | Path, rgb: np.ndarray) -> None:
    """Write an H x W x 3 (or H x W grey) uint8 array as an 8-bit PNG."""
    a = np.ascontiguousarray(rgb, dtype=np.uint8)
    if a.ndim == 2:
        colour_type = 0
    elif a.ndim == 3 and a.shape[2] == 3:
        colour_type = 2
    else:
        raise ValueError(f"write_png wants H x W or H x W x 3, got {a.shape}")
    h, w = a.shape[:2]
    rows = a.reshape(h, -1)
    raw = np.concatenate([np.zeros((h, 1), np.uint8), rows], axis=1).tobytes()  # filter 0 per row
    ihdr = struct.pack(">IIBBBBB", w, h, 8, colour_type, 0, 0, 0)
    data = b"\x89PNG\r\n\x1a\n" + _chunk(b"IHDR", ihdr) + _chunk(b"IDAT", zlib.compress(raw, 9)) + _chunk(b"IEND", b"")
    write_atomic(Path(path), data, new_mode=None)  # a full disk never leaves half a PNG
