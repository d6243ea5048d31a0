"""Checkpoints: our safetensors reader/writer, header validation, and the numpy generator
against the torch one."""

from __future__ import annotations

import json
import struct

import numpy as np
import pytest

from aigc_chat.errors import UsageError
from aigc_chat.gan import DEFAULT_CHECKPOINT
from aigc_chat.gan.arch import GanConfig, plan_size
from aigc_chat.gan.checkpoint import FORMAT, checkpoint_path, load_checkpoint, save_checkpoint
from aigc_chat.gan.safetensors_io import read_safetensors, write_safetensors


@pytest.mark.parametrize("size, plan", [(8, (4, 1)), (16, (4, 2)), (28, (7, 2)), (32, (4, 3)), (6, (3, 1)),
                                        (64, (4, 4))])
def test_plan_size(size, plan):
    assert plan_size(size) == plan


@pytest.mark.parametrize("size", [4, 5, 9, 22, 11, 256, 0])
def test_impossible_sizes_are_usage_errors(size):
    with pytest.raises(UsageError, match="size"):
        plan_size(size)


def test_reader_interoperates_with_the_safetensors_package(tmp_path):
    st = pytest.importorskip("safetensors.numpy")
    tensors = {"a": np.arange(12, dtype=np.float32).reshape(3, 4), "b": np.array([1, 2], np.int64),
               "c": np.ones((2, 2), np.float16)}
    st.save_file(tensors, str(tmp_path / "x.safetensors"), metadata={"k": "v"})
    got, meta = read_safetensors(tmp_path / "x.safetensors")
    assert meta == {"k": "v"}
    for k, v in tensors.items():
        assert got[k].dtype == v.dtype and np.array_equal(got[k], v)
    write_safetensors(tmp_path / "y.safetensors", tensors, {"k": "w"})
    back = st.load_file(str(tmp_path / "y.safetensors"))
    for k, v in tensors.items():
        assert np.array_equal(back[k], v)


def _header_file(path, header: dict, body: bytes = b"") -> None:
    h = json.dumps(header).encode()
    path.write_bytes(struct.pack("<Q", len(h)) + h + body)


@pytest.mark.parametrize(
    "content",
    [b"", b"hello", b"\xff" * 64, struct.pack("<Q", 10**12) + b"{}"],
)
def test_garbage_files_are_rejected(tmp_path, content):
    p = tmp_path / "bad.safetensors"
    p.write_bytes(content)
    with pytest.raises(UsageError, match="not a safetensors"):
        load_checkpoint(p)


def test_out_of_range_offsets_are_rejected(tmp_path):
    p = tmp_path / "bad.safetensors"
    _header_file(p, {"x": {"dtype": "F32", "shape": [4], "data_offsets": [0, 16]}}, b"\0" * 8)
    with pytest.raises(UsageError, match="inconsistent offsets"):
        read_safetensors(p)


def test_foreign_safetensors_is_not_ours(tmp_path):
    p = tmp_path / "other.safetensors"
    write_safetensors(p, {"w": np.zeros(3, np.float32)}, {"format": "pt"})
    with pytest.raises(UsageError, match="not an aigc-chat GAN checkpoint"):
        load_checkpoint(p)


def test_missing_and_directory_paths(tmp_path):
    with pytest.raises(UsageError, match="not found"):
        load_checkpoint(tmp_path / "nope.safetensors")
    with pytest.raises(UsageError, match="directory"):
        load_checkpoint(tmp_path)


def test_shipped_generator_is_small_and_valid():
    assert DEFAULT_CHECKPOINT.stat().st_size < 400_000
    ck = load_checkpoint(DEFAULT_CHECKPOINT)
    assert (ck.config.image_size, ck.config.channels, ck.config.num_classes) == (8, 1, 10)
    assert not ck.resumable  # generator only: the shipped file carries no training state


def test_wrong_shapes_are_named(tmp_path):
    ck = load_checkpoint(DEFAULT_CHECKPOINT)
    g = dict(ck.generator)
    g["out.bias"] = np.zeros(5, np.float32)
    p = save_checkpoint(tmp_path / "bad.safetensors", ck.config, {"g": g})
    with pytest.raises(UsageError, match=r"out\.bias"):
        load_checkpoint(p)
    del g["out.bias"]
    p = save_checkpoint(tmp_path / "bad2.safetensors", ck.config, {"g": g})
    with pytest.raises(UsageError, match="missing"):
        load_checkpoint(p)


def test_bad_architecture_header(tmp_path):
    p = tmp_path / "arch.safetensors"
    write_safetensors(p, {"g.x": np.zeros(1, np.float32)},
                      {"format": FORMAT, "config": json.dumps({"image_size": 22})})
    with pytest.raises(UsageError, match="size 22"):
        load_checkpoint(p)
    write_safetensors(p, {"g.x": np.zeros(1, np.float32)}, {"format": FORMAT, "config": "{not json"})
    with pytest.raises(UsageError, match="JSON"):
        load_checkpoint(p)


@pytest.mark.parametrize(
    "cfg",
    [
        GanConfig(),
        GanConfig(image_size=28, channels=1, num_classes=0, g_width=8, d_width=8),
        GanConfig(image_size=16, channels=3, num_classes=3, g_width=8, d_width=8, class_names=["a", "b", "c"]),
    ],
)
def test_numpy_generator_matches_torch(cfg, tmp_path):
    torch = pytest.importorskip("torch")
    from aigc_chat.gan.model import Generator
    from aigc_chat.gan.npgen import generate

    torch.manual_seed(0)
    g = Generator(cfg)
    # non-trivial BatchNorm statistics and affine terms, as after training
    for m in g.modules():
        if isinstance(m, torch.nn.BatchNorm2d):
            m.running_mean.uniform_(-0.5, 0.5)
            m.running_var.uniform_(0.5, 2.0)
            m.weight.data.uniform_(0.5, 1.5)
            m.bias.data.uniform_(-0.2, 0.2)
    g.eval()
    z = torch.randn(5, cfg.z_dim)
    y = torch.arange(5) % cfg.num_classes if cfg.conditional else None
    with torch.no_grad():
        ref = ((g(z, y) + 1) / 2).numpy()
    state = {k: v.numpy() for k, v in g.state_dict().items() if not k.endswith("num_batches_tracked")}
    p = save_checkpoint(tmp_path / "g.safetensors", cfg, {"g": state})
    ck = load_checkpoint(p)
    out = generate(ck.config, ck.generator, z.numpy(), None if y is None else y.numpy())
    assert out.shape == ref.shape == (5, cfg.channels, cfg.image_size, cfg.image_size)
    np.testing.assert_allclose(out, ref, atol=2e-5)


@pytest.mark.parametrize("spec, name", [
    ("digits", "gan-digits.safetensors"),
    ("folder:/pics/shapes", "gan-folder-shapes.safetensors"),
    ("folder:/pics/shapes/", "gan-folder-shapes.safetensors"),
    ("mnist:~/data/fashion", "gan-mnist-fashion.safetensors"),
])
def test_trained_checkpoints_are_named_for_their_data(tmp_path, spec, name):
    assert checkpoint_path(spec, tmp_path) == tmp_path / name
    assert checkpoint_path(spec, str(tmp_path)) == tmp_path / name


def test_without_a_folder_checkpoints_go_to_the_data_dir(isolated_dirs):
    assert checkpoint_path("digits") == isolated_dirs["data"] / "gan" / "gan-digits.safetensors"
