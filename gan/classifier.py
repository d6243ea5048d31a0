"""The reference classifier behind the quality figures (there are no Inception weights
for 8x8 digits). It is trained on the GAN's own training split with a fixed seed; its
penultimate layer gives the features for the Frechet distance and its prediction gives
conditional accuracy. The digits one ships beside the generator.
"""

from __future__ import annotations

import json
from pathlib import Path

import numpy as np
import torch
from torch import nn

from aigc_chat.errors import UsageError
from aigc_chat.gan.arch import plan_size
from aigc_chat.gan.data import ImageSet
from aigc_chat.gan.safetensors_io import read_safetensors, write_safetensors

FORMAT = "aigc-chat-gan-classifier/1"


class Classifier(nn.Module):
    def __init__(self, size: int, channels: int, num_classes: int, width: int = 16, feat_dim: int = 64) -> None:
        super().__init__()
        base, n_down = plan_size(size)
        self.meta = {"size": size, "channels": channels, "num_classes": num_classes, "width": width,
                     "feat_dim": feat_dim}
        layers: list[nn.Module] = [nn.Conv2d(channels, width, 3, 1, 1), nn.ReLU()]
        c = width
        for _ in range(n_down):
            layers += [nn.Conv2d(c, c * 2, 3, 2, 1), nn.ReLU()]
            c *= 2
        self.conv = nn.Sequential(*layers)
        self.feat = nn.Sequential(nn.Flatten(), nn.Linear(c * base * base, feat_dim), nn.ReLU())
        self.head = nn.Linear(feat_dim, num_classes)

    def forward(self, x: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        """Return (features, logits) for images in [0, 1]."""
        f = self.feat(self.conv(x * 2 - 1))
        return f, self.head(f)

    @torch.no_grad()
    def embed(self, images: np.ndarray, batch: int = 512) -> tuple[np.ndarray, np.ndarray]:
        """(features, predicted labels) for N x C x H x W images in [0, 1]."""
        self.eval()
        feats, preds = [], []
        for i in range(0, len(images), batch):
            f, logits = self(torch.from_numpy(np.ascontiguousarray(images[i : i + batch], np.float32)))
            feats.append(f.numpy())
            preds.append(logits.argmax(1).numpy())
        return np.concatenate(feats), np.concatenate(preds)


def _shift(x: torch.Tensor, g: torch.Generator) -> torch.Tensor:
    """Random shifts of up to one pixel, so features do not hinge on exact placement."""
    pad = nn.functional.pad(x, (1, 1, 1, 1))
    dx, dy = torch.randint(0, 3, (2,), generator=g).tolist()
    return pad[:, :, dy : dy + x.shape[2], dx : dx + x.shape[3]]


def train_classifier(data: ImageSet, epochs: int = 40, seed: int = 0, batch_size: int = 64) -> Classifier:
    """Fit the reference classifier deterministically (fixed seed, CPU)."""
    if data.labels is None:
        raise UsageError("the reference classifier needs labelled data")
    torch.manual_seed(seed)
    g = torch.Generator().manual_seed(seed)
    model = Classifier(data.size, data.channels, data.num_classes)
    opt = torch.optim.Adam(model.parameters(), lr=2e-3, weight_decay=1e-4)
    x = torch.from_numpy(data.images)
    y = torch.from_numpy(data.labels)
    model.train()
    for _ in range(epochs):
        perm = torch.randperm(len(x), generator=g)
        for i in range(0, len(x), batch_size):
            idx = perm[i : i + batch_size]
            _, logits = model(_shift(x[idx], g))
            loss = nn.functional.cross_entropy(logits, y[idx])
            opt.zero_grad()
            loss.backward()
            opt.step()
    return model.eval()


def save_classifier(model: Classifier, path: str | Path, extra: dict | None = None) -> None:
    tensors = {k: v.detach().cpu().numpy() for k, v in model.state_dict().items()}
    meta = {"format": FORMAT, "config": json.dumps(model.meta), "info": json.dumps(extra or {})}
    write_safetensors(path, tensors, meta)


def load_classifier(path: str | Path) -> Classifier:
    tensors, meta = read_safetensors(path)
    if meta.get("format") != FORMAT:
        raise UsageError(f"{path}: not an aigc-chat GAN classifier")
    cfg = json.loads(meta["config"])
    model = Classifier(**cfg)
    try:
        model.load_state_dict({k: torch.from_numpy(v) for k, v in tensors.items()})
    except RuntimeError:
        raise UsageError(f"{path}: classifier weights do not match its header") from None
    return model.eval()
