"""Drawing samples from a checkpoint with numpy (no torch): what `gan sample` and the TUI
call. Same checkpoint, seed, label and n give the same images on any machine.
"""

from __future__ import annotations

from dataclasses import dataclass
from functools import lru_cache
from pathlib import Path

import numpy as np

from aigc_chat.errors import UsageError
from aigc_chat.gan import DEFAULT_CHECKPOINT
from aigc_chat.gan.checkpoint import Checkpoint, load_checkpoint
from aigc_chat.gan.npgen import generate

MAX_SAMPLES = 10_000


@dataclass
class Samples:
    images: np.ndarray  # N x H x W (grey) or N x H x W x 3, float32 in [0, 1]
    labels: np.ndarray | None
    seed: int
    checkpoint: Checkpoint


@lru_cache(maxsize=4)
def _cached(path: str, mtime_ns: int) -> Checkpoint:
    return load_checkpoint(path)


def open_checkpoint(path: str | Path | None = None) -> Checkpoint:
    """Load (and cache, keyed by modification time) a checkpoint; None is the shipped one."""
    p = Path(path).expanduser() if path else DEFAULT_CHECKPOINT
    try:
        mtime = p.stat().st_mtime_ns
    except FileNotFoundError:
        raise UsageError(f"checkpoint not found: {p}") from None
    except OSError as err:
        raise UsageError(f"cannot read checkpoint {p}: {err.strerror or err}") from None
    return _cached(str(p), mtime)


def parse_label(ck: Checkpoint, label: str | int | None) -> int | None:
    """A class given by index or by name -> its index; None means 'cycle through all'."""
    if label is None or label == "":
        return None
    cfg = ck.config
    if not cfg.conditional:
        raise UsageError("this checkpoint is unconditional: it has no labels")
    names = cfg.label_names()
    text = str(label)
    if text in names:
        return names.index(text)
    try:
        idx = int(text)
    except ValueError:
        idx = -1
    if not 0 <= idx < cfg.num_classes:
        raise UsageError(f"unknown label {text!r}: this checkpoint has {', '.join(names)}")
    return idx


def sample(checkpoint: str | Path | Checkpoint | None = None, n: int = 20, seed: int | None = None,
           label: str | int | None = None) -> Samples:
    """Draw n samples; without a label, labels cycle 0..C-1 so a row of C shows every class."""
    ck = checkpoint if isinstance(checkpoint, Checkpoint) else open_checkpoint(checkpoint)
    if not 1 <= n <= MAX_SAMPLES:
        raise UsageError(f"--n must be between 1 and {MAX_SAMPLES}, not {n}")
    if seed is None:
        entropy = np.random.SeedSequence().entropy
        assert isinstance(entropy, int)  # fresh from the OS: always an int when none is given
        seed = int(entropy % (2**31))
    if not 0 <= seed < 2**63:
        raise UsageError(f"--seed must be a non-negative integer below 2^63, not {seed}")
    cfg = ck.config
    lab = parse_label(ck, label)
    rng = np.random.Generator(np.random.PCG64(seed))
    z = rng.standard_normal((n, cfg.z_dim), dtype=np.float32)
    labels = None
    if cfg.conditional:
        labels = np.full(n, lab, np.int64) if lab is not None else np.arange(n, dtype=np.int64) % cfg.num_classes
    out = generate(cfg, ck.generator, z, labels)  # N x C x H x W
    images = out[:, 0] if cfg.channels == 1 else out.transpose(0, 2, 3, 1)
    return Samples(np.ascontiguousarray(images, np.float32), labels, seed, ck)
