"""The torch networks: a DCGAN-style conditional generator and a projection discriminator.

Why these choices:
- Generator: DCGAN recipe (a linear layer to a small map, stride-2 transposed convolutions,
  BatchNorm + ReLU, tanh out). The class enters as a learned embedding joined to z, which
  is enough on digit-sized images and keeps the numpy sampler trivial.
- Discriminator: spectral norm on every layer bounds its Lipschitz constant, which is
  what keeps the hinge-loss game stable without gradient penalties (cheap on a CPU);
  LeakyReLU(0.2) as in DCGAN. The class enters by projection (Miyato & Koyama 2018):
  an inner product between a class embedding and the features, which conditions far more
  reliably than concatenating labels to the input.
- No BatchNorm in D: spectral norm already normalises, and BN in D couples real and fake
  batches in ways that destabilise small GANs.
"""

from __future__ import annotations

import torch
from torch import nn
from torch.nn.utils.parametrizations import spectral_norm

from aigc_chat.gan.arch import GanConfig


class Generator(nn.Module):
    def __init__(self, cfg: GanConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch = cfg.g_channels()
        b = cfg.base_size
        in_dim = cfg.z_dim
        if cfg.conditional:
            self.embed = nn.Embedding(cfg.num_classes, cfg.embed_dim)
            in_dim += cfg.embed_dim
        self.fc = nn.Linear(in_dim, ch[0] * b * b, bias=False)
        self.bn0 = nn.BatchNorm2d(ch[0])
        self.ups = nn.ModuleList(nn.ConvTranspose2d(ch[i], ch[i + 1], 4, 2, 1, bias=False) for i in range(cfg.n_up))
        self.bns = nn.ModuleList(nn.BatchNorm2d(ch[i + 1]) for i in range(cfg.n_up))
        self.out = nn.Conv2d(ch[-1], cfg.channels, 3, 1, 1)

    def forward(self, z: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Return images in [-1, 1] (tanh), shape (N, C, H, W)."""
        x = z
        if self.cfg.conditional:
            assert labels is not None
            x = torch.cat([z, self.embed(labels)], dim=1)
        b = self.cfg.base_size
        x = self.fc(x).view(len(z), -1, b, b)
        x = torch.relu(self.bn0(x))
        for up, bn in zip(self.ups, self.bns, strict=True):
            x = torch.relu(bn(up(x)))
        return torch.tanh(self.out(x))


class Discriminator(nn.Module):
    def __init__(self, cfg: GanConfig) -> None:
        super().__init__()
        self.cfg = cfg
        ch = cfg.d_channels()
        b = cfg.base_size
        self.inp = spectral_norm(nn.Conv2d(cfg.channels, ch[0], 3, 1, 1))
        self.downs = nn.ModuleList(spectral_norm(nn.Conv2d(ch[i], ch[i + 1], 4, 2, 1)) for i in range(cfg.n_up))
        feat = ch[-1] * b * b
        self.fc = spectral_norm(nn.Linear(feat, 1))
        if cfg.conditional:
            self.proj = spectral_norm(nn.Embedding(cfg.num_classes, feat))

    def forward(self, x: torch.Tensor, labels: torch.Tensor | None = None) -> torch.Tensor:
        """Return one unbounded score per image (hinge loss wants raw scores)."""
        h = nn.functional.leaky_relu(self.inp(x), 0.2)
        for down in self.downs:
            h = nn.functional.leaky_relu(down(h), 0.2)
        h = h.flatten(1)
        out = self.fc(h).squeeze(1)
        if self.cfg.conditional:
            assert labels is not None
            out = out + (self.proj(labels) * h).sum(1)
        return out
