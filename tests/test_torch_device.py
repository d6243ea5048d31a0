"""One device rule for the torch chat backend and GAN training (aigc_chat.torch_device),
AIGC_CHAT_TORCH_DEVICE included. CPU-only here; CUDA paths are checked where CUDA is absent."""

from __future__ import annotations

import os
import subprocess
import sys
from pathlib import Path

import pytest

from aigc_chat.errors import UsageError
from aigc_chat.torch_device import ENV, check_device, pick_device

torch = pytest.importorskip("torch")


def test_settings_are_checked_without_torch() -> None:
    for ok in ("auto", "cpu", "cuda", "cuda:0", "cuda:12", "mps"):
        assert check_device(ok) is None, ok
    for bad in ("gpu", "cuda:", "cuda:x", "cuda:-1", "CPU", "", 3, None):
        assert check_device(bad), bad


def test_the_environment_overrides_every_setting(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "cpu")
    assert pick_device("auto") == torch.device("cpu")
    assert pick_device("cuda") == torch.device("cpu")  # even a device this machine lacks
    monkeypatch.delenv(ENV)
    assert pick_device("cpu") == torch.device("cpu")


def test_a_bad_environment_value_is_one_clear_error(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv(ENV, "gpu")
    with pytest.raises(UsageError) as err:
        pick_device("cpu")
    msg = str(err.value)
    assert msg == f"torch device 'gpu' (from {ENV}): must be \"auto\", \"cpu\", \"cuda\", \"cuda:N\" or \"mps\""


@pytest.mark.skipif(torch.cuda.is_available(), reason="checks the error on a machine without CUDA")
def test_cuda_without_cuda_names_the_problem(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv(ENV, raising=False)
    with pytest.raises(UsageError, match="no usable CUDA"):
        pick_device("cuda:0")
    assert pick_device("auto").type in ("cpu", "mps")


def test_gan_training_and_the_chat_backend_share_the_rule(monkeypatch: pytest.MonkeyPatch) -> None:
    from aigc_chat.backends.torch_gpt import device as backend_device
    from aigc_chat.gan import train

    assert train.pick_device is pick_device and backend_device.pick_device is pick_device
    monkeypatch.setenv(ENV, "cpu")
    from aigc_chat.gan.data import load_data

    trainer = train.Trainer(load_data("digits"), train.TrainOptions(epochs=0, device="auto"))
    assert trainer.device == torch.device("cpu")
    monkeypatch.setenv(ENV, "gpu")
    with pytest.raises(UsageError, match=ENV):
        train.Trainer(load_data("digits"), train.TrainOptions(epochs=0))


def _gan_train(tmp_path: Path, env_value: str, *args: str) -> subprocess.CompletedProcess:
    env = dict(os.environ, AIGC_CHAT_DATA_DIR=str(tmp_path / "data"), **{ENV: env_value})
    return subprocess.run([sys.executable, "-m", "aigc_chat.gan", "train", "--epochs", "0", "--no-preview",
                           "--out", str(tmp_path / "out"), *args],
                          capture_output=True, text=True, env=env, timeout=300)


@pytest.mark.slow  # the train command
def test_gan_train_command_honours_the_environment(tmp_path: Path) -> None:
    r = _gan_train(tmp_path, "cpu", "--device", "auto")
    assert r.returncode == 0, r.stderr
    assert "device cpu" in r.stdout
    r = _gan_train(tmp_path, "gpu")
    assert r.returncode == 2 and "Traceback" not in r.stderr
    assert r.stderr.strip().splitlines() == [
        f"aigc-chat gan: error: torch device 'gpu' (from {ENV}): "
        'must be "auto", "cpu", "cuda", "cuda:N" or "mps"'
    ]


def test_torch_backend_load_honours_the_environment(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from aigc_chat.backends.torch_gpt.backend import TorchBackend
    from tests.tiny_gguf import write_tiny_gguf

    model = write_tiny_gguf(tmp_path / "tiny.gguf", "llama", seed=1)
    monkeypatch.setenv(ENV, "gpu")
    with pytest.raises(UsageError, match=f"from {ENV}"):
        TorchBackend(str(model), {"device": "cpu"}).load()
    monkeypatch.setenv(ENV, "cpu")
    b = TorchBackend(str(model), {"device": "cuda" if not torch.cuda.is_available() else "cpu", "n_ctx": 64})
    b.load()
    try:
        assert b.info().device.startswith("cpu")
    finally:
        b.close()
