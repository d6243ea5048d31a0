"""Small GGUF files for the file checks: valid, truncated, unknown architecture."""

from __future__ import annotations

from pathlib import Path

import numpy as np
from gguf import GGUFWriter


def write_gguf(path: Path, arch: str = "llama", n_tensors: int = 3) -> Path:
    w = GGUFWriter(str(path), arch)
    w.add_name("tiny test file")
    w.add_context_length(128)
    w.add_block_count(1)
    rng = np.random.default_rng(0)
    for i in range(n_tensors):
        w.add_tensor(f"t{i}.weight", rng.standard_normal((64, 32)).astype(np.float32))
    w.write_header_to_file()
    w.write_kv_data_to_file()
    w.write_tensors_to_file()
    w.close()
    return path


def truncated(path: Path, keep: float = 0.6) -> Path:
    data = path.read_bytes()
    path.write_bytes(data[: int(len(data) * keep)])
    return path
