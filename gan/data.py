"""Training data: scikit-learn's digits, MNIST IDX files, or a folder of images.

Every loader returns the same thing (float images N x C x H x W in [0, 1], integer labels
or None, class names) so training, evaluation and the tests never care where data came
from. Inputs are user files, so every problem is a one-line UsageError.
"""

from __future__ import annotations

import gzip
import struct
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from aigc_chat.errors import UsageError
from aigc_chat.gan.arch import plan_size
from aigc_chat.safe_open import read_regular

IMAGE_SUFFIXES = {".png", ".jpg", ".jpeg", ".bmp", ".gif", ".webp", ".tif", ".tiff", ".ppm", ".pgm"}
#: Fixed split of the digits so the GAN, the classifier and the baselines agree on what
#: is held out. A third is held out: enough for a stable Frechet baseline.
DIGITS_SPLIT_SEED = 0
DIGITS_HELD_OUT = 600


@dataclass
class ImageSet:
    images: np.ndarray  # float32, N x C x H x W, [0, 1]
    labels: np.ndarray | None  # int64, N
    class_names: list[str]
    spec: str

    @property
    def num_classes(self) -> int:
        return len(self.class_names) if self.labels is not None else 0

    @property
    def size(self) -> int:
        return int(self.images.shape[-1])

    @property
    def channels(self) -> int:
        return int(self.images.shape[1])

    def subset(self, idx: np.ndarray) -> ImageSet:
        labels = None if self.labels is None else self.labels[idx]
        return ImageSet(self.images[idx], labels, self.class_names, self.spec)


def digits_split() -> tuple[ImageSet, ImageSet]:
    """(train, held-out) split of scikit-learn's 1,797 digits, stratified, fixed seed."""
    from sklearn.datasets import load_digits

    d = load_digits()
    images = (d.images.astype(np.float32) / 16.0)[:, None]
    labels = d.target.astype(np.int64)
    rng = np.random.default_rng(DIGITS_SPLIT_SEED)
    held: list[int] = []
    per_class = DIGITS_HELD_OUT // 10
    for c in range(10):
        idx = np.flatnonzero(labels == c)
        held.extend(rng.choice(idx, per_class, replace=False).tolist())
    mask = np.zeros(len(labels), bool)
    mask[held] = True
    full = ImageSet(images, labels, [str(i) for i in range(10)], "digits")
    return full.subset(np.flatnonzero(~mask)), full.subset(np.flatnonzero(mask))


MAX_DATA_FILE = 1 << 30  # MNIST's largest file is 47 MB unpacked


def _open_maybe_gz(path: Path) -> bytes:
    try:
        raw = read_regular(path, MAX_DATA_FILE, "data file")  # never a FIFO or a device
    except OSError as err:
        raise UsageError(f"cannot read {path}: {err.strerror or err}") from None
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError):
            raise UsageError(f"{path}: corrupt gzip file") from None
    return raw


def read_idx(path: Path) -> np.ndarray:
    """Read an IDX file (the MNIST format): magic 0 0 dtype ndim, big-endian dims, data."""
    raw = _open_maybe_gz(path)
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] != 0x08:
        raise UsageError(f"{path}: not an unsigned-byte IDX file")
    ndim = raw[3]
    if not 1 <= ndim <= 3 or len(raw) < 4 + 4 * ndim:
        raise UsageError(f"{path}: bad IDX header")
    dims = struct.unpack(f">{ndim}I", raw[4 : 4 + 4 * ndim])
    count = int(np.prod(dims))
    body = raw[4 + 4 * ndim :]
    if len(body) != count:
        raise UsageError(f"{path}: IDX size mismatch (header says {count} bytes, file has {len(body)})")
    return np.frombuffer(body, dtype=np.uint8).reshape(dims)


def _find(directory: Path, stems: tuple[str, ...]) -> Path | None:
    for stem in stems:
        for cand in (directory / stem, directory / f"{stem}.gz"):
            if cand.is_file():
                return cand
    return None


