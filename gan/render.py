"""Terminal art: numpy images to character cells, shared by the CLI and the TUI.

No Textual here: the result (`CellArt`) is a Rich renderable, can write its own ANSI
string, and can expand itself back to pixels so fidelity is measured, not guessed.

Modes and cell geometry (a terminal cell is about twice as tall as it is wide):
- truecolor / 256 / 16: one upper-half-block per cell, the upper pixel as foreground and
  the lower as background, so a cell carries two square pixels. Truecolor is exact; the
  others take the nearest palette colour.
- ascii: a ten-step grey ramp, one character per 1x2 pixels, no colour at all.
- braille: 2x4 dots per cell, on where the pixel is brighter than half: monochrome,
  but four times the pixels of ascii.
"""

from __future__ import annotations

import math
import os
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass
from typing import TYPE_CHECKING

import numpy as np

from aigc_chat.errors import UsageError
from aigc_chat.gan.palettes import ANSI16, nearest, palette_lut, xterm256

if TYPE_CHECKING:
    from rich.console import Console, ConsoleOptions
    from rich.measure import Measurement
    from rich.segment import Segment

MODES = ("truecolor", "256", "16", "ascii", "braille")
CELL_PX = {"truecolor": (1, 2), "256": (1, 2), "16": (1, 2), "ascii": (1, 2), "braille": (2, 4)}
ASCII_RAMP = " .:-=+*#%@"
UPPER_HALF = "\u2580"
_BRAILLE_BITS = np.array([[0x01, 0x08], [0x02, 0x10], [0x04, 0x20], [0x40, 0x80]])
_XTERM256 = xterm256()


def detect_mode(env: Mapping[str, str] | None = None) -> str:
    """Pick a mode from the environment alone (never by querying the terminal).

    NO_COLOR (any non-empty value) wins and gives plain ascii; COLORTERM=truecolor|24bit
    means 24-bit colour; a TERM naming 256 colours gets the 256 palette; a dumb or missing
    TERM gets ascii; any other TERM gets the 16 ANSI colours.
    """
    env = os.environ if env is None else env
    if env.get("NO_COLOR"):
        return "ascii"
    if env.get("COLORTERM", "").lower() in ("truecolor", "24bit"):
        return "truecolor"
    term = env.get("TERM", "").lower()
    if not term or term == "dumb":
        return "ascii"
    if "truecolor" in term or "direct" in term:
        return "truecolor"
    if "256" in term:
        return "256"
    return "16"


def resolve_mode(mode: str, env: Mapping[str, str] | None = None) -> str:
    if mode == "auto":
        return detect_mode(env)
    if mode not in MODES:
        raise UsageError(f"unknown mode {mode!r}: choose from auto, {', '.join(MODES)}")
    return mode


def to_hwc(images: np.ndarray) -> np.ndarray:
    """Accept N x H x W, N x C x H x W (C = 1 or 3) or N x H x W x 3; return N x H x W x C."""
    a = np.asarray(images, dtype=np.float32)
    if a.ndim == 3:
        return a[..., None]
    if a.ndim == 4 and a.shape[1] in (1, 3) and a.shape[-1] not in (1, 3):
        return a.transpose(0, 2, 3, 1)
    if a.ndim == 4 and a.shape[-1] in (1, 3):
        return a
    if a.ndim == 4 and a.shape[1] in (1, 3):
        return a.transpose(0, 2, 3, 1)
    raise ValueError(f"cannot interpret image array of shape {a.shape}")


def colourise(image: np.ndarray, palette: str = "grey") -> np.ndarray:
    """H x W x C float [0, 1] -> H x W x 3 uint8; grey images go through the palette."""
    q = np.round(np.clip(image, 0.0, 1.0) * 255.0).astype(np.uint8)
    if q.shape[-1] == 1:
        return palette_lut(palette)[q[..., 0]]
    return q


