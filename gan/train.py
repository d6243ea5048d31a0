"""The training loop, shared by `gan train`, the TUI's live view and the benchmark.

Hinge loss with a spectral-norm projection discriminator (see model.py for why), Adam with
the DCGAN betas (0.5, 0.999) but twice DCGAN's learning rate (4e-4 for G, 8e-4 for D: with
spectral norm the game stays stable and the digits reach the quality targets in about half
the epochs of 2e-4, measured), and an exponential moving average of the generator's
weights: on a tiny data set the raw generator wobbles from step to step, while the average
is markedly better and costs nothing. Before every preview and save the averaged
generator's BatchNorm statistics are re-estimated on fresh samples, so the inference form
(running statistics, which the numpy sampler uses) matches what the network learned.

The loop knows nothing about terminals: callers pass callbacks and a stop predicate, which
is how Ctrl-C and the TUI's cancel button end it between two steps.
"""

from __future__ import annotations

import contextlib
import copy
import math
import time
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import numpy as np
import torch
from torch import nn

from aigc_chat.errors import UsageError
from aigc_chat.gan.arch import GanConfig
from aigc_chat.gan.checkpoint import Checkpoint, save_checkpoint
from aigc_chat.gan.data import ImageSet
from aigc_chat.gan.model import Discriminator, Generator
from aigc_chat.torch_device import pick_device


@dataclass
class TrainOptions:
    epochs: int = 60
    batch_size: int = 64
    lr: float = 4e-4
    d_lr_ratio: float = 2.0  # two time-scale update rule: D learns faster than G
    betas: tuple[float, float] = (0.5, 0.999)
    ema_decay: float = 0.995
    device: str = "cpu"
    seed: int = 0
    preview_n: int = 20
    # Small networks gain nothing from intra-op threads, and on a shared CPU the spinning
    # OpenMP workers make each step up to 20x slower (measured): one thread by default.
    threads: int | None = 1


@dataclass
class StepStats:
    epoch: int
    step: int
    steps_per_epoch: int
    d_loss: float
    g_loss: float
    d_real: float
    d_fake: float


@dataclass
class History:
    d_loss: list[float] = field(default_factory=list)
    g_loss: list[float] = field(default_factory=list)


def _to_numpy(state: dict[str, torch.Tensor]) -> dict[str, np.ndarray]:
    return {k: v.detach().cpu().contiguous().numpy() for k, v in state.items()}


def _from_numpy(state: dict[str, np.ndarray]) -> dict[str, torch.Tensor]:
    return {k: torch.from_numpy(np.array(v)) for k, v in state.items()}


def _opt_state(opt: torch.optim.Optimizer) -> dict[str, np.ndarray]:
    out: dict[str, np.ndarray] = {}
    for idx, st in opt.state_dict()["state"].items():
        for key, val in st.items():
            out[f"{idx}.{key}"] = val.detach().cpu().numpy() if torch.is_tensor(val) else np.array(val)
    return out


def _load_opt_state(opt: torch.optim.Optimizer, flat: dict[str, np.ndarray]) -> None:
    sd = opt.state_dict()
    state: dict[int, dict[str, torch.Tensor]] = {}
    for name, arr in flat.items():
        idx, _, key = name.partition(".")
        state.setdefault(int(idx), {})[key] = torch.from_numpy(np.array(arr))
    sd["state"] = state
    opt.load_state_dict(sd)


@contextlib.contextmanager
def _torch_threads(n: int | None) -> Iterator[None]:
    """Use n intra-op threads for a while, then give the process its setting back (the TUI
    may run the torch chat backend in the same process)."""
    old = torch.get_num_threads()
    if n:
        torch.set_num_threads(n)
    try:
        yield
    finally:
        torch.set_num_threads(old)