def load_mnist(directory: Path, size: int | None = None, split: str = "train") -> ImageSet:
    """MNIST-format IDX files in a folder (train-images-idx3-ubyte[.gz] and labels).

    28x28 is the default size (7 * 2^2, which the generator makes directly).
    """
    if not directory.is_dir():
        raise UsageError(f"MNIST folder not found: {directory}")
    prefix = "train" if split == "train" else "t10k"
    img_path = _find(directory, (f"{prefix}-images-idx3-ubyte", f"{prefix}-images.idx3-ubyte"))
    lab_path = _find(directory, (f"{prefix}-labels-idx1-ubyte", f"{prefix}-labels.idx1-ubyte"))
    if img_path is None:
        raise UsageError(f"{directory}: no {prefix}-images-idx3-ubyte[.gz] file")
    images = read_idx(img_path)
    if images.ndim != 3 or images.shape[0] == 0:
        raise UsageError(f"{img_path}: expected a non-empty N x H x W image array")
    labels = None
    if lab_path is not None:
        labels = read_idx(lab_path)
        if labels.ndim != 1 or len(labels) != len(images):
            raise UsageError(f"{lab_path}: {len(labels)} labels for {len(images)} images")
        labels = labels.astype(np.int64)
    arr = images.astype(np.float32)[:, None] / 255.0
    arr = _resize_batch(arr, size or images.shape[1], images.shape[1:] != (images.shape[1],) * 2)
    if labels is None:
        return ImageSet(arr, None, [], f"mnist:{directory}")
    n_classes = int(labels.max()) + 1
    return ImageSet(arr, labels, [str(i) for i in range(n_classes)], f"mnist:{directory}")


def _resize_batch(arr: np.ndarray, size: int, force: bool = False) -> np.ndarray:
    plan_size(size)
    if arr.shape[-1] == size and arr.shape[-2] == size and not force:
        return arr
    from PIL import Image

    out = np.empty((len(arr), arr.shape[1], size, size), np.float32)
    for i, img in enumerate(arr):
        for c in range(arr.shape[1]):
            pil = Image.fromarray(img[c], mode="F").resize((size, size), Image.Resampling.BILINEAR)
            out[i, c] = np.asarray(pil)
    return np.clip(out, 0.0, 1.0)


def load_folder(directory: Path, size: int | None) -> ImageSet:
    """Every image under a folder, resized to size x size (centre square crop).

    Sub-folders holding images become classes (sorted by name); images directly in the
    folder with no class sub-folders make an unconditional set. Grey if every image is
    grey, otherwise RGB.
    """
    if size is None:
        raise UsageError("folder data needs --size N (e.g. 16, 32, 64)")
    plan_size(size)
    if not directory.is_dir():
        raise UsageError(f"image folder not found: {directory}")
    try:
        from PIL import Image, UnidentifiedImageError
    except ImportError:
        raise UsageError("folder data needs Pillow: pip install 'aigc-chat[torch]'") from None

    def images_in(d: Path) -> list[Path]:
        return sorted(p for p in d.iterdir() if p.is_file() and p.suffix.lower() in IMAGE_SUFFIXES)

    subdirs = sorted(p for p in directory.iterdir() if p.is_dir() and not p.name.startswith("."))
    classes = [(d.name, images_in(d)) for d in subdirs]
    classes = [(name, files) for name, files in classes if files]
    if classes:
        entries = [(f, i) for i, (_, files) in enumerate(classes) for f in files]
        names = [name for name, _ in classes]
    else:
        entries = [(f, -1) for f in images_in(directory)]
        names = []
    if not entries:
        raise UsageError(f"no images found in {directory}")
    pics = []
    grey = True
    for path, _ in entries:
        try:
            with Image.open(path) as im:
                im.load()
                rgb = im.convert("RGB")
        except (UnidentifiedImageError, Image.DecompressionBombError, OSError, ValueError) as err:
            raise UsageError(f"cannot read image {path}: {err}") from None
        w, h = rgb.size
        side = min(w, h)
        left, top = (w - side) // 2, (h - side) // 2
        rgb = rgb.crop((left, top, left + side, top + side)).resize((size, size), Image.Resampling.LANCZOS)
        a = np.asarray(rgb, dtype=np.float32) / 255.0
        if grey and not (np.allclose(a[..., 0], a[..., 1]) and np.allclose(a[..., 1], a[..., 2])):
            grey = False
        pics.append(a)
    arr = np.stack(pics).transpose(0, 3, 1, 2)
    if grey:
        arr = arr[:, :1]
    labels = np.array([c for _, c in entries], np.int64) if names else None
    return ImageSet(np.ascontiguousarray(arr), labels, names, f"folder:{directory}")


def load_data(spec: str, size: int | None = None) -> ImageSet:
    """Parse `digits`, `mnist:DIR` or `folder:DIR` and load the training images."""
    kind, _, rest = spec.partition(":")
    if kind == "digits" and not rest:
        if size not in (None, 8):
            raise UsageError("the digits data is 8x8; --size does not apply")
        return digits_split()[0]
    if kind == "mnist" and rest:
        return load_mnist(Path(rest).expanduser(), size)
    if kind == "folder" and rest:
        return load_folder(Path(rest).expanduser(), size)
    raise UsageError(f"unknown data {spec!r}: use digits, mnist:DIR or folder:DIR")
