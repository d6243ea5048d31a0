"""The terminal-art renderer: mode choice, cell encoding, fidelity, grid fitting."""

from __future__ import annotations

import io
import math

import numpy as np
import pytest
from rich.console import Console

from aigc_chat.errors import UsageError
from aigc_chat.gan.palettes import ANSI16, nearest, palette_lut, xterm256
from aigc_chat.gan.render import (
    ASCII_RAMP,
    CELL_PX,
    MODES,
    UPPER_HALF,
    detect_mode,
    fidelity_psnr,
    reference_pixels,
    render,
    render_grid,
    resolve_mode,
    tile_grid,
)


@pytest.mark.parametrize(
    "env, expected",
    [
        ({"COLORTERM": "truecolor", "TERM": "xterm-256color"}, "truecolor"),
        ({"COLORTERM": "24bit", "TERM": "xterm"}, "truecolor"),
        ({"TERM": "xterm-256color"}, "256"),
        ({"TERM": "screen-256color"}, "256"),
        ({"TERM": "xterm"}, "16"),
        ({"TERM": "linux"}, "16"),
        ({"TERM": "dumb"}, "ascii"),
        ({}, "ascii"),
        ({"NO_COLOR": "1", "COLORTERM": "truecolor", "TERM": "xterm-256color"}, "ascii"),
        ({"NO_COLOR": "", "TERM": "xterm-256color"}, "256"),  # empty NO_COLOR does not count
    ],
)
def test_auto_mode_follows_environment(env, expected):
    assert detect_mode(env) == expected
    assert resolve_mode("auto", env) == expected


def test_unknown_mode_is_a_usage_error():
    with pytest.raises(UsageError, match="unknown mode"):
        resolve_mode("sixel")


def _rand_rgb(h, w, seed=0):
    return np.random.default_rng(seed).random((h, w, 3)).astype(np.float32)


def test_truecolor_half_blocks_are_exact():
    img = _rand_rgb(10, 7)
    art = render(img, "truecolor")
    assert art.rows == 5 and art.cols == 7
    assert all(set(row) == {UPPER_HALF} for row in art.chars)
    assert math.isinf(fidelity_psnr(img, "truecolor"))
    # the upper pixel is the foreground, the lower the background
    expected = np.round(img * 255).astype(np.uint8)
    assert np.array_equal(art.fg[0, 0], expected[0, 0])
    assert np.array_equal(art.bg[0, 0], expected[1, 0])


def test_odd_height_is_padded_not_dropped():
    img = _rand_rgb(5, 3)
    art = render(img, "truecolor")
    assert art.rows == 3
    assert np.array_equal(art.expand()[:5], reference_pixels(img, "truecolor")[:5])


def test_palette_modes_use_nearest_palette_colour():
    img = _rand_rgb(8, 8, seed=1)
    for mode, table, offset in (("256", xterm256(), 16), ("16", ANSI16, 0)):
        art = render(img, mode)
        q = np.round(img * 255).astype(np.int32)
        d_chosen = ((art.expand().astype(np.int32) - q) ** 2).sum(-1)
        d_best = ((q[:, :, None, :] - table[None, None].astype(np.int32)) ** 2).sum(-1).min(-1)
        assert np.array_equal(d_chosen, d_best), mode
        assert art.fg.min() >= offset and art.fg.max() < offset + len(table)


def test_fidelity_orders_modes_by_colour_depth():
    yy, xx = np.mgrid[0:48, 0:64] / 64.0
    img = np.stack([xx, yy, 0.5 * (xx + yy)], axis=-1).astype(np.float32)  # smooth gradients
    p256, p16 = fidelity_psnr(img, "256"), fidelity_psnr(img, "16")
    assert math.isfinite(p256) and p256 > p16 > 5.0


def test_ascii_ramp_levels_and_expansion():
    grey = np.linspace(0, 1, 10, dtype=np.float32)[None, :].repeat(2, axis=0)[..., None]
    art = render(grey, "ascii")
    assert art.chars == [ASCII_RAMP]
    assert art.fg is None and "\x1b" not in art.to_ansi()
    assert math.isinf(fidelity_psnr(grey, "ascii"))  # exactly the ramp's ten levels