def luminance(image: np.ndarray) -> np.ndarray:
    """H x W x C float -> H x W float in [0, 1] (Rec. 709 weights for colour)."""
    image = np.clip(image, 0.0, 1.0)
    if image.shape[-1] == 1:
        return image[..., 0]
    return image @ np.array([0.2126, 0.7152, 0.0722], dtype=image.dtype)


@dataclass
class CellArt:
    """Rendered cells. `fg`/`bg` hold RGB (truecolor) or palette indices (256/16)."""

    mode: str
    chars: list[str]  # one string per row
    fg: np.ndarray | None = None  # rows x cols (x 3 for truecolor)
    bg: np.ndarray | None = None

    @property
    def rows(self) -> int:
        return len(self.chars)

    @property
    def cols(self) -> int:
        return len(self.chars[0]) if self.chars else 0

    # -- pixels back from cells (the fidelity measurement) --------------------------
    def expand(self) -> np.ndarray:
        """The pixels these cells show: (2*rows, cols, 3) or (4*rows, 2*cols, 3) uint8."""
        if self.mode in ("truecolor", "256", "16"):
            assert self.fg is not None and self.bg is not None
            if self.mode == "truecolor":
                top, bottom = self.fg, self.bg
            else:
                table = _XTERM256 if self.mode == "256" else ANSI16
                offset = 16 if self.mode == "256" else 0
                top, bottom = table[self.fg - offset], table[self.bg - offset]
            out = np.empty((2 * self.rows, self.cols, 3), np.uint8)
            out[0::2], out[1::2] = top, bottom
            return out
        if self.mode == "ascii":
            levels = np.array([[ASCII_RAMP.index(c) for c in row] for row in self.chars], np.float64)
            grey = np.round(levels / (len(ASCII_RAMP) - 1) * 255).astype(np.uint8)
            return np.repeat(grey, 2, axis=0)[..., None].repeat(3, axis=-1)
        codes = np.array([[ord(c) - 0x2800 for c in row] for row in self.chars], np.int64)
        out = np.zeros((4 * self.rows, 2 * self.cols), np.uint8)
        for dy in range(4):
            for dx in range(2):
                out[dy::4, dx::2] = np.where(codes & _BRAILLE_BITS[dy, dx], 255, 0)
        return out[..., None].repeat(3, axis=-1)

    # -- output -------------------------------------------------------------------------
    def _runs(self, r: int) -> Iterable[tuple[str, tuple | None]]:
        """(text, colour key) runs of one row, merging neighbouring cells of one style."""
        row = self.chars[r]
        if self.fg is None:
            yield row, None
            return
        assert self.bg is not None  # set with fg, as in expand()
        if self.mode == "truecolor":
            f = self.fg[r].astype(np.int64)
            b = self.bg[r].astype(np.int64)
            keys = ((f[:, 0] << 16) | (f[:, 1] << 8) | f[:, 2]) << 24 | ((b[:, 0] << 16) | (b[:, 1] << 8) | b[:, 2])
        else:
            keys = self.fg[r].astype(np.int64) << 8 | self.bg[r].astype(np.int64)
        keys_l = keys.tolist()
        start = 0
        for c in range(1, len(keys_l) + 1):
            if c == len(keys_l) or keys_l[c] != keys_l[start]:
                yield row[start:c], self._decode(keys_l[start])
                start = c

    def _decode(self, key: int) -> tuple:
        if self.mode == "truecolor":
            f, b = key >> 24, key & 0xFFFFFF
            return ((f >> 16) & 255, (f >> 8) & 255, f & 255), ((b >> 16) & 255, (b >> 8) & 255, b & 255)
        return key >> 8, key & 255

    def _sgr(self, key: tuple) -> str:
        f, b = key
        if self.mode == "truecolor":
            return f"\x1b[38;2;{f[0]};{f[1]};{f[2]};48;2;{b[0]};{b[1]};{b[2]}m"
        if self.mode == "256":
            return f"\x1b[38;5;{f};48;5;{b}m"
        fg = 30 + f if f < 8 else 90 + f - 8
        bg = 40 + b if b < 8 else 100 + b - 8
        return f"\x1b[{fg};{bg}m"

    def to_ansi(self) -> str:
        """The whole picture as text with SGR escapes (none for ascii and braille)."""
        lines = []
        for r in range(self.rows):
            parts = []
            for text, key in self._runs(r):
                parts.append(text if key is None else self._sgr(key) + text)
            lines.append("".join(parts) + ("\x1b[0m" if self.fg is not None else ""))
        return "\n".join(lines)

    def __rich_console__(self, console: Console, options: ConsoleOptions) -> Iterator[Segment]:
        from rich.color import Color
        from rich.segment import Segment
        from rich.style import Style

        cache: dict[tuple, Style] = {}

        def style(key: tuple) -> Style:
            st = cache.get(key)
            if st is None:
                f, b = key
                if self.mode == "truecolor":
                    st = Style(color=Color.from_rgb(*f), bgcolor=Color.from_rgb(*b))
                else:
                    st = Style(color=Color.from_ansi(f), bgcolor=Color.from_ansi(b))
                cache[key] = st
            return st

        width = options.max_width
        newline = Segment.line()
        for r in range(self.rows):
            used = 0
            for text, key in self._runs(r):
                if used >= width:
                    break
                text = text[: width - used]
                used += len(text)
                yield Segment(text, None if key is None else style(key))
            yield newline

    def __rich_measure__(self, console: Console, options: ConsoleOptions) -> Measurement:
        from rich.measure import Measurement

        return Measurement(self.cols, self.cols)


