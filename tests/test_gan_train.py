"""Training for a few steps: checkpoints, resume, Ctrl-C, other data, eval on them."""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
from pathlib import Path

import numpy as np
import pytest

from aigc_chat.gan.checkpoint import load_checkpoint
from aigc_chat.gan.data import load_data
from aigc_chat.gan.sampler import sample
from tests.waiting import poll_until

torch = pytest.importorskip("torch")
pytestmark = pytest.mark.slow


def _cli() -> list[str]:
    script = Path(sys.executable).with_name("aigc-chat")
    return [str(script), "gan"] if script.exists() else [sys.executable, "-m", "aigc_chat.gan"]


def _env(tmp_path: Path) -> dict:
    env = dict(os.environ)
    env.update(AIGC_CHAT_DATA_DIR=str(tmp_path / "data"), COLUMNS="100", TERM="xterm-256color")
    env.pop("NO_COLOR", None)
    return env


def test_trainer_steps_change_weights_and_checkpoint_round_trips(tmp_path):
    from aigc_chat.gan.train import Trainer, TrainOptions

    data = load_data("digits")
    data = data.subset(np.arange(256))
    torch.set_num_threads(2)
    t = Trainer(data, TrainOptions(epochs=1, batch_size=64, seed=0, threads=1))
    before = {k: v.clone() for k, v in t.G.state_dict().items()}
    seen = []
    previews = []
    threads_seen = []
    assert t.run(on_step=lambda st: (seen.append(st), threads_seen.append(torch.get_num_threads())),
                 on_epoch=lambda e, imgs: previews.append(imgs)) is True
    assert set(threads_seen) == {1} and torch.get_num_threads() == 2  # the process setting comes back
    assert len(seen) == 4 and all(np.isfinite([s.d_loss, s.g_loss]).all() for s in seen)
    assert previews and previews[0].shape == (20, 1, 8, 8)
    assert any(not torch.equal(before[k], v) for k, v in t.G.state_dict().items())
    path = t.save(tmp_path / "ck.safetensors")
    ck = load_checkpoint(path)
    assert ck.resumable and ck.training["epoch"] == 1 and ck.training["step"] == 4
    # what numpy samples from the file is what the averaged torch generator makes
    s = sample(ck, n=6, seed=3)
    z = np.random.Generator(np.random.PCG64(3)).standard_normal((6, 32), dtype=np.float32)
    with torch.no_grad():
        ref = (t.G_ema(torch.from_numpy(z), torch.arange(6) % 10) + 1) / 2
    np.testing.assert_allclose(s.images, ref[:, 0].numpy(), atol=1e-4)


def test_stop_predicate_ends_between_steps():
    from aigc_chat.gan.train import Trainer, TrainOptions

    data = load_data("digits").subset(np.arange(256))
    t = Trainer(data, TrainOptions(epochs=5, batch_size=32, seed=0, threads=1))
    calls = []
    assert t.run(on_step=calls.append, should_stop=lambda: len(calls) >= 3) is False
    assert t.step == 3 and t.epoch == 0


def test_train_then_resume_via_cli(tmp_path):
    out = tmp_path / "runs"
    r = subprocess.run([*_cli(), "train", "--epochs", "1", "--batch-size", "128", "--out", str(out), "--mode", "ascii"],
                       capture_output=True, text=True, env=_env(tmp_path), timeout=600)
    assert r.returncode == 0, r.stderr
    ck_path = out / "gan-digits.safetensors"
    assert "saved" in r.stdout and str(ck_path) in r.stdout
    ck = load_checkpoint(ck_path)
    assert ck.training["epoch"] == 1 and ck.training["step"] == 9
    r = subprocess.run([*_cli(), "train", "--resume", str(ck_path), "--epochs", "2", "--batch-size", "128",
                        "--no-preview"], capture_output=True, text=True, env=_env(tmp_path), timeout=600)
    assert r.returncode == 0, r.stderr
    ck2 = load_checkpoint(ck_path)  # written back to the file it resumed from
    assert ck2.training["epoch"] == 2 and ck2.training["step"] == 18
    assert len(ck2.training["d_loss"]) == 2 and ck2.training["d_loss"][0] == ck.training["d_loss"][0]


def test_default_out_dir_is_under_data_dir(tmp_path):
    r = subprocess.run([*_cli(), "train", "--epochs", "0", "--no-preview"], capture_output=True, text=True,
                       env=_env(tmp_path), timeout=600)
    assert r.returncode == 0, r.stderr
    assert (tmp_path / "data" / "gan" / "gan-digits.safetensors").is_file()


