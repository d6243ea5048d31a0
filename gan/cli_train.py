"""`gan train`: a Rich progress bar with the losses, the sample grid redrawn every epoch,
and Ctrl-C that stops between two steps, saves a resumable checkpoint and exits 130.
"""

from __future__ import annotations

import argparse
import signal
import sys
import time
from pathlib import Path
from typing import Any, Literal

from rich.console import Console, Group
from rich.live import Live
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeElapsedColumn
from rich.text import Text

from aigc_chat.errors import UsageError
from aigc_chat.gan.render import render_grid, resolve_mode

DEFAULT_EPOCHS = {"digits": 200}
OTHER_EPOCHS = 20
SAVE_EVERY = 10  # epochs between safety saves
ColorSystem = Literal["truecolor", "256", "standard"]
COLOR_SYSTEMS: dict[str, ColorSystem | None] = {
    "truecolor": "truecolor", "256": "256", "16": "standard", "ascii": None, "braille": None,
}


class _Preview:
    """Holds the latest grid; a Rich renderable so Live redraws it in place."""

    def __init__(self, text: str) -> None:
        self.art: Any = Text(text, style="dim")

    def __rich__(self) -> Any:
        return self.art


class _StopFlag:
    """First Ctrl-C asks the loop to stop after the current step; a second one aborts."""

    def __init__(self) -> None:
        self.requested = False
        self._old: Any = None

    def __enter__(self) -> _StopFlag:
        self._old = signal.signal(signal.SIGINT, self._handle)
        return self

    def _handle(self, signum: int, frame: Any) -> None:
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc: Any) -> None:
        signal.signal(signal.SIGINT, self._old)

    def __call__(self) -> bool:
        return self.requested


def run_train(args: argparse.Namespace) -> int:
    mode = resolve_mode(args.mode)
    from aigc_chat.gan.checkpoint import checkpoint_path, load_checkpoint
    from aigc_chat.gan.data import load_data
    from aigc_chat.gan.train import Trainer, TrainOptions

    resume = load_checkpoint(Path(args.resume).expanduser()) if args.resume else None
    spec = args.data or (resume.config.data if resume is not None else "digits")
    data = load_data(spec, args.size)
    epochs = args.epochs if args.epochs is not None else DEFAULT_EPOCHS.get(spec, OTHER_EPOCHS)
    if resume is not None and resume.path is not None and not args.out:
        out = resume.path  # training continues in the file it resumed from
    else:
        out = checkpoint_path(spec, args.out)
    try:
        out.parent.mkdir(parents=True, exist_ok=True)
    except OSError as err:
        raise UsageError(f"cannot create output folder {out.parent}: {err.strerror or err}") from None
    opts = TrainOptions(epochs=epochs, batch_size=args.batch_size, lr=args.lr, device=args.device, seed=args.seed,
                        threads=args.threads)
    trainer = Trainer(data, opts, resume=resume)
    console = Console(color_system=COLOR_SYSTEMS[mode], highlight=False)
    cfg = trainer.config
    kind = f"{cfg.num_classes} classes" if cfg.conditional else "unconditional"
    console.print(
        f"training on {spec}: {len(data.images)} images {cfg.image_size}x{cfg.image_size}x{cfg.channels}, {kind}, "
        f"device {trainer.device}, epochs {trainer.epoch}->{epochs}; checkpoint: {out}",
        soft_wrap=True,
    )
    sys.stdout.flush()

    progress = Progress(
        TextColumn("epoch {task.fields[epoch]}/{task.fields[epochs]}"),
        BarColumn(),
        MofNCompleteColumn(),
        TextColumn("D {task.fields[d]:.3f}  G {task.fields[g]:.3f}"),
        TimeElapsedColumn(),
        console=console,
        transient=False,
    )
    steps = trainer.steps_per_epoch
    task = progress.add_task("train", total=max(1, (epochs - trainer.epoch) * steps), epoch=trainer.epoch,
                             epochs=epochs, d=0.0, g=0.0)
    preview = _Preview("samples appear after the first epoch")
    last = [0.0]

    def on_step(st: Any) -> None:
        progress.advance(task)
        now = time.monotonic()
        if now - last[0] > 0.1:  # the losses are noisy per step; a few updates a second do
            last[0] = now
            progress.update(task, epoch=st.epoch + 1, d=st.d_loss, g=st.g_loss)

    def on_epoch(epoch: int, images: Any) -> None:
        if not args.no_preview:
            preview.art = render_grid(images, mode=mode, palette=args.palette, scale=args.scale,
                                      width=min(args.width or console.width, console.width),
                                      per_row=cfg.num_classes if 0 < cfg.num_classes <= 16 else None)
        if epoch % SAVE_EVERY == 0:
            trainer.save(out)

    parts = [progress] if args.no_preview else [preview, progress]
    with _StopFlag() as stop, Live(Group(*parts), console=console, refresh_per_second=8, transient=False):
        finished = trainer.run(on_step=on_step, on_epoch=on_epoch, should_stop=stop)
    if not console.is_terminal:
        console.line()
    trainer.save(out)
    if not finished:
        print(f"aigc-chat gan: interrupted at epoch {trainer.epoch}: checkpoint saved to {out} "
              f"(continue with --resume {out})", file=sys.stderr)
        return 130
    console.print(f"saved {out} (epoch {trainer.epoch}, {trainer.elapsed:.1f}s of training)", soft_wrap=True)
    console.print(f"draw from it: aigc-chat gan sample --checkpoint {out}", soft_wrap=True)
    return 0
