"""`gan eval`: the quality figures for a checkpoint.

Fréchet distance between the reference classifier's features of generated and held-out
real images, printed beside two baselines that give it a scale: real-vs-real (the
training split against the held-out split, with the same sample counts: what a perfect
generator would score) and uniform noise (what no generator at all scores). Conditional
accuracy is the share of samples the classifier assigns to the label that was asked for.
"""

from __future__ import annotations

from dataclasses import asdict, dataclass, field
from typing import Any

import numpy as np

from aigc_chat.errors import UsageError
from aigc_chat.gan import DIGITS_CLASSIFIER
from aigc_chat.gan.checkpoint import Checkpoint
from aigc_chat.gan.data import ImageSet, digits_split, load_data
from aigc_chat.gan.metrics import frechet_distance
from aigc_chat.gan.npgen import generate


@dataclass
class EvalReport:
    data: str
    n_generated: int
    n_held_out: int
    fd_generated: float
    fd_real: float
    fd_noise: float
    conditional_accuracy: float | None
    per_class_accuracy: list[float] = field(default_factory=list)
    classifier_accuracy: float | None = None

    @property
    def fd_ratio(self) -> float:
        return self.fd_generated / self.fd_real if self.fd_real > 0 else float("inf")

    def to_json(self) -> dict[str, Any]:
        out = asdict(self)
        out["fd_ratio"] = round(self.fd_ratio, 3)
        return out


def _split(data: ImageSet, seed: int) -> tuple[ImageSet, ImageSet]:
    rng = np.random.default_rng(seed)
    idx = rng.permutation(len(data.images))
    cut = max(1, int(len(idx) * 0.8))
    return data.subset(np.sort(idx[:cut])), data.subset(np.sort(idx[cut:]))


def generate_balanced(ck: Checkpoint, n: int, seed: int) -> tuple[np.ndarray, np.ndarray | None]:
    """n samples (N x C x H x W) with labels cycling through the classes."""
    cfg = ck.config
    rng = np.random.Generator(np.random.PCG64(seed))
    labels = np.arange(n) % cfg.num_classes if cfg.conditional else None
    out = []
    for i in range(0, n, 500):
        z = rng.standard_normal((min(500, n - i), cfg.z_dim), dtype=np.float32)
        out.append(generate(cfg, ck.generator, z, None if labels is None else labels[i : i + len(z)]))
    return np.concatenate(out), labels


def evaluate(ck: Checkpoint, data_spec: str | None = None, size: int | None = None, seed: int = 0) -> EvalReport:
    """Compute the quality figures; digits use the shipped classifier and fixed split."""
    import torch

    from aigc_chat.gan.classifier import load_classifier, train_classifier

    torch.set_num_threads(1)  # tiny networks: threads only add contention (see train.py)
    cfg = ck.config
    spec = data_spec or cfg.data
    if spec == "digits":
        train, held = digits_split()
        clf = load_classifier(DIGITS_CLASSIFIER)
    else:
        data = load_data(spec, size or cfg.image_size)
        if data.labels is None:
            raise UsageError(
                "eval needs labelled data (class sub-folders or MNIST labels) for its reference classifier"
            )
        train, held = _split(data, seed)
        clf = train_classifier(train, epochs=max(2, min(40, 40_000 // len(train.images))), seed=seed)
    if (train.size, train.channels) != (cfg.image_size, cfg.channels):
        raise UsageError(
            f"the checkpoint makes {cfg.image_size}px x{cfg.channels} images but {spec} is "
            f"{train.size}px x{train.channels}"
        )
    if cfg.conditional and cfg.num_classes != train.num_classes:
        raise UsageError(f"the checkpoint has {cfg.num_classes} classes but {spec} has {train.num_classes}")
    n = len(train.images)
    fake, labels = generate_balanced(ck, n, seed)
    f_fake, p_fake = clf.embed(fake)
    f_train, _ = clf.embed(train.images)
    f_held, p_held = clf.embed(held.images)
    noise = np.random.default_rng(seed + 1).random(train.images.shape, dtype=np.float32)
    f_noise, _ = clf.embed(noise)
    acc = per_class = None
    if labels is not None:
        hit = p_fake == labels
        acc = float(hit.mean())
        per_class = [float(hit[labels == c].mean()) for c in range(cfg.num_classes)]
    return EvalReport(
        data=spec,
        n_generated=n,
        n_held_out=len(held.images),
        fd_generated=frechet_distance(f_fake, f_held),
        fd_real=frechet_distance(f_train, f_held),
        fd_noise=frechet_distance(f_noise, f_held),
        conditional_accuracy=acc,
        per_class_accuracy=per_class or [],
        classifier_accuracy=float((p_held == held.labels).mean()) if held.labels is not None else None,
    )