def test_ctrl_c_saves_and_exits_130(tmp_path):
    out = tmp_path / "runs"
    # Rich prints its live step counter into the pipe when told the pipe is a terminal: the
    # test waits for training to have taken a step (not for a duration), then presses Ctrl-C
    env = {**_env(tmp_path), "TTY_COMPATIBLE": "1", "TTY_INTERACTIVE": "1"}
    proc = subprocess.Popen([*_cli(), "train", "--epochs", "500", "--out", str(out), "--no-preview"],
                            stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env)
    first = proc.stdout.readline()  # printed once the Ctrl-C handler is in place
    assert "training on digits" in first, proc.stderr.read() if proc.poll() is not None else first
    seen: list[str] = []
    errors: list[str] = []
    readers = [threading.Thread(target=lambda f=f, out=out: out.extend(iter(lambda: f.read(256), "")), daemon=True)
               for f, out in ((proc.stdout, seen), (proc.stderr, errors))]
    for r in readers:
        r.start()
    stepped = re.compile(r"\b([1-9]\d*)/\d+")
    assert poll_until(lambda: stepped.search("".join(seen)) or proc.poll() is not None, 120), "no step was taken"
    assert proc.poll() is None, "".join(errors)
    proc.send_signal(signal.SIGINT)
    proc.wait(timeout=120)
    for r in readers:
        r.join(timeout=10)
    err = "".join(errors)
    assert proc.returncode == 130, err
    assert "interrupted" in err and "Traceback" not in err
    ck = load_checkpoint(out / "gan-digits.safetensors")
    assert ck.resumable and ck.training["step"] > 0 and ck.training["epoch"] < 500


def _folder(tmp_path: Path) -> Path:
    PIL = pytest.importorskip("PIL.Image")
    rng = np.random.default_rng(0)
    root = tmp_path / "shapes"
    for cls, colour in (("red", (220, 30, 30)), ("blue", (30, 30, 220))):
        (root / cls).mkdir(parents=True)
        for i in range(24):
            img = np.zeros((20, 20, 3), np.uint8)
            y, x = rng.integers(2, 10, 2)
            img[y : y + 8, x : x + 8] = colour
            PIL.fromarray(img).save(root / cls / f"{i}.png")
    return root


def test_folder_data_trains_samples_and_evaluates(tmp_path):
    root = _folder(tmp_path)
    out = tmp_path / "runs"
    env = _env(tmp_path)
    r = subprocess.run([*_cli(), "train", "--data", f"folder:{root}", "--size", "16", "--epochs", "2",
                        "--batch-size", "16", "--out", str(out), "--mode", "truecolor"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    ck_path = out / "gan-folder-shapes.safetensors"
    ck = load_checkpoint(ck_path)
    assert (ck.config.image_size, ck.config.channels, ck.config.class_names) == (16, 3, ["blue", "red"])
    npy = tmp_path / "s.npy"
    r = subprocess.run([*_cli(), "sample", "--checkpoint", str(ck_path), "--label", "red", "--n", "4",
                        "--save-array", str(npy), "--mode", "truecolor"],
                       capture_output=True, text=True, env=env, timeout=120)
    assert r.returncode == 0, r.stderr
    assert np.load(npy).shape == (4, 16, 16, 3)
    r = subprocess.run([*_cli(), "eval", "--checkpoint", str(ck_path), "--json"], capture_output=True, text=True,
                       env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    rep = json.loads(r.stdout)
    assert rep["fd_noise"] > rep["fd_real"] >= 0 and 0.0 <= rep["conditional_accuracy"] <= 1.0


def test_resume_with_mismatched_data_is_usage_error(tmp_path):
    root = _folder(tmp_path)
    out = tmp_path / "runs"
    env = _env(tmp_path)
    r = subprocess.run([*_cli(), "train", "--epochs", "0", "--out", str(out), "--no-preview"],
                       capture_output=True, text=True, env=env, timeout=600)
    assert r.returncode == 0, r.stderr
    r = subprocess.run([*_cli(), "train", "--resume", str(out / "gan-digits.safetensors"), "--data",
                        f"folder:{root}", "--size", "16", "--epochs", "1"], capture_output=True, text=True, env=env,
                       timeout=600)
    assert r.returncode == 2 and "checkpoint is for 8px" in r.stderr and "Traceback" not in r.stderr


def test_resume_from_generator_only_file_is_usage_error(tmp_path):
    from aigc_chat.gan import DEFAULT_CHECKPOINT

    r = subprocess.run([*_cli(), "train", "--resume", str(DEFAULT_CHECKPOINT), "--epochs", "1"],
                       capture_output=True, text=True, env=_env(tmp_path), timeout=600)
    assert r.returncode == 2 and "no training state" in r.stderr
