"""Quality of the shipped digits generator, judged by the shipped reference classifier,
and the metric code those figures rest on."""

from __future__ import annotations

import numpy as np
import pytest

from aigc_chat.gan.metrics import frechet_distance, psnr


def test_frechet_distance_of_known_gaussians():
    rng = np.random.default_rng(0)
    a = rng.standard_normal((20000, 3))
    b = rng.standard_normal((20000, 3)) + np.array([1.0, 2.0, 0.0])
    assert frechet_distance(a, a) == pytest.approx(0.0, abs=1e-6)
    assert frechet_distance(a, b) == pytest.approx(5.0, rel=0.03)  # |mu diff|^2, same covariance
    c = rng.standard_normal((20000, 3)) * 2.0  # covariance 4I: tr(I + 4I - 2*2I) = 3
    assert frechet_distance(a, c) == pytest.approx(3.0, rel=0.05)
    with pytest.raises(ValueError):
        frechet_distance(a, a[:, :2])


def test_psnr():
    a = np.zeros((4, 4), np.uint8)
    assert psnr(a, a) == float("inf")
    b = a.copy()
    b[0, 0] = 255  # mse = 255^2 / 16
    assert psnr(a, b) == pytest.approx(10 * np.log10(16), rel=1e-9)


@pytest.mark.slow
def test_shipped_generator_meets_quality_targets():
    pytest.importorskip("torch")
    pytest.importorskip("sklearn")
    from aigc_chat.gan.evaluate import evaluate
    from aigc_chat.gan.sampler import open_checkpoint

    rep = evaluate(open_checkpoint(None))
    assert rep.classifier_accuracy >= 0.95  # the judge itself is trustworthy
    assert rep.conditional_accuracy >= 0.90
    assert min(rep.per_class_accuracy) >= 0.6  # no class is missing altogether
    assert rep.fd_generated <= 3.0 * rep.fd_real
    assert rep.fd_generated * 20 < rep.fd_noise


@pytest.mark.slow
def test_eval_cli_prints_figures_with_baselines():
    import json
    import subprocess
    import sys
    from pathlib import Path

    pytest.importorskip("torch")
    exe = Path(sys.executable).with_name("aigc-chat")
    cmd = [str(exe), "gan"] if exe.exists() else [sys.executable, "-m", "aigc_chat.gan"]
    r = subprocess.run([*cmd, "eval"], capture_output=True, text=True, timeout=300)
    assert r.returncode == 0, r.stderr
    for needle in ("FD generated", "FD real vs real", "FD noise", "conditional accuracy", "judge accuracy"):
        assert needle in r.stdout
    r = subprocess.run([*cmd, "eval", "--json"], capture_output=True, text=True, timeout=300)
    rep = json.loads(r.stdout)
    assert rep["fd_noise"] > rep["fd_generated"] > 0 and rep["n_generated"] == 1197 and rep["n_held_out"] == 600
