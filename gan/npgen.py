"""The generator's forward pass in numpy, for sampling without torch.

Importing torch costs one to several seconds on a small CPU; the digits generator is a few
matrix products, so numpy draws 100 samples in milliseconds and `gan sample` starts fast.
BatchNorm runs in inference form (running statistics, which training re-estimates before
saving). A test checks this against the torch module on random weights.
"""

from __future__ import annotations

import contextlib

import numpy as np

from aigc_chat.errors import UsageError
from aigc_chat.gan.arch import GanConfig

BN_EPS = 1e-5


def single_thread_blas() -> contextlib.AbstractContextManager[object]:
    """Run BLAS on one thread for these tiny products.

    Measured on the shared 2-core box: a (100 x 48) @ (48 x 1024) product takes 0.4 ms on
    one OpenBLAS thread and 14-17 ms on two, whose workers spin while other processes hold
    the cores. threadpoolctl comes with scikit-learn; without it the default stays.
    """
    try:
        from threadpoolctl import threadpool_limits
    except ImportError:
        return contextlib.nullcontext()
    return threadpool_limits(limits=1, user_api="blas")


def expected_shapes(cfg: GanConfig) -> dict[str, tuple[int, ...]]:
    """The tensor names and shapes a generator for `cfg` must have (torch naming)."""
    ch = cfg.g_channels()
    b = cfg.base_size
    in_dim = cfg.z_dim + (cfg.embed_dim if cfg.conditional else 0)
    shapes: dict[str, tuple[int, ...]] = {"fc.weight": (ch[0] * b * b, in_dim)}
    if cfg.conditional:
        shapes["embed.weight"] = (cfg.num_classes, cfg.embed_dim)
    for key in ("weight", "bias", "running_mean", "running_var"):
        shapes[f"bn0.{key}"] = (ch[0],)
    for i in range(cfg.n_up):
        shapes[f"ups.{i}.weight"] = (ch[i], ch[i + 1], 4, 4)
        for key in ("weight", "bias", "running_mean", "running_var"):
            shapes[f"bns.{i}.{key}"] = (ch[i + 1],)
    shapes["out.weight"] = (cfg.channels, ch[-1], 3, 3)
    shapes["out.bias"] = (cfg.channels,)
    return shapes


def check_generator(cfg: GanConfig, tensors: dict[str, np.ndarray], source: str = "checkpoint") -> None:
    """Raise a UsageError naming the first missing or mis-shaped generator tensor."""
    for name, shape in expected_shapes(cfg).items():
        arr = tensors.get(name)
        if arr is None:
            raise UsageError(f"{source}: generator tensor {name!r} is missing")
        if tuple(arr.shape) != shape:
            raise UsageError(f"{source}: generator tensor {name!r} has shape {tuple(arr.shape)}, expected {shape}")
        if not np.all(np.isfinite(arr)):
            raise UsageError(f"{source}: generator tensor {name!r} has non-finite values")


def _bn_relu(x: np.ndarray, t: dict[str, np.ndarray], prefix: str) -> np.ndarray:
    scale = t[f"{prefix}.weight"] / np.sqrt(t[f"{prefix}.running_var"] + BN_EPS)
    shift = t[f"{prefix}.bias"] - t[f"{prefix}.running_mean"] * scale
    x = x * scale[None, :, None, None] + shift[None, :, None, None]
    return np.maximum(x, 0.0, out=x)


def conv_transpose_4x4_s2(x: np.ndarray, w: np.ndarray) -> np.ndarray:
    """ConvTranspose2d(kernel 4, stride 2, padding 1, no bias): doubles H and W.

    Each input pixel scatters a 4x4 patch, so the output is one tensordot followed by
    16 strided adds into a (2H+2)x(2W+2) canvas, then cropped by the padding of 1.
    """
    n, _, h, wd = x.shape
    cout = w.shape[1]
    cin = x.shape[1]
    y = x.transpose(0, 2, 3, 1).reshape(-1, cin) @ w.reshape(cin, -1)  # (n*h*w, cout*16)
    y = y.reshape(n, h, wd, cout, 4, 4).transpose(0, 3, 4, 5, 1, 2)  # n, cout, 4, 4, h, w
    full = np.zeros((n, cout, 2 * h + 2, 2 * wd + 2), dtype=x.dtype)
    for ki in range(4):
        for kj in range(4):
            full[:, :, ki : ki + 2 * h : 2, kj : kj + 2 * wd : 2] += y[:, :, ki, kj]
    return full[:, :, 1 : 1 + 2 * h, 1 : 1 + 2 * wd]


def conv3x3(x: np.ndarray, w: np.ndarray, b: np.ndarray) -> np.ndarray:
    """Conv2d(kernel 3, stride 1, padding 1) as nine shifted products."""
    n, c, h, wd = x.shape
    xp = np.pad(x.transpose(0, 2, 3, 1), ((0, 0), (1, 1), (1, 1), (0, 0)))  # n, h+2, w+2, c
    cols = np.concatenate([xp[:, ki : ki + h, kj : kj + wd] for ki in range(3) for kj in range(3)], axis=-1)
    wm = w.transpose(2, 3, 1, 0).reshape(9 * c, -1)  # (ki, kj, c) x out, matching cols
    out = cols.reshape(-1, 9 * c) @ wm + b
    return out.reshape(n, h, wd, -1).transpose(0, 3, 1, 2)


def generate(cfg: GanConfig, tensors: dict[str, np.ndarray], z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    """Run the generator: z (N, z_dim) and labels (N,) -> images (N, C, H, W) in [0, 1]."""
    with single_thread_blas():
        return _generate(cfg, tensors, z, labels)


def _generate(cfg: GanConfig, tensors: dict[str, np.ndarray], z: np.ndarray, labels: np.ndarray | None) -> np.ndarray:
    t = {k: v.astype(np.float32, copy=False) for k, v in tensors.items()}
    x = z.astype(np.float32, copy=False)
    if cfg.conditional:
        if labels is None:
            raise ValueError("a conditional generator needs labels")
        x = np.concatenate([x, t["embed.weight"][labels]], axis=1)
    ch = cfg.g_channels()
    b = cfg.base_size
    x = (x @ np.ascontiguousarray(t["fc.weight"].T)).reshape(len(x), ch[0], b, b)
    x = _bn_relu(x, t, "bn0")
    for i in range(cfg.n_up):
        x = conv_transpose_4x4_s2(x, t[f"ups.{i}.weight"])
        x = _bn_relu(x, t, f"bns.{i}")
    x = conv3x3(x, t["out.weight"], t["out.bias"])
    return (np.tanh(x) + 1.0) * 0.5