def render(image: np.ndarray, mode: str, palette: str = "grey") -> CellArt:
    """One H x W x C float image in [0, 1] -> cells. Pads with black to whole cells."""
    if image.ndim == 2:
        image = image[..., None]
    cw, ch = CELL_PX[mode]
    h, w = image.shape[:2]
    ph, pw = -h % ch, -w % cw
    if ph or pw:
        image = np.pad(image, ((0, ph), (0, pw), (0, 0)))
    if mode in ("truecolor", "256", "16"):
        rgb = colourise(image, palette)
        if mode == "truecolor":
            fg, bg = rgb[0::2], rgb[1::2]
        else:
            idx = nearest(rgb, _XTERM256 if mode == "256" else ANSI16)
            idx = idx + 16 if mode == "256" else idx
            fg, bg = idx[0::2], idx[1::2]
        row = UPPER_HALF * fg.shape[1]
        return CellArt(mode, [row] * fg.shape[0], np.ascontiguousarray(fg), np.ascontiguousarray(bg))
    lum = luminance(image)
    if mode == "ascii":
        cell = (lum[0::2] + lum[1::2]) * 0.5
        levels = np.round(cell * (len(ASCII_RAMP) - 1)).astype(np.int64)
        ramp = np.array(list(ASCII_RAMP))
        return CellArt(mode, ["".join(r) for r in ramp[levels]])
    on = lum > 0.5
    codes = np.zeros((on.shape[0] // 4, on.shape[1] // 2), np.int64)
    for dy in range(4):
        for dx in range(2):
            codes |= np.where(on[dy::4, dx::2], _BRAILLE_BITS[dy, dx], 0)
    return CellArt(mode, ["".join(chr(0x2800 + c) for c in r) for r in codes.tolist()])


def reference_pixels(image: np.ndarray, mode: str, palette: str = "grey") -> np.ndarray:
    """What a perfect rendering in `mode` would show: the target of the fidelity PSNR.

    Colour modes aim at the palette-coloured RGB; ascii and braille at the grey luminance
    (they have no colour to give), both padded to whole cells as `render` does.
    """
    if image.ndim == 2:
        image = image[..., None]
    cw, ch = CELL_PX[mode]
    image = np.pad(image, ((0, -image.shape[0] % ch), (0, -image.shape[1] % cw), (0, 0)))
    if mode in ("truecolor", "256", "16"):
        return colourise(image, palette)
    grey = np.round(luminance(image) * 255).astype(np.uint8)
    return grey[..., None].repeat(3, axis=-1)


def fidelity_psnr(image: np.ndarray, mode: str, palette: str = "grey") -> float:
    """PSNR (dB) of the cells expanded back to pixels against the source on the same grid."""
    from aigc_chat.gan.metrics import psnr

    art = render(image, mode, palette)
    return psnr(art.expand(), reference_pixels(image, mode, palette))


# -- grids of samples ---------------------------------------------------------------------
GAP_VALUE = 0.12  # a dark grey line between tiles, so black backgrounds do not merge


def choose_scale(tile_px: int, n: int, per_row: int, width: int, mode: str, max_px: int = 32) -> int:
    """The largest integer scale (tiles at most max_px wide) that still fits per_row tiles."""
    cw = CELL_PX[mode][0]
    want = max(1, min(n, per_row))
    for s in range(max(1, max_px // tile_px), 0, -1):
        tile_cols = math.ceil(tile_px * s / cw)
        if want * tile_cols + (want - 1) <= width:
            return s
    return 1


def tile_grid(images: np.ndarray, mode: str, scale: int, width: int, per_row: int | None = None,
              gap_value: float | None = None) -> np.ndarray:
    """Lay N x H x W x C images out as one picture whose cells fit `width` columns.

    Tiles are scaled by pixel repetition (nearest neighbour keeps the pixels honest),
    padded to whole cells and separated by one cell of GAP_VALUE, so every tile starts on a
    cell boundary and no cell mixes two samples.
    """
    n, h, w, c = images.shape
    cw, ch = CELL_PX[mode]
    if scale > 1:
        images = images.repeat(scale, axis=1).repeat(scale, axis=2)
        h, w = h * scale, w * scale
    th, tw = h + (-h % ch), w + (-w % cw)
    tile_cols = tw // cw
    fit = max(1, (width + 1) // (tile_cols + 1))
    cols = max(1, min(n, fit, per_row or n))
    if per_row and cols < min(n, per_row):
        # rows of whole class groups keep each column one class (10 -> 5 -> 2 -> 1)
        cols = max(d for d in range(1, cols + 1) if per_row % d == 0)
    rows = math.ceil(n / cols)
    H = rows * th + (rows - 1) * ch
    W = cols * tw + (cols - 1) * cw
    if gap_value is None:  # ascii and braille have no dark grey: a gap there is blank
        gap_value = GAP_VALUE if mode in ("truecolor", "256", "16") else 0.0
    grid = np.full((H, W, c), gap_value, np.float32)
    for i in range(n):
        r, k = divmod(i, cols)
        y, x = r * (th + ch), k * (tw + cw)
        grid[y : y + th, x : x + tw] = 0.0
        grid[y : y + h, x : x + w] = images[i]
    return grid


def render_grid(
    images: np.ndarray,
    mode: str = "auto",
    palette: str = "grey",
    scale: int | None = None,
    width: int | None = None,
    per_row: int | None = None,
    env: Mapping[str, str] | None = None,
) -> CellArt:
    """Samples (any layout `to_hwc` accepts) -> a grid of cells fitting `width` columns."""
    mode = resolve_mode(mode, env)
    palette_lut(palette)  # validate early, even for modes that ignore it
    hwc = to_hwc(images)
    if width is None:
        import shutil

        width = shutil.get_terminal_size((80, 24)).columns
    width = max(1, int(width))
    if scale is None:
        scale = choose_scale(hwc.shape[2], len(hwc), per_row or 10, width, mode)
    if not 1 <= scale <= 16:
        raise UsageError(f"--scale must be between 1 and 16, not {scale}")
    return render(tile_grid(hwc, mode, scale, width, per_row), mode, palette)
