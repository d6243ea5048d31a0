"""`aigc-chat gan sample` and the error policy, through the installed console script."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import numpy as np
import pytest

from aigc_chat.gan.sampler import sample

ANSI = re.compile(r"\x1b\[[0-9;]*m")


def _exe() -> list[str]:
    script = Path(sys.executable).with_name("aigc-chat")
    if script.exists():
        return [str(script), "gan"]
    found = shutil.which("aigc-chat")
    return [found, "gan"] if found else [sys.executable, "-m", "aigc_chat.gan"]


def run(*args: str, env: dict | None = None, **kw) -> subprocess.CompletedProcess:
    base = {k: v for k, v in os.environ.items() if k not in ("NO_COLOR", "COLORTERM", "TERM", "COLUMNS")}
    base.update(env or {})
    return subprocess.run([*_exe(), *args], capture_output=True, text=True, env=base, timeout=120, **kw)


def test_same_seed_same_images_and_new_seed_new_images():
    a = run("--n", "10", "--seed", "7", "--mode", "truecolor", "--width", "100")
    b = run("sample", "--n", "10", "--seed", "7", "--mode", "truecolor", "--width", "100")
    c = run("--n", "10", "--seed", "8", "--mode", "truecolor", "--width", "100")
    assert a.returncode == b.returncode == c.returncode == 0, a.stderr
    assert a.stdout == b.stdout
    assert a.stdout != c.stdout
    assert "seed 7" in a.stdout and "\x1b[38;2;" in a.stdout


def test_random_seed_is_printed_and_reproduces():
    first = run("--n", "4", "--mode", "ascii")
    seed = re.search(r"seed (\d+)", first.stdout).group(1)
    again = run("--n", "4", "--mode", "ascii", "--seed", seed)
    assert first.stdout == again.stdout


@pytest.mark.parametrize(
    "env, marker, absent",
    [
        ({"COLORTERM": "truecolor", "TERM": "xterm-256color"}, "\x1b[38;2;", None),
        ({"TERM": "xterm-256color"}, "\x1b[38;5;", "38;2;"),
        ({"TERM": "xterm"}, "\x1b[", "38;5;"),
        ({"NO_COLOR": "1", "COLORTERM": "truecolor"}, "@", "\x1b["),
    ],
)
def test_auto_mode_from_environment(env, marker, absent):
    r = run("--n", "5", "--seed", "1", env=env)
    assert r.returncode == 0, r.stderr
    assert marker in r.stdout
    if absent:
        assert absent not in r.stdout


@pytest.mark.parametrize("mode", ["truecolor", "256", "16", "ascii", "braille"])
@pytest.mark.parametrize("columns", ["40", "100"])
def test_grid_fits_terminal_width(mode, columns):
    r = run("--n", "30", "--seed", "2", "--mode", mode, env={"COLUMNS": columns})
    assert r.returncode == 0, r.stderr
    art_lines = r.stdout.splitlines()[:-1]  # the last line is the caption
    assert len(art_lines) >= 4
    assert max(len(ANSI.sub("", line)) for line in art_lines) <= int(columns)


def test_save_array_and_png(tmp_path):
    PIL = pytest.importorskip("PIL.Image")
    npy, png = tmp_path / "s.npy", tmp_path / "grid.png"
    r = run("--n", "12", "--seed", "5", "--label", "3", "--mode", "ascii", "--save", str(png), "--save-array", str(npy))
    assert r.returncode == 0, r.stderr
    arr = np.load(npy)
    assert arr.shape == (12, 8, 8) and arr.dtype == np.float32
    assert arr.min() >= 0.0 and arr.max() <= 1.0
    np.testing.assert_allclose(arr, sample(None, n=12, seed=5, label="3").images, atol=1e-6)
    with PIL.open(png) as im:
        assert im.format == "PNG" and im.mode == "RGB"
        w, h = im.size
    # 12 tiles of 64 px in rows of 10 with one-pixel gaps: 2 rows
    assert (w, h) == (10 * 64 + 9, 2 * 64 + 2)


def test_palette_changes_colours():
    grey = run("--n", "3", "--seed", "1", "--mode", "truecolor", "--palette", "grey")
    amber = run("--n", "3", "--seed", "1", "--mode", "truecolor", "--palette", "amber")
    assert grey.returncode == amber.returncode == 0
    def triples(out):
        return {tuple(map(int, t)) for t in re.findall(r"[34]8;2;(\d+);(\d+);(\d+)", out)}
    assert all(r == g == b for r, g, b in triples(grey.stdout) if (r, g, b) != (31, 31, 31))
    warm = [(r, g, b) for r, g, b in triples(amber.stdout) if r > g > b]
    assert len(warm) > 10  # amber: red above green above blue


ONE_LINE = re.compile(r"aigc-chat gan(?: (sample|train|eval))?: error: ")


def _assert_one_line_error(r, code, text):
    """One line naming the command; a command-line mistake also names the help to read."""
    assert r.returncode == code, (r.stdout, r.stderr)
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1, r.stderr
    m = ONE_LINE.match(lines[0])
    assert m and text in lines[0], lines[0]
    if m.group(1):  # the subcommand's parser found it: its help explains the option
        assert lines[0].endswith(f"(see aigc-chat gan {m.group(1)} --help)"), lines[0]
    assert "Traceback" not in r.stderr


@pytest.mark.parametrize(
    "args, text",
    [
        (["--label", "11"], "unknown label"),
        (["--label", "cat"], "unknown label"),
        (["--n", "0"], "expected an integer from 1 to 10000, got '0'"),
        (["--n", "x"], "expected an integer from 1 to 10000, got 'x'"),
        (["--n", "10001"], "expected an integer from 1 to 10000, got '10001'"),
        (["--seed", "-3"], "expected a non-negative integer, got '-3'"),
        (["--mode", "sixel"], "invalid choice"),
        (["--palette", "rainbow"], "invalid choice"),
        (["--bogus"], "unrecognized"),
        (["--save", "out.jpg"], ".png"),
        (["--save-array", "out.txt"], ".npy"),
        (["--checkpoint", "/nonexistent/g.safetensors"], "not found"),
        (["train", "--data", "imagenet"], "unknown data"),
        (["train", "--data", "digits", "--size", "16"], "8x8"),
    ],
)
def test_bad_input_is_one_line_and_exit_2(args, text):
    _assert_one_line_error(run(*args), 2, text)


def test_foreign_checkpoints_are_rejected(tmp_path):
    from aigc_chat.gan.safetensors_io import write_safetensors

    junk = tmp_path / "junk.safetensors"
    junk.write_bytes(os.urandom(256))
    _assert_one_line_error(run("--checkpoint", str(junk)), 2, "not a safetensors")
    other = tmp_path / "other.safetensors"
    write_safetensors(other, {"w": np.zeros(4, np.float32)}, {})
    _assert_one_line_error(run("--checkpoint", str(other)), 2, "not an aigc-chat GAN checkpoint")


def test_unwritable_output_is_runtime_error(tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    r = run("--n", "2", "--mode", "ascii", "--save-array", str(blocker / "sub" / "a.npy"))
    _assert_one_line_error(r, 1, "cannot write")


def test_sample_does_not_import_torch_or_sklearn():
    code = (
        "import sys\n"
        "from aigc_chat.gan.cli import main\n"
        "rc = main(['--n', '4', '--seed', '1', '--mode', 'ascii'])\n"
        "heavy = [m for m in ('torch', 'sklearn', 'textual') if m in sys.modules]\n"
        "print('HEAVY', heavy, rc)\n"
    )
    r = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert "HEAVY [] 0" in r.stdout, r.stdout + r.stderr


def test_help_exits_zero():
    r = run("--help")
    assert r.returncode == 0 and "sample" in r.stdout and "train" in r.stdout
    r = run("sample", "--help")
    assert r.returncode == 0 and "--save-array" in r.stdout


@pytest.mark.slow  # trains
def test_train_names_its_checkpoint_by_the_shared_rule(tmp_path, isolated_dirs):
    """`gan train` saves where the TUI's GAN screen would (gan.checkpoint.checkpoint_path),
    named for the data set, in --out or else the data dir."""
    pytest.importorskip("torch")
    from aigc_chat.gan.checkpoint import checkpoint_path, load_checkpoint
    from tests.test_gan_data import write_tiny_mnist

    spec = f"mnist:{write_tiny_mnist(tmp_path / 'mymnist')}/"
    out = tmp_path / "runs"
    r = run("train", "--data", spec, "--epochs", "0", "--no-preview", "--out", str(out))
    assert r.returncode == 0, r.stderr
    assert checkpoint_path(spec, out) == out / "gan-mnist-mymnist.safetensors"
    assert load_checkpoint(out / "gan-mnist-mymnist.safetensors").config.image_size == 8
    r = run("train", "--data", spec, "--epochs", "0", "--no-preview")
    assert r.returncode == 0, r.stderr
    assert checkpoint_path(spec).is_file() and checkpoint_path(spec).parent == isolated_dirs["data"] / "gan"