class Trainer:
    """Owns the networks, optimisers and the data; `run` trains, `save` checkpoints."""

    def __init__(self, data: ImageSet, opts: TrainOptions, config: GanConfig | None = None,
                 resume: Checkpoint | None = None) -> None:
        if opts.epochs < 0 or opts.batch_size < 1 or not (opts.lr > 0 and math.isfinite(opts.lr)):
            raise UsageError("--epochs must be >= 0, --batch-size >= 1 and --lr > 0")
        self.opts = opts
        self.device = pick_device(opts.device)
        self.data = data
        if resume is not None:
            if not resume.resumable:
                raise UsageError(f"{resume.path}: checkpoint has no training state to resume from")
            config = resume.config
            if (config.image_size, config.channels, config.num_classes) != (data.size, data.channels, data.num_classes):
                raise UsageError(
                    f"{resume.path}: checkpoint is for {config.image_size}px x{config.channels} with "
                    f"{config.num_classes} classes, the data is {data.size}px x{data.channels} with {data.num_classes}"
                )
        if config is None:
            config = GanConfig(image_size=data.size, channels=data.channels, num_classes=data.num_classes,
                               class_names=list(data.class_names), data=data.spec)
        self.config = config
        torch.manual_seed(opts.seed)
        self.rng = torch.Generator().manual_seed(opts.seed)
        self.G = Generator(config).to(self.device)
        self.D = Discriminator(config).to(self.device)
        self.G_ema = copy.deepcopy(self.G).eval()
        d_lr = opts.lr * opts.d_lr_ratio
        self.opt_g = torch.optim.Adam(self.G.parameters(), lr=opts.lr, betas=opts.betas)
        self.opt_d = torch.optim.Adam(self.D.parameters(), lr=d_lr, betas=opts.betas)
        self.epoch = 0
        self.step = 0
        self.history = History()
        self.elapsed = 0.0
        if resume is not None:
            self._restore(resume)
        self.x = torch.from_numpy(data.images * 2.0 - 1.0).to(self.device)
        self.y = None if data.labels is None else torch.from_numpy(data.labels).to(self.device)
        self.preview_z = torch.randn(opts.preview_n, config.z_dim, generator=torch.Generator().manual_seed(1234))
        self.preview_y = (torch.arange(opts.preview_n) % max(config.num_classes, 1)) if config.conditional else None

    def _restore(self, ck: Checkpoint) -> None:
        self.G.load_state_dict(_from_numpy(ck.groups["gt"]))
        self.G_ema.load_state_dict(_from_numpy(ck.groups["g"]))
        self.D.load_state_dict(_from_numpy(ck.groups["d"]))
        if "opt_g" in ck.groups and "opt_d" in ck.groups:
            _load_opt_state(self.opt_g, ck.groups["opt_g"])
            _load_opt_state(self.opt_d, ck.groups["opt_d"])
        tr = ck.training
        self.epoch = int(tr.get("epoch", 0))
        self.step = int(tr.get("step", 0))
        self.elapsed = float(tr.get("elapsed_s", 0.0))
        self.history = History(list(tr.get("d_loss", [])), list(tr.get("g_loss", [])))

    @property
    def steps_per_epoch(self) -> int:
        return max(1, len(self.x) // self.opts.batch_size) if len(self.x) >= self.opts.batch_size else 1

    def _labels(self, n: int) -> torch.Tensor | None:
        if not self.config.conditional:
            return None
        return torch.randint(0, self.config.num_classes, (n,), generator=self.rng).to(self.device)

    def train_step(self, xb: torch.Tensor, yb: torch.Tensor | None) -> tuple[float, float, float, float]:
        n = len(xb)
        z = torch.randn(n, self.config.z_dim, generator=self.rng).to(self.device)
        yf = self._labels(n) if yb is not None else None
        # Discriminator: hinge loss pushes real scores above +1 and fake below -1.
        with torch.no_grad():
            fake = self.G(z, yf)
        d_real = self.D(xb, yb)
        d_fake = self.D(fake, yf)
        d_loss = torch.relu(1.0 - d_real).mean() + torch.relu(1.0 + d_fake).mean()
        self.opt_d.zero_grad(set_to_none=True)
        d_loss.backward()
        self.opt_d.step()
        # Generator: raise the discriminator's score of fresh fakes.
        z = torch.randn(n, self.config.z_dim, generator=self.rng).to(self.device)
        yf = self._labels(n) if yb is not None else None
        g_loss = -self.D(self.G(z, yf), yf).mean()
        self.opt_g.zero_grad(set_to_none=True)
        g_loss.backward()
        self.opt_g.step()
        self._update_ema()
        return d_loss.item(), g_loss.item(), d_real.mean().item(), d_fake.mean().item()

    @torch.no_grad()
    def _update_ema(self) -> None:
        decay = min(self.opts.ema_decay, (1 + self.step) / (10 + self.step))  # warm up the average
        for pe, p in zip(self.G_ema.parameters(), self.G.parameters(), strict=True):
            pe.lerp_(p, 1.0 - decay)

    @torch.no_grad()
    def refresh_bn(self, batches: int = 16, batch: int = 256) -> None:
        """Re-estimate the averaged generator's BatchNorm statistics on fresh samples."""
        bns = [m for m in self.G_ema.modules() if isinstance(m, nn.BatchNorm2d)]
        for m in bns:
            m.reset_running_stats()
            m.momentum = None  # cumulative average over the batches below
        self.G_ema.train()
        g = torch.Generator().manual_seed(4321)
        for _ in range(batches):
            z = torch.randn(batch, self.config.z_dim, generator=g).to(self.device)
            y = torch.randint(0, max(self.config.num_classes, 1), (batch,), generator=g).to(self.device)
            self.G_ema(z, y if self.config.conditional else None)
        self.G_ema.eval()
        for m in bns:
            m.momentum = 0.1

    @torch.no_grad()
    def preview(self) -> np.ndarray:
        """The fixed preview grid from the averaged generator, N x C x H x W in [0, 1]."""
        self.refresh_bn(batches=4)  # a quarter of the save-time estimate: it runs every epoch
        y = None if self.preview_y is None else self.preview_y.to(self.device)
        out = self.G_ema(self.preview_z.to(self.device), y)
        return ((out + 1) * 0.5).clamp(0, 1).cpu().numpy()

    def run(
        self,
        on_step: Callable[[StepStats], None] | None = None,
        on_epoch: Callable[[int, np.ndarray], None] | None = None,
        should_stop: Callable[[], bool] = lambda: False,
    ) -> bool:
        """Train up to opts.epochs (counting epochs already done); False if stopped early."""
        with _torch_threads(self.opts.threads if self.device.type == "cpu" else None):
            return self._run(on_step, on_epoch, should_stop)

    def _run(
        self,
        on_step: Callable[[StepStats], None] | None,
        on_epoch: Callable[[int, np.ndarray], None] | None,
        should_stop: Callable[[], bool],
    ) -> bool:
        self.G.train()
        self.D.train()
        n = len(self.x)
        bs = min(self.opts.batch_size, n)
        perm_gen = torch.Generator().manual_seed(self.opts.seed + self.epoch)
        while self.epoch < self.opts.epochs:
            t0 = time.perf_counter()
            perm = torch.randperm(n, generator=perm_gen).to(self.device)
            d_sum = g_sum = 0.0
            steps = self.steps_per_epoch
            for i in range(steps):
                if should_stop():
                    self.elapsed += time.perf_counter() - t0
                    return False
                idx = perm[i * bs : (i + 1) * bs]
                yb = None if self.y is None else self.y[idx]
                d_loss, g_loss, d_real, d_fake = self.train_step(self.x[idx], yb)
                if not (math.isfinite(d_loss) and math.isfinite(g_loss)):
                    raise RuntimeError("training diverged (loss is not finite); try a lower --lr")
                self.step += 1
                d_sum += d_loss
                g_sum += g_loss
                if on_step:
                    on_step(StepStats(self.epoch, i + 1, steps, d_loss, g_loss, d_real, d_fake))
            self.epoch += 1
            self.history.d_loss.append(d_sum / steps)
            self.history.g_loss.append(g_sum / steps)
            self.elapsed += time.perf_counter() - t0
            if on_epoch:
                on_epoch(self.epoch, self.preview())
        return True

    def training_state(self) -> dict[str, Any]:
        return {
            "epoch": self.epoch,
            "step": self.step,
            "elapsed_s": round(self.elapsed, 3),
            "lr": self.opts.lr,
            "d_lr_ratio": self.opts.d_lr_ratio,
            "batch_size": self.opts.batch_size,
            "seed": self.opts.seed,
            "d_loss": self.history.d_loss,
            "g_loss": self.history.g_loss,
        }

    def generator_state(self, half: bool = False) -> dict[str, np.ndarray]:
        """The averaged generator in inference form (BatchNorm statistics refreshed)."""
        self.refresh_bn()
        state = _to_numpy(self.G_ema.state_dict())
        state.pop("bn0.num_batches_tracked", None)
        state = {k: v for k, v in state.items() if not k.endswith("num_batches_tracked")}
        if half:
            state = {k: v.astype(np.float16) if v.dtype == np.float32 else v for k, v in state.items()}
        return state

    def save(self, path: str | Path, full: bool = True, half: bool = False) -> Path:
        """Write a checkpoint; `full` adds D, the raw G and the optimisers for --resume."""
        with _torch_threads(self.opts.threads if self.device.type == "cpu" else None):
            groups = {"g": self.generator_state(half)}
        if full:
            groups["gt"] = _to_numpy(self.G.state_dict())
            groups["d"] = _to_numpy(self.D.state_dict())
            for name, opt in (("opt_g", self.opt_g), ("opt_d", self.opt_d)):
                if opt.state:
                    groups[name] = _opt_state(opt)
        return save_checkpoint(path, self.config, groups, self.training_state())
