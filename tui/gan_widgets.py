"""GAN samples as a Textual widget, drawn by the shared renderer (aigc_chat.gan.render).

`GanSamplesView(checkpoint, seed, label, n, mode)` is everything the chat needs to redraw
a `/gan` message after a restart: the same checkpoint, seed and label give the same
images. Inside Textual, colour depth is Textual's business (it downgrades for the
terminal it runs in), so 'auto' here means 24-bit half-blocks; the other modes stay
available for the look.
"""

from __future__ import annotations

from pathlib import Path
from typing import Any

import numpy as np
from textual.widgets import Static

from aigc_chat.gan import DEFAULT_CHECKPOINT
from aigc_chat.gan.render import MODES, render_grid
from aigc_chat.gan.sampler import Samples, sample

_ALIASES = {
    "auto": "truecolor", "halfblock": "truecolor", "half-block": "truecolor", "": "truecolor", None: "truecolor",
}


def widget_mode(mode: str | None) -> str:
    """Map the modes a message may carry to a renderer mode (unknown ones to truecolor)."""
    mode = _ALIASES.get(mode, mode)
    return mode if mode in MODES else "truecolor"


def stored_checkpoint(path: str | None) -> str | None:
    """A checkpoint path kept in a saved message, mapped to what exists now.

    Messages store the shipped generator's absolute path; after a reinstall (a new
    virtualenv, an upgrade) that path moves, so a missing file with the shipped name means
    the shipped generator, which is what the message showed.
    """
    if not path:
        return None
    p = Path(path).expanduser()
    if not p.exists() and p.name == DEFAULT_CHECKPOINT.name:
        return None
    return str(p)


class GanSamplesView(Static):
    """An inline grid of GAN samples that re-lays itself out when its width changes."""

    DEFAULT_CSS = """
    GanSamplesView {
        width: 100%;
        height: auto;
    }
    """

    def __init__(
        self,
        checkpoint: str | None = None,
        seed: int | None = None,
        label: int | str | None = None,
        n: int = 10,
        mode: str | None = "auto",
        palette: str = "grey",
        **kwargs: Any,
    ) -> None:
        super().__init__("", **kwargs)
        self.checkpoint = stored_checkpoint(checkpoint)
        self.mode = widget_mode(mode)
        self.palette = palette
        self.samples: Samples | None = None
        self.images: np.ndarray | None = None
        self.per_row: int | None = None
        self.draw(seed=seed, label=label, n=n)

    # -- what to show -------------------------------------------------------------------
    def draw(self, seed: int | None = None, label: int | str | None = None, n: int | None = None,
             checkpoint: str | None = None) -> Samples:
        """Sample (numpy, milliseconds) and show; raises UsageError for bad input."""
        if checkpoint is not None:
            self.checkpoint = stored_checkpoint(checkpoint)
        n = n or (len(self.images) if self.images is not None else 10)
        s = sample(self.checkpoint, n=int(n), seed=seed, label=label)
        cfg = s.checkpoint.config
        self.samples = s
        self.label = label
        self.per_row = cfg.num_classes if cfg.conditional and label is None and cfg.num_classes <= 16 else None
        self.images = s.images
        self._refresh_art()
        return s

    def show_images(self, images: np.ndarray, per_row: int | None = None) -> None:
        """Show given images (e.g. the live preview while training)."""
        self.samples = None
        self.images = images
        self.per_row = per_row
        self._refresh_art()

    def set_mode(self, mode: str) -> None:
        self.mode = widget_mode(mode)
        self._refresh_art()

    def set_palette(self, palette: str) -> None:
        self.palette = palette
        self._refresh_art()

    @property
    def seed(self) -> int | None:
        return self.samples.seed if self.samples else None

    # -- layout -------------------------------------------------------------------------
    def _width(self) -> int:
        width = self.content_size.width if self.is_mounted else 0
        if width <= 0 and self.is_mounted and self.parent is not None:
            width = getattr(self.parent, "content_size", self.size).width
        return max(8, width or 80)

    def _refresh_art(self) -> None:
        if self.images is None:
            return
        self.art = render_grid(self.images, mode=self.mode, palette=self.palette, width=self._width(),
                               per_row=self.per_row)
        self.update(self.art)

    def on_resize(self) -> None:
        self._refresh_art()

    def on_mount(self) -> None:
        self._refresh_art()
