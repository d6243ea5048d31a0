"""The GAN screen: fresh samples, label/mode/palette pickers, and live training.

Training runs in a thread worker (torch releases the GIL in its kernels, so the UI stays
responsive); the loop polls the worker's cancelled flag between steps, so Cancel and
closing the screen both stop it cleanly and still save a resumable checkpoint. Self-contained:
it needs nothing from the rest of the TUI, and the app only has to push it.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import Screen
from textual.widgets import Button, Footer, Label, ProgressBar, Select, Sparkline, Static
from textual.worker import Worker, WorkerState, get_current_worker

from aigc_chat.errors import AigcError
from aigc_chat.gan.palettes import PALETTES
from aigc_chat.gan.render import MODES
from aigc_chat.gan.sampler import open_checkpoint
from aigc_chat.sanitize import one_line
from aigc_chat.tui.gan_widgets import GanSamplesView

ANY = "any"


class GanScreen(Screen):
    """Browse and train the GAN without leaving the chat app."""

    CSS_PATH = "gan_screen.tcss"
    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("n", "new_samples", "New samples"),
        Binding("t", "toggle_training", "Train / cancel"),
    ]

    def __init__(self, checkpoint: str | None = None, n: int = 30, train_data: str = "digits",
                 train_epochs: int = 200, out_dir: str | Path | None = None, **kwargs: Any) -> None:
        super().__init__(**kwargs)
        self.checkpoint = checkpoint
        self.n = n
        self.train_data = train_data
        self.train_epochs = train_epochs
        self.out_dir = Path(out_dir) if out_dir else None
        self.label: str | None = None
        self.d_losses: list[float] = []
        self.g_losses: list[float] = []
        self.trained_path: Path | None = None
        self.train_error: str | None = None
        self._worker: Worker | None = None

    # -- layout -------------------------------------------------------------------------
    def compose(self) -> ComposeResult:
        try:
            ck = open_checkpoint(self.checkpoint)
        except AigcError as err:  # a bad --checkpoint must not take the app down
            self.notify(f"{err}; showing the shipped generator", severity="error")
            self.checkpoint = None
            ck = open_checkpoint(None)
        labels = [("any label", ANY)] + [(f"label {name}", name) for name in ck.config.label_names()]
        yield Static("GAN", id="gan-title")
        with Horizontal(id="gan-controls"):
            yield Button("New samples", id="gan-new", variant="primary")
            yield Select(labels, value=ANY, allow_blank=False, id="gan-label")
            yield Select([(m, m) for m in MODES], value="truecolor", allow_blank=False, id="gan-mode")
            yield Select([(p, p) for p in PALETTES], value="grey", allow_blank=False, id="gan-palette")
            yield Button("Train", id="gan-train")
        with VerticalScroll(id="gan-body"):
            yield GanSamplesView(self.checkpoint, None, None, self.n, "truecolor", id="gan-samples")
            yield Static("", id="gan-caption")
            with Vertical(id="gan-train-panel"):
                yield Static("", id="gan-train-status")
                yield ProgressBar(id="gan-progress", show_eta=False)
                yield Label("discriminator loss", classes="gan-plot-label")
                yield Sparkline([], id="gan-d-loss")
                yield Label("generator loss", classes="gan-plot-label")
                yield Sparkline([], id="gan-g-loss")
        yield Footer()

    def on_mount(self) -> None:
        self._caption()

    @property
    def view(self) -> GanSamplesView:
        return self.query_one("#gan-samples", GanSamplesView)

    def _caption(self) -> None:
        view = self.view
        source = self.checkpoint or "shipped digits generator"
        what = f"label {self.label}" if self.label is not None else "every label in turn"
        seed = f"seed {view.seed}" if view.seed is not None else "live training preview"
        self.query_one("#gan-caption", Static).update(Content(one_line(f"{what} · {seed} · {source}")))

    # -- sampling -----------------------------------------------------------------------
    def action_new_samples(self) -> None:
        if self.training:
            self.notify("samples follow the training run until it ends", severity="warning")
            return
        try:
            self.view.draw(seed=None, label=self.label, n=self.n, checkpoint=self.checkpoint or "")
        except AigcError as err:
            self.notify(str(err), severity="error")
        self._caption()

    @on(Button.Pressed, "#gan-new")
    def _new_pressed(self) -> None:
        self.action_new_samples()

    @on(Select.Changed, "#gan-label")
    def _label_changed(self, event: Select.Changed) -> None:
        self.label = None if event.value == ANY else str(event.value)
        if not self.training:
            seed = self.view.seed
            try:
                self.view.draw(seed=seed, label=self.label, n=self.n, checkpoint=self.checkpoint or "")
            except AigcError as err:
                self.notify(str(err), severity="error")
            self._caption()

    @on(Select.Changed, "#gan-mode")
    def _mode_changed(self, event: Select.Changed) -> None:
        self.view.set_mode(str(event.value))

    @on(Select.Changed, "#gan-palette")
    def _palette_changed(self, event: Select.Changed) -> None:
        self.view.set_palette(str(event.value))

    # -- training -----------------------------------------------------------------------
    @property
    def training(self) -> bool:
        return self._worker is not None and self._worker.state in (WorkerState.PENDING, WorkerState.RUNNING)

    @on(Button.Pressed, "#gan-train")
    def _train_pressed(self) -> None:
        self.action_toggle_training()

    def action_toggle_training(self) -> None:
        if self.training:
            assert self._worker is not None
            self._worker.cancel()
            self.query_one("#gan-train-status", Static).update("cancelling: saving a checkpoint ...")
            return
        self.d_losses.clear()
        self.g_losses.clear()
        self.train_error = None
        self.query_one("#gan-train-panel").add_class("-active")
        self.query_one("#gan-train", Button).label = "Cancel"
        status = Content(one_line(f"starting: loading {self.train_data} and torch ..."))
        self.query_one("#gan-train-status", Static).update(status)
        self._worker = self._train()

    def action_close(self) -> None:
        if self.training and self._worker is not None:
            self._worker.cancel()
        self.dismiss()

    @work(thread=True, exclusive=True, group="gan-train", exit_on_error=False)
    def _train(self) -> Path | None:
        worker = get_current_worker()
        try:
            from aigc_chat.gan.checkpoint import checkpoint_path
            from aigc_chat.gan.data import load_data
            from aigc_chat.gan.train import Trainer, TrainOptions

            data = load_data(self.train_data)
            trainer = Trainer(data, TrainOptions(epochs=self.train_epochs))
            total = max(1, self.train_epochs * trainer.steps_per_epoch)
            cfg = trainer.config
            per_row = cfg.num_classes if 0 < cfg.num_classes <= 16 else None
            pending: list[tuple[float, float]] = []

            def on_step(st: Any) -> None:
                pending.append((st.d_loss, st.g_loss))
                if len(pending) >= max(1, st.steps_per_epoch // 4):
                    batch = list(pending)
                    pending.clear()
                    self.app.call_from_thread(self._on_steps, batch, trainer.step, total, st.epoch + 1)

            def on_epoch(epoch: int, images: np.ndarray) -> None:
                self.app.call_from_thread(self._on_epoch, images, per_row)

            finished = trainer.run(on_step=on_step, on_epoch=on_epoch, should_stop=lambda: worker.is_cancelled)
            path = trainer.save(checkpoint_path(self.train_data, self.out_dir))
            self.app.call_from_thread(self._on_trained, path, finished, trainer.epoch)
            return path
        except Exception as err:  # noqa: BLE001 - shown in the panel, never a crash of the app
            msg = str(err) if isinstance(err, AigcError) else f"{type(err).__name__}: {err}"
            try:
                self.app.call_from_thread(self._on_failed, msg)
            except RuntimeError:
                pass
            return None

    def _on_steps(self, batch: list[tuple[float, float]], step: int, total: int, epoch: int) -> None:
        for d, g in batch:
            self.d_losses.append(d)
            self.g_losses.append(g)
        self.query_one("#gan-progress", ProgressBar).update(total=total, progress=step)
        d, g = batch[-1]
        self.query_one("#gan-train-status", Static).update(
            f"training {self.train_data}: epoch {epoch}/{self.train_epochs} · D {d:.3f} · G {g:.3f}"
        )
        self.query_one("#gan-d-loss", Sparkline).data = self.d_losses[-400:]
        self.query_one("#gan-g-loss", Sparkline).data = self.g_losses[-400:]

    def _on_epoch(self, images: np.ndarray, per_row: int | None) -> None:
        self.view.show_images(images, per_row)
        self._caption()

    def _on_trained(self, path: Path, finished: bool, epoch: int) -> None:
        self.trained_path = path
        self.checkpoint = str(path)
        self.query_one("#gan-train", Button).label = "Train"
        state = "done" if finished else "cancelled"
        self.query_one("#gan-train-status", Static).update(Content(one_line(f"{state} at epoch {epoch}: saved {path}")))
        try:
            self.view.draw(seed=None, label=self.label, n=self.n, checkpoint=str(path))
        except AigcError as err:
            self.notify(str(err), severity="error")
        self._caption()
        self.notify(f"training {state}; checkpoint {path}")

    def _on_failed(self, message: str) -> None:
        self.train_error = message
        self.query_one("#gan-train", Button).label = "Train"
        self.query_one("#gan-train-status", Static).update(Content(one_line(f"training failed: {message}")))
        self.notify(message, severity="error")
