"""The GAN widget and screen, driven headless through Textual's pilot."""

from __future__ import annotations

import asyncio
import time

import numpy as np
import pytest
from textual.app import App, ComposeResult

from aigc_chat.gan.render import UPPER_HALF
from aigc_chat.gan.sampler import sample
from aigc_chat.tui.gan_screen import GanScreen
from aigc_chat.tui.gan_widgets import GanSamplesView


class _WidgetApp(App):
    def __init__(self, **kw) -> None:
        super().__init__()
        self.kw = kw

    def compose(self) -> ComposeResult:
        yield GanSamplesView(**self.kw)


def _text(view: GanSamplesView) -> str:
    return "\n".join(view.art.chars)


def test_samples_view_is_reproducible_and_fits():
    async def go():
        app = _WidgetApp(checkpoint=None, seed=11, label=4, n=12, mode="halfblock")
        async with app.run_test(size=(60, 40)) as pilot:
            await pilot.pause()
            view = app.query_one(GanSamplesView)
            assert view.mode == "truecolor" and view.seed == 11
            assert view.art.cols <= 60 and UPPER_HALF in _text(view)
            # the same checkpoint, seed and label draw the same pixels as the CLI does
            assert np.array_equal(view.images, sample(None, n=12, seed=11, label=4).images)
            first = view.art.cols
            await pilot.resize_terminal(30, 40)
            await pilot.pause()
            assert view.art.cols <= 30 < first
            view.set_mode("ascii")
            assert UPPER_HALF not in _text(view)

    asyncio.run(go())


class _ScreenApp(App):
    def __init__(self, screen: GanScreen) -> None:
        super().__init__()
        self._screen = screen

    def on_mount(self) -> None:
        self.push_screen(self._screen)


def test_screen_new_samples_and_label_picker():
    async def go():
        screen = GanScreen(n=10)
        app = _ScreenApp(screen)
        async with app.run_test(size=(100, 40)) as pilot:
            await pilot.pause()
            view = screen.view
            seed = view.seed
            await pilot.press("n")
            await pilot.pause()
            assert view.seed != seed
            screen.query_one("#gan-label").value = "7"
            await pilot.pause()
            assert screen.label == "7" and view.samples.labels.tolist() == [7] * 10
            screen.query_one("#gan-mode").value = "braille"
            await pilot.pause()
            assert view.mode == "braille" and all(0x2800 <= ord(c) <= 0x28FF for c in _text(view).replace("\n", ""))
            await pilot.press("escape")
            await pilot.pause()
            assert app.screen is not screen

    asyncio.run(go())


async def _wait(pilot, cond, timeout: float = 240.0) -> None:
    end = time.monotonic() + timeout
    while not cond():
        if time.monotonic() > end:
            raise AssertionError("timed out")
        await pilot.pause(0.2)


@pytest.mark.slow
def test_screen_trains_live_and_can_cancel(tmp_path):
    pytest.importorskip("torch")

    async def go():
        screen = GanScreen(n=10, train_epochs=1, out_dir=tmp_path)
        app = _ScreenApp(screen)
        async with app.run_test(size=(100, 50)) as pilot:
            await pilot.pause()
            await pilot.press("t")
            await _wait(pilot, lambda: screen.trained_path is not None or screen.train_error)
            assert screen.train_error is None
            assert screen.trained_path.is_file() and screen.checkpoint == str(screen.trained_path)
            assert len(screen.d_losses) > 0 and np.isfinite(screen.g_losses).all()
            assert screen.view.samples is not None  # redrawn from the new checkpoint
            # a long run, cancelled: stops early and still saves
            screen.train_epochs = 500
            screen.trained_path = None
            await pilot.press("t")
            await _wait(pilot, lambda: len(screen.d_losses) > 5)
            await pilot.press("t")
            await _wait(pilot, lambda: screen.trained_path is not None)
            status = str(screen.query_one("#gan-train-status").render())
            assert "cancelled" in status

    asyncio.run(go())


def test_screen_names_its_checkpoint_by_the_shared_rule(tmp_path, isolated_dirs):
    """The GAN screen saves where `gan train` would (gan.checkpoint.checkpoint_path): named
    for the data set, in its folder or else the data dir."""
    pytest.importorskip("torch")
    from aigc_chat.gan.checkpoint import checkpoint_path
    from tests.test_gan_data import write_tiny_mnist

    spec = f"mnist:{write_tiny_mnist(tmp_path / 'mymnist')}"

    async def train(screen: GanScreen) -> None:
        app = _ScreenApp(screen)
        async with app.run_test(size=(100, 50)) as pilot:
            await pilot.pause()
            await pilot.press("t")
            await _wait(pilot, lambda: screen.trained_path is not None or screen.train_error, 120)
            assert screen.train_error is None

    out = tmp_path / "runs"
    screen = GanScreen(n=10, train_data=spec, train_epochs=0, out_dir=out)
    asyncio.run(train(screen))
    assert screen.trained_path == checkpoint_path(spec, out) == out / "gan-mnist-mymnist.safetensors"
    assert screen.trained_path.is_file()
    screen = GanScreen(n=10, train_epochs=0)
    asyncio.run(train(screen))
    assert screen.trained_path == checkpoint_path("digits") == isolated_dirs["data"] / "gan" / "gan-digits.safetensors"
    assert screen.trained_path.is_file()


def test_moved_shipped_checkpoint_still_renders(tmp_path):
    """A message saved with the shipped file's old absolute path draws the same after a reinstall."""
    from aigc_chat.gan import DEFAULT_CHECKPOINT

    async def go():
        old_path = str(tmp_path / "old-venv" / DEFAULT_CHECKPOINT.name)
        app = _WidgetApp(checkpoint=old_path, seed=3, label=None, n=10, mode="auto")
        async with app.run_test(size=(100, 30)) as pilot:
            await pilot.pause()
            view = app.query_one(GanSamplesView)
            assert np.array_equal(view.images, sample(None, n=10, seed=3).images)

    asyncio.run(go())


def test_screen_with_bad_checkpoint_falls_back(tmp_path):
    bad = tmp_path / "bad.safetensors"
    bad.write_bytes(b"not a checkpoint at all")

    async def go():
        screen = GanScreen(checkpoint=str(bad), n=5)
        app = _ScreenApp(screen)
        async with app.run_test(size=(100, 40)) as pilot:
            await pilot.pause()
            assert screen.checkpoint is None and screen.view.images.shape == (5, 8, 8)

    asyncio.run(go())
