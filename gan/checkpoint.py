"""Checkpoints: safetensors tensors plus a JSON header, never pickles.

One file holds the generator (`g.*`) and, for files written by training, the
discriminator, the raw (non-averaged) generator and the optimiser moments under their own
prefixes, so the same file can be sampled from and resumed. The header's `format` key is
how we tell our checkpoints from any other safetensors file.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np

from aigc_chat.errors import UsageError
from aigc_chat.gan.arch import GanConfig
from aigc_chat.gan.safetensors_io import read_safetensors, write_safetensors

FORMAT = "aigc-chat-gan/1"


def default_checkpoint_dir() -> Path:
    """Where trained checkpoints go unless told otherwise: the data dir's gan/."""
    from aigc_chat.paths import data_dir

    return Path(data_dir()) / "gan"


def checkpoint_path(spec: str, out_dir: Path | str | None = None) -> Path:
    """The file training on data `spec` saves to: one rule for `gan train` and the TUI's GAN
    screen, so a model trained in one is the file the other finds and resumes. The name
    carries the data set (`gan-digits`, `gan-folder-shapes` for folder:~/shapes), so two data
    sets of one kind never overwrite each other."""
    kind, _, rest = spec.partition(":")
    where = Path(rest.rstrip("/\\")).name if rest else ""
    name = f"gan-{kind}-{where}.safetensors" if where else f"gan-{kind}.safetensors"
    folder = Path(out_dir).expanduser() if out_dir else default_checkpoint_dir()
    return folder / name


@dataclass
class Checkpoint:
    """A loaded checkpoint: the architecture, the tensors by group, and training state."""

    config: GanConfig
    groups: dict[str, dict[str, np.ndarray]]
    training: dict[str, Any] = field(default_factory=dict)
    path: Path | None = None

    @property
    def generator(self) -> dict[str, np.ndarray]:
        return self.groups["g"]

    @property
    def resumable(self) -> bool:
        # optimiser moments are absent when no step was taken yet; fresh ones are then right
        return "d" in self.groups and "gt" in self.groups


def save_checkpoint(
    path: str | Path,
    config: GanConfig,
    groups: dict[str, dict[str, np.ndarray]],
    training: dict[str, Any] | None = None,
) -> Path:
    """Write a checkpoint; group names become tensor-name prefixes (`g.fc.weight`)."""
    if "g" not in groups:
        raise ValueError("a checkpoint needs the generator group 'g'")
    flat = {f"{group}.{name}": arr for group, tensors in groups.items() for name, arr in tensors.items()}
    meta = {"format": FORMAT, "config": json.dumps(config.to_json())}
    if training:
        meta["training"] = json.dumps(training)
    path = Path(path)
    write_safetensors(path, flat, meta)
    return path


def load_checkpoint(path: str | Path) -> Checkpoint:
    """Load and validate a checkpoint; anything that is not ours is a UsageError."""
    tensors, meta = read_safetensors(path)
    if meta.get("format") != FORMAT:
        raise UsageError(f"{path}: not an aigc-chat GAN checkpoint (no '{FORMAT}' header)")
    try:
        config = GanConfig.from_json(json.loads(meta.get("config", "")))
        training = json.loads(meta["training"]) if "training" in meta else {}
    except (json.JSONDecodeError, RecursionError):
        raise UsageError(f"{path}: checkpoint header is not valid JSON") from None
    if not isinstance(training, dict):
        raise UsageError(f"{path}: checkpoint training state is not an object")
    groups: dict[str, dict[str, np.ndarray]] = {}
    for name, arr in tensors.items():
        group, _, rest = name.partition(".")
        groups.setdefault(group, {})[rest] = arr
    if "g" not in groups:
        raise UsageError(f"{path}: checkpoint has no generator weights")
    from aigc_chat.gan.npgen import check_generator

    check_generator(config, groups["g"], source=str(path))
    return Checkpoint(config=config, groups=groups, training=training, path=Path(path))
