"""Data loaders on small files the tests write: MNIST IDX (plain and gzip), image folders."""

from __future__ import annotations

import gzip
import struct

import numpy as np
import pytest

from aigc_chat.errors import UsageError
from aigc_chat.gan.data import digits_split, load_data, read_idx

PIL = pytest.importorskip("PIL.Image")


def _write_idx(path, arr: np.ndarray, gz: bool = False) -> None:
    head = bytes([0, 0, 0x08, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape)
    data = head + arr.astype(np.uint8).tobytes()
    path.write_bytes(gzip.compress(data) if gz else data)


def write_tiny_mnist(directory):
    """A real MNIST-format folder, 16 labelled 8x8 images: enough to train on for tests."""
    directory.mkdir(parents=True, exist_ok=True)
    rng = np.random.default_rng(0)
    _write_idx(directory / "train-images-idx3-ubyte", rng.integers(0, 256, (16, 8, 8)))
    _write_idx(directory / "train-labels-idx1-ubyte", np.arange(16) % 2)
    return directory


@pytest.mark.parametrize("gz", [False, True])
def test_mnist_idx(tmp_path, gz):
    rng = np.random.default_rng(0)
    imgs = rng.integers(0, 256, (12, 28, 28), dtype=np.uint8)
    labels = np.arange(12) % 4
    suffix = ".gz" if gz else ""
    _write_idx(tmp_path / f"train-images-idx3-ubyte{suffix}", imgs, gz)
    _write_idx(tmp_path / f"train-labels-idx1-ubyte{suffix}", labels, gz)
    ds = load_data(f"mnist:{tmp_path}")
    assert ds.images.shape == (12, 1, 28, 28) and ds.images.dtype == np.float32
    np.testing.assert_allclose(ds.images[3, 0], imgs[3] / 255.0, atol=1e-6)
    assert ds.labels.tolist() == labels.tolist()
    assert ds.num_classes == 4


def test_mnist_resized(tmp_path):
    imgs = np.zeros((3, 28, 28), np.uint8)
    imgs[:, 10:18, 10:18] = 255
    _write_idx(tmp_path / "train-images-idx3-ubyte", imgs)
    ds = load_data(f"mnist:{tmp_path}", size=16)
    assert ds.images.shape == (3, 1, 16, 16) and ds.labels is None and ds.num_classes == 0
    assert ds.images[0, 0, 8, 8] > 0.9 and ds.images[0, 0, 0, 0] < 0.05


def test_truncated_idx_is_a_usage_error(tmp_path):
    p = tmp_path / "train-images-idx3-ubyte"
    _write_idx(p, np.zeros((4, 28, 28), np.uint8))
    p.write_bytes(p.read_bytes()[:-10])
    with pytest.raises(UsageError, match="size mismatch"):
        read_idx(p)
    p.write_bytes(b"PK\x03\x04junk")
    with pytest.raises(UsageError, match="not an unsigned-byte IDX"):
        load_data(f"mnist:{tmp_path}")


def test_mnist_label_count_mismatch(tmp_path):
    _write_idx(tmp_path / "train-images-idx3-ubyte", np.zeros((4, 28, 28), np.uint8))
    _write_idx(tmp_path / "train-labels-idx1-ubyte", np.zeros(3, np.uint8))
    with pytest.raises(UsageError, match="3 labels for 4 images"):
        load_data(f"mnist:{tmp_path}")


def test_mnist_folder_without_images(tmp_path):
    with pytest.raises(UsageError, match="no train-images"):
        load_data(f"mnist:{tmp_path}")


def _save(path, arr):
    PIL.fromarray(arr).save(path)


def test_folder_with_classes_colour(tmp_path):
    rng = np.random.default_rng(1)
    for cls in ("cats", "dogs"):
        (tmp_path / cls).mkdir()
        for i in range(3):
            _save(tmp_path / cls / f"{i}.png", rng.integers(0, 256, (20, 30, 3), dtype=np.uint8))
    (tmp_path / "empty").mkdir()  # a sub-folder with no images is not a class
    (tmp_path / "notes.txt").write_text("not an image")
    ds = load_data(f"folder:{tmp_path}", size=16)
    assert ds.images.shape == (6, 3, 16, 16)
    assert ds.class_names == ["cats", "dogs"] and ds.labels.tolist() == [0, 0, 0, 1, 1, 1]
    assert ds.images.min() >= 0.0 and ds.images.max() <= 1.0


def test_folder_unconditional_grey(tmp_path):
    for i in range(4):
        img = np.full((12, 12), 60 * i, np.uint8)
        _save(tmp_path / f"g{i}.png", img)
    ds = load_data(f"folder:{tmp_path}", size=8)
    assert ds.images.shape == (4, 1, 8, 8) and ds.labels is None
    assert ds.images[2].mean() == pytest.approx(120 / 255, abs=0.01)


def test_folder_errors(tmp_path):
    with pytest.raises(UsageError, match="no images found"):
        load_data(f"folder:{tmp_path}", size=16)
    _save(tmp_path / "a.png", np.zeros((8, 8), np.uint8))
    with pytest.raises(UsageError, match="cannot be made"):
        load_data(f"folder:{tmp_path}", size=22)
    with pytest.raises(UsageError, match="--size"):
        load_data(f"folder:{tmp_path}", size=None)
    (tmp_path / "broken.png").write_bytes(b"\x89PNG not really")
    with pytest.raises(UsageError, match="cannot read image"):
        load_data(f"folder:{tmp_path}", size=8)
    with pytest.raises(UsageError, match="not found"):
        load_data(f"folder:{tmp_path / 'missing'}", size=8)


@pytest.mark.parametrize("spec", ["mnist", "imagenet", "folder:", "digits:x"])
def test_unknown_data_spec(spec):
    with pytest.raises(UsageError, match="unknown data"):
        load_data(spec)


def test_digits_split_is_fixed_and_disjoint():
    a_train, a_held = digits_split()
    _b_train, b_held = digits_split()
    assert len(a_train.images) + len(a_held.images) == 1797
    assert np.array_equal(a_held.images, b_held.images)
    assert np.bincount(a_held.labels).tolist() == [60] * 10
    flat_train = {x.tobytes() for x in a_train.images}
    assert sum(x.tobytes() in flat_train for x in a_held.images) < 10  # only true duplicates