def test_braille_dot_order():
    on = np.zeros((4, 2, 1), np.float32)
    on[0, 0] = on[3, 1] = 1.0  # dot 1 (0x01) and dot 8 (0x80)
    art = render(on, "braille")
    assert art.chars == [chr(0x2800 + 0x81)]
    assert np.array_equal(art.expand()[..., 0] > 0, on[..., 0] > 0.5)
    full = render(np.ones((4, 2, 1), np.float32), "braille")
    assert full.chars == ["\u28ff"]


def test_braille_fidelity_exact_for_binary_images():
    img = (np.random.default_rng(3).random((16, 12, 1)) > 0.5).astype(np.float32)
    assert math.isinf(fidelity_psnr(img, "braille"))


def test_grey_images_go_through_the_palette():
    grey = np.full((2, 1, 1), 1.0, np.float32)
    assert tuple(render(grey, "truecolor", "amber").fg[0, 0]) == tuple(palette_lut("amber")[255])
    with pytest.raises(UsageError, match="unknown palette"):
        render_grid(np.zeros((1, 8, 8)), mode="truecolor", palette="nope", width=80)


def test_nearest_matches_brute_force():
    rgb = np.random.default_rng(2).integers(0, 256, (5, 7, 3)).astype(np.uint8)
    table = xterm256()
    brute = ((rgb[:, :, None, :].astype(int) - table[None, None].astype(int)) ** 2).sum(-1).argmin(-1)
    assert np.array_equal(nearest(rgb, table), brute)


@pytest.mark.parametrize("mode", MODES)
@pytest.mark.parametrize("width", [20, 45, 120])
def test_grid_fits_width(mode, width):
    imgs = np.random.default_rng(0).random((30, 8, 8)).astype(np.float32)
    art = render_grid(imgs, mode=mode, width=width)
    assert art.cols <= width
    cw, _ch = CELL_PX[mode]
    # every sample is drawn: count tiles from the layout
    tile_cols = math.ceil(8 * 1 / cw)
    assert art.cols >= tile_cols


def test_tile_grid_places_each_sample():
    imgs = np.arange(6, dtype=np.float32).reshape(6, 1, 1, 1) / 10 + 0.3
    grid = tile_grid(np.broadcast_to(imgs, (6, 2, 2, 1)).copy(), "truecolor", scale=1, width=8, per_row=None)
    # 2x2 tiles, one gap column; width 8 fits (8+1)//(2+1) = 3 per row -> 2 rows
    assert grid.shape == (2 * 2 + 2, 3 * 2 + 2, 1)
    assert grid[0, 0, 0] == pytest.approx(0.3) and grid[4, 6, 0] == pytest.approx(0.8)


def test_rich_renderable_matches_cells():
    img = _rand_rgb(6, 5)
    art = render(img, "truecolor")
    console = Console(color_system="truecolor", force_terminal=True, width=40, record=True, file=io.StringIO())
    console.print(art)
    text = console.export_text(styles=False, clear=False)
    assert text.splitlines()[:3] == [UPPER_HALF * 5] * 3
    f, b = art.fg[0, 0], art.bg[0, 0]
    assert f"38;2;{f[0]};{f[1]};{f[2]};48;2;{b[0]};{b[1]};{b[2]}m" in console.file.getvalue()


def test_rich_renderable_crops_to_width():
    art = render(_rand_rgb(2, 30), "truecolor")
    console = Console(color_system="truecolor", force_terminal=True, width=10, record=True, file=io.StringIO())
    console.print(art)
    assert console.export_text(styles=False).splitlines()[0] == UPPER_HALF * 10


def test_sixteen_colour_escape_codes():
    img = np.zeros((2, 1, 3), np.float32)
    img[0, 0] = (1, 0, 0)  # bright red (9) over black (0)
    art = render(img, "16")
    assert art.fg[0, 0] == 9 and art.bg[0, 0] == 0
    assert "\x1b[91;40m" in art.to_ansi()


def test_class_rows_stay_aligned_when_narrow():
    imgs = np.zeros((20, 8, 8, 1), np.float32)
    # 80 columns fit 8 tiles of 8+1; with 10 classes a row takes 5 so columns stay classes
    grid = tile_grid(imgs, "truecolor", scale=1, width=80, per_row=10)
    assert grid.shape[1] == 5 * 8 + 4
    assert tile_grid(imgs, "truecolor", scale=1, width=200, per_row=10).shape[1] == 10 * 8 + 9
