"""Benchmarks for the GAN command; the figures in docs/gan.md come from this script.

    python bench/bench_gan.py sample      # sample + render 100 digits; CLI start-up
    python bench/bench_gan.py fidelity    # PSNR of each terminal mode (cells expanded back)
    python bench/bench_gan.py train       # train from scratch to the quality targets
    python bench/bench_gan.py all         # all three

`train --write-shipped` also writes the generator that ships in the package (fp16) and
`classifier --write-shipped` retrains the reference classifier that ships beside it.
Timings are wall-clock on whatever machine runs this; report them with its load.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import time
from pathlib import Path

import numpy as np

ROOT = Path(__file__).resolve().parent.parent


def bench_sample(repeats: int = 30) -> dict:
    from aigc_chat.gan.render import render_grid
    from aigc_chat.gan.sampler import open_checkpoint, sample

    ck = open_checkpoint(None)  # loaded once, as the TUI keeps it; the CLI figure below includes loading
    times, render_times = [], []
    for i in range(repeats):
        t0 = time.perf_counter()
        s = sample(ck, n=100, seed=i)
        t1 = time.perf_counter()
        art = render_grid(s.images, mode="truecolor", width=200, per_row=10)
        text = art.to_ansi()
        t2 = time.perf_counter()
        times.append(t2 - t0)
        render_times.append(t2 - t1)
    assert len(text) > 0
    exe = Path(sys.executable).with_name("aigc-chat")
    cmd = [str(exe), "gan"] if exe.exists() else [sys.executable, "-m", "aigc_chat.gan"]
    env = dict(os.environ, COLORTERM="truecolor", COLUMNS="200")
    cli = []
    for i in range(5):
        t0 = time.perf_counter()
        subprocess.run([*cmd, "--n", "100", "--seed", str(i)], env=env, check=True, stdout=subprocess.DEVNULL)
        cli.append(time.perf_counter() - t0)
    return {
        "sample_and_render_100_ms_median": round(statistics.median(times) * 1000, 2),
        "sample_and_render_100_ms_max": round(max(times) * 1000, 2),
        "render_only_100_ms_median": round(statistics.median(render_times) * 1000, 2),
        "cli_gan_sample_100_s_median": round(statistics.median(cli), 3),
    }


def bench_fidelity() -> dict:
    from aigc_chat.gan.render import MODES, fidelity_psnr, tile_grid, to_hwc
    from aigc_chat.gan.sampler import sample

    s = sample(None, n=100, seed=0)
    out: dict = {}
    for mode in MODES:
        grid = tile_grid(to_hwc(s.images), mode, scale=2, width=200, per_row=10)
        out[f"digits_grid_{mode}_psnr_db"] = _db(fidelity_psnr(grid, mode, "grey"))
    try:
        from PIL import Image
        from sklearn.datasets import load_sample_image

        photo = Image.fromarray(load_sample_image("china.jpg")).resize((160, 120), Image.Resampling.LANCZOS)
        img = np.asarray(photo, dtype=np.float32) / 255.0
        for mode in MODES:
            out[f"photo_160x120_{mode}_psnr_db"] = _db(fidelity_psnr(img, mode))
    except ImportError as err:
        out["photo"] = f"skipped ({err})"
    return out


def _db(v: float) -> float | str:
    return "inf (exact)" if v == float("inf") else round(v, 2)


def bench_train(epochs: int, eval_every: int, write_shipped: bool, seed: int) -> dict:
    import torch

    from aigc_chat.gan import DEFAULT_CHECKPOINT
    from aigc_chat.gan.checkpoint import Checkpoint
    from aigc_chat.gan.data import load_data
    from aigc_chat.gan.evaluate import evaluate
    from aigc_chat.gan.train import Trainer, TrainOptions

    torch.set_num_threads(1)  # as `gan train` does; evaluation between rounds too
    data = load_data("digits")
    trainer = Trainer(data, TrainOptions(epochs=0, seed=seed))
    reached = None
    log = []
    for stop in range(eval_every, epochs + 1, eval_every):
        trainer.opts.epochs = stop
        trainer.run()
        ck = Checkpoint(trainer.config, {"g": trainer.generator_state()})
        rep = evaluate(ck)
        ok = (rep.conditional_accuracy or 0) >= 0.90 and rep.fd_ratio <= 3.0
        row = {"epoch": stop, "train_s": round(trainer.elapsed, 1), "acc": round(rep.conditional_accuracy or 0, 4),
               "fd": round(rep.fd_generated, 3), "fd_ratio": round(rep.fd_ratio, 2), "targets_met": ok}
        log.append(row)
        print(json.dumps(row), flush=True)
        if ok and reached is None:
            reached = row
    result = {"epochs": epochs, "train_s_total": round(trainer.elapsed, 1), "first_target_hit": reached,
              "final": log[-1] if log else None, "fd_real_baseline": round(rep.fd_real, 3),
              "fd_noise_baseline": round(rep.fd_noise, 2)}
    if write_shipped:
        trainer.save(DEFAULT_CHECKPOINT, full=False, half=True)
        result["wrote"] = str(DEFAULT_CHECKPOINT)
    return result


def bench_classifier(write_shipped: bool) -> dict:
    import torch

    from aigc_chat.gan import DIGITS_CLASSIFIER
    from aigc_chat.gan.classifier import save_classifier, train_classifier
    from aigc_chat.gan.data import digits_split

    torch.set_num_threads(1)
    train, held = digits_split()
    t0 = time.perf_counter()
    clf = train_classifier(train)
    secs = time.perf_counter() - t0
    _, pred = clf.embed(held.images)
    acc = float((pred == held.labels).mean())
    if write_shipped:
        save_classifier(clf, DIGITS_CLASSIFIER, {"held_out_accuracy": acc, "seed": 0})
    return {"classifier_train_s": round(secs, 1), "held_out_accuracy": round(acc, 4)}


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("what", choices=("sample", "fidelity", "train", "classifier", "all"), nargs="?", default="all")
    p.add_argument("--epochs", type=int, default=200)
    p.add_argument("--eval-every", type=int, default=25)
    p.add_argument("--seed", type=int, default=0)
    p.add_argument("--write-shipped", action="store_true")
    a = p.parse_args()
    load = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    results: dict = {"cpu_count": os.cpu_count(), "load_avg_1m_at_start": load}
    if a.what in ("sample", "all"):
        results["sample"] = bench_sample()
    if a.what in ("fidelity", "all"):
        results["fidelity"] = bench_fidelity()
    if a.what in ("train", "all"):
        results["train"] = bench_train(a.epochs, a.eval_every, a.write_shipped, a.seed)
    if a.what == "classifier":
        results["classifier"] = bench_classifier(a.write_shipped)
    results["load_avg_1m_at_end"] = os.getloadavg()[0] if hasattr(os, "getloadavg") else None
    print(json.dumps(results, indent=2))
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
