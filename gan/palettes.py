"""Colour tables: colour maps for grey images and the xterm 256/16-colour palettes.

The 16 ANSI colours are themeable, so the 256-colour mode quantises only to the fixed
6x6x6 cube and grey ramp (indices 16-255), whose RGB values every xterm-like terminal
agrees on. The 16-colour mode has no such luck; it assumes xterm's defaults.
"""

from __future__ import annotations

import numpy as np

from aigc_chat.errors import UsageError

# Anchor colours (position in [0, 1] -> RGB); the lookup table interpolates linearly.
_MAPS: dict[str, list[tuple[float, tuple[int, int, int]]]] = {
    "grey": [(0.0, (0, 0, 0)), (1.0, (255, 255, 255))],
    "inverse": [(0.0, (255, 255, 255)), (1.0, (0, 0, 0))],
    "green": [(0.0, (0, 0, 0)), (0.6, (20, 170, 60)), (1.0, (190, 255, 200))],
    "amber": [(0.0, (0, 0, 0)), (0.6, (200, 120, 0)), (1.0, (255, 225, 140))],
    "ice": [(0.0, (2, 6, 30)), (0.5, (30, 120, 200)), (1.0, (230, 250, 255))],
    "fire": [(0.0, (0, 0, 0)), (0.35, (170, 20, 0)), (0.7, (255, 160, 0)), (1.0, (255, 255, 220))],
}
PALETTES = tuple(_MAPS)


def palette_lut(name: str) -> np.ndarray:
    """A 256 x 3 uint8 table mapping grey levels to colours."""
    if name not in _MAPS:
        raise UsageError(f"unknown palette {name!r}: choose from {', '.join(PALETTES)}")
    anchors = _MAPS[name]
    xs = np.array([a for a, _ in anchors])
    cols = np.array([c for _, c in anchors], dtype=np.float64)
    t = np.linspace(0.0, 1.0, 256)
    lut = np.stack([np.interp(t, xs, cols[:, k]) for k in range(3)], axis=1)
    return np.round(lut).astype(np.uint8)


def xterm256() -> np.ndarray:
    """RGB of xterm colours 16-255 (row i is colour 16 + i)."""
    steps = np.array([0, 95, 135, 175, 215, 255])
    cube = np.array([(steps[r], steps[g], steps[b]) for r in range(6) for g in range(6) for b in range(6)])
    greys = np.array([(8 + 10 * i,) * 3 for i in range(24)])
    return np.concatenate([cube, greys]).astype(np.uint8)


ANSI16 = np.array(
    [
        (0, 0, 0), (205, 0, 0), (0, 205, 0), (205, 205, 0), (0, 0, 238), (205, 0, 205), (0, 205, 205), (229, 229, 229),
        (127, 127, 127), (255, 0, 0), (0, 255, 0), (255, 255, 0),
        (92, 92, 255), (255, 0, 255), (0, 255, 255), (255, 255, 255),
    ],
    dtype=np.uint8,
)


def nearest(rgb: np.ndarray, table: np.ndarray) -> np.ndarray:
    """Index of the nearest table colour (squared RGB distance) for each pixel.

    Distances are computed once per distinct colour, which is what keeps this cheap:
    grey images through a palette have at most 256 distinct colours.
    """
    flat = rgb.reshape(-1, 3).astype(np.int32)
    keys = (flat[:, 0] << 16) | (flat[:, 1] << 8) | flat[:, 2]
    uniq, inverse = np.unique(keys, return_inverse=True)
    ucol = np.stack([(uniq >> 16) & 255, (uniq >> 8) & 255, uniq & 255], axis=1)
    d = ((ucol[:, None, :] - table[None, :, :].astype(np.int32)) ** 2).sum(-1)
    return d.argmin(1)[inverse].reshape(rgb.shape[:-1])
