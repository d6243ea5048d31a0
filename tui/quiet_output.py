"""Quiet redraws (`[tui] quiet_output`, on by default): send the terminal only what changed.

Textual draws a frame as cursor moves, SGR styles and text, every run of text with its
full style from a reset (`ESC[0m ESC[38;2;..;48;2;..m text ESC[0m`), and once the chat
scrolls it repaints the whole chat region at every streamed batch. Over SSH that was ~320
bytes per character of reply (docs/performance.md, "Terminal bytes per reply character").

`QuietFilter` sits between Textual and the terminal. It reads what Textual writes as a
stream of operations on a grid of cells (the *frame*), keeps a shadow of what the terminal
shows, and at the end of each write sends only the cells that differ from the shadow:
positioned with the shortest cursor move, styled with only the SGR codes that change from
the terminal's current style, and, when most of a block of rows has moved up or down by a
few lines (the chat scrolling as a reply grows), shifted with the terminal's own scroll
region (DECSTBM and IND/RI, VT100) first, so only the new lines are drawn.

Safety rules, so that the screen always ends up as Textual meant it:
- Only what is fully understood is modelled: cursor positioning, SGR (plain parameters),
  printable text inside the screen. Anything else (an erase, an unknown escape, a control
  character, OSC 8 hyperlinks, text off the screen) is passed through unchanged, in order,
  after putting the terminal's cursor and style where Textual believes they are, and then
  the whole shadow is forgotten: later frames repaint every cell they touch, as Textual
  itself would.
- Mode sequences that change no cell (mouse, paste, focus, cursor shown, synchronized
  output, queries, the kitty keyboard protocol, OSC titles/clipboard/pointer shapes) pass
  through as they are; switching screens (1049/1047/47) forgets the shadow.
- A cell whose glyph a terminal may measure differently (anything outside rich's
  always-one-cell set: wide CJK, emoji, combining marks) is followed by an absolute cursor
  move, so a disagreement about its width cannot shift the cells after it.
- The shadow is forgotten on every resize (`invalidate`), and it is resized with the grid.
- Synchronized output (`ESC[?2026h` ... `ESC[?2026l`, which Textual wraps every frame in
  where the terminal supports it) still wraps what is sent; a frame with nothing left to
  send sends neither.
- Text itself is never changed: model output was sanitised before Textual drew it
  (aigc_chat.sanitize); this filter only decides which of Textual's cells to resend.

`QuietLinuxDriver` is Textual's Linux driver with its `write` going through the filter
(installed by tui/app.py; inline mode keeps Textual's own inline driver, unfiltered). A
failure inside the filter turns it off for the rest of the run and the write goes out as
Textual made it: quiet output is an optimisation, never a reason to lose a frame. So does
a write that comes in the middle of another (Textual's SIGTSTP handler suspending the app);
the write it interrupted then goes out whole too (the screen may have been cleared meanwhile).
"""

from __future__ import annotations

import os
import re
import threading
from operator import ne
from typing import Any

from rich.cells import _is_single_cell_widths, get_character_cell_size
from textual.drivers.linux_driver import LinuxDriver

# -- styles ------------------------------------------------------------------------------------
# A style is (attributes, fg, bg, underline colour): attributes a frozenset of SGR codes
# (1 bold ... 53 overline), colours the SGR text that sets them ("38;2;r;g;b", "31") or None.
Style = tuple[frozenset[int], str | None, str | None, str | None]
DEFAULT: Style = (frozenset(), None, None, None)
ATTRS = {1, 2, 3, 4, 5, 6, 7, 8, 9, 21, 51, 52, 53}
# code -> the attributes it turns off (22 ends both bold and dim, ...)
OFF = {22: {1, 2}, 23: {3}, 24: {4, 21}, 25: {5, 6}, 27: {7}, 28: {8}, 29: {9}, 54: {51, 52}, 55: {53}}
OFF_CODE = {attr: code for code, attrs in OFF.items() for attr in attrs}

_sgr_cache: dict[tuple[Style | None, str], Style | None] = {}


def apply_sgr(style: Style | None, params: str) -> Style | None:
    """The style after `ESC[{params}m` from `style` (None: unknown). None when the result is
    unknown: parameters this model does not read (sub-parameters, fonts...), or a change on
    top of an unknown style that is not a full reset."""
    key = (style, params)
    if key in _sgr_cache:
        return _sgr_cache[key]
    result = _apply_sgr(style, params)
    if len(_sgr_cache) < 4096:
        _sgr_cache[key] = result
    return result


def _apply_sgr(style: Style | None, params: str) -> Style | None:
    if ":" in params:
        return None
    codes = [int(p) if p else 0 for p in params.split(";")] if params else [0]
    attrs: set[int] | None = None
    fg = bg = ul = None
    if style is not None:
        attrs, fg, bg, ul = set(style[0]), style[1], style[2], style[3]
    i = 0
    while i < len(codes):
        code = codes[i]
        i += 1
        if code == 0:
            attrs, fg, bg, ul = set(), None, None, None
            continue
        if attrs is None:  # a change on top of an unknown style
            return None
        if code in ATTRS:
            attrs.add(code)
        elif code in OFF:
            attrs -= OFF[code]
        elif 30 <= code <= 37 or 90 <= code <= 97:
            fg = str(code)
        elif 40 <= code <= 47 or 100 <= code <= 107:
            bg = str(code)
        elif code == 39:
            fg = None
        elif code == 49:
            bg = None
        elif code == 59:
            ul = None
        elif code in (38, 48, 58):
            if i < len(codes) and codes[i] == 5 and i + 1 < len(codes):
                colour = f"{code};5;{codes[i + 1]}"
                i += 2
            elif i < len(codes) and codes[i] == 2 and i + 3 < len(codes):
                colour = f"{code};2;{codes[i + 1]};{codes[i + 2]};{codes[i + 3]}"
                i += 4
            else:
                return None
            if code == 38:
                fg = colour
            elif code == 48:
                bg = colour
            else:
                ul = colour
        else:
            return None
    if attrs is None:
        return None
    return (frozenset(attrs), fg, bg, ul)


def style_codes(style: Style) -> list[str]:
    codes = [str(a) for a in sorted(style[0])]
    codes.extend(c for c in style[1:] if c is not None)
    return codes


_transition_cache: dict[tuple[Style | None, Style], str] = {}


def transition(current: Style | None, target: Style) -> str:
    """The shortest SGR sequence that takes the terminal from `current` (None: unknown) to
    `target`: only the codes that change, or a reset and the whole style, whichever is
    shorter. Empty when nothing changes."""
    key = (current, target)
    found = _transition_cache.get(key)
    if found is not None:
        return found
    full = "\x1b[" + ";".join(["0", *style_codes(target)]) + "m"
    if target == DEFAULT:
        full = "\x1b[0m"
    out = full
    if current is not None:
        if current == target:
            out = ""
        else:
            codes: list[str] = []
            gone = current[0] - target[0]
            offs = sorted({OFF_CODE[a] for a in gone})
            cleared = set().union(*(OFF[c] for c in offs)) if offs else set()
            codes.extend(str(c) for c in offs)
            codes.extend(str(a) for a in sorted(target[0] - current[0] | (cleared & target[0])))
            for now, then, reset in zip(current[1:], target[1:], ("39", "49", "59"), strict=True):
                if now != then:
                    codes.append(then if then is not None else reset)
            diff = "\x1b[" + ";".join(codes) + "m"
            if len(diff) < len(full):
                out = diff
    if len(_transition_cache) < 4096:
        _transition_cache[key] = out
    return out


# -- cells -------------------------------------------------------------------------------------
# A cell is (text, style, width): width 1, 2 for the first half of a wide glyph, 0 for its
# second half (text ""). None: the terminal shows something this model does not know.
Cell = tuple[str, Style, int]
Row = list[Cell | None]

TOKEN = re.compile(
    r"(?P<csi>\x1b\[(?P<params>[0-?]*)(?P<inter>[ -/]*)(?P<final>[@-~]))"
    r"|(?P<osc>\x1b\](?P<body>[^\x07\x1b]*)(?:\x07|\x1b\\))"
    r"|(?P<esc>\x1b[^\[\]])"
    r"|(?P<text>[^\x00-\x1f\x7f-\x9f]+)"
    r"|(?P<ctl>[\x00-\x1f\x7f-\x9f])",
    re.S,
)
# The start of an escape sequence cut off at the end of a write: kept for the next one.
PARTIAL = re.compile(r"\x1b(?:\[[0-?]*[ -/]*|\][^\x07\x1b]*\x1b?)?\Z")

# DEC private modes that change no cell: passed through as they are.
HARMLESS_MODES = {"1", "7", "12", "25", "1000", "1002", "1003", "1004", "1005", "1006", "1015", "1016",
                  "2004", "2026", "2048"}
SCREEN_MODES = {"47", "1047", "1049"}  # switching screens: the shadow is forgotten
GAP = 4  # unchanged known cells between two changes rewritten rather than jumped over
MAX_SHIFT = 12  # the most lines a block may have scrolled for the shift to be looked for


class QuietFilter:
    """The shadow-screen differ (module notes). `feed(data)` returns what to send."""

    def __init__(self, cols: int, rows: int) -> None:
        self.cols, self.rows = cols, rows
        self.shadow: list[Row] = [[None] * cols for _ in range(rows)]
        self.pending: dict[int, Row] = {}  # rows the stream changed since the last flush
        # Where the stream (Textual) believes the cursor is, and its current style.
        self.cur: tuple[int, int] | None = None
        self.newlines: tuple[int, int, int] | None = None  # (row, col, count) of "\n"s after a known cursor
        self.style: Style | None = DEFAULT  # Textual draws from a reset terminal
        # What the terminal really has (None: unknown).
        self.t_cur: tuple[int, int] | None = None
        self.t_style: Style | None = None
        self.cursor_shown = False
        self.wrap = True  # autowrap (DECAWM); Textual turns it off in application mode
        # A synchronized-output start (`ESC[?2026h`) not sent yet: Textual wraps every frame
        # in one, and a frame with nothing left to send needs neither it nor its end.
        self.sync_held: int | None = None  # where in this write's output it would go
        self.carry = ""  # a partial escape sequence held for the next write
        self.scrolls = 0  # statistics for the bench and the tests
        self.passed = 0

    # -- the outside world ---------------------------------------------------------------
    def invalidate(self) -> None:
        """Forget what the terminal shows (a resize, a screen switch, something not
        understood): every cell the next frames touch is sent again."""
        self.shadow = [[None] * self.cols for _ in range(self.rows)]
        self.pending.clear()
        self.t_cur = None

    def resize(self, cols: int, rows: int) -> None:
        """The terminal's size changed: a new grid, nothing on it known (the cells of the
        frame so far go with the old one; Textual repaints after a resize)."""
        self.cols, self.rows = cols, rows
        self.invalidate()
        self.cur = None
        self.newlines = None

    def feed(self, data: str) -> str:
        out: list[str] = []
        if self.sync_held is not None:
            self.sync_held = 0  # held from an earlier write: it goes before anything of this one
        data = self.carry + data
        self.carry = ""
        partial = PARTIAL.search(data)
        if partial is not None:
            self.carry = data[partial.start():]
            data = data[:partial.start()]
        pos = 0
        for m in TOKEN.finditer(data):
            pos = m.end()
            if m.group("text") is not None:
                self._text(m.group("text"), out)
            elif m.group("csi") is not None:
                self._csi(m, out)
            elif m.group("osc") is not None:
                body = m.group("body")
                if body.startswith("8;"):  # a hyperlink changes the cells after it
                    self._opaque(m.group(0), out)
                else:
                    self._pass(m.group(0), out)
            elif m.group("esc") is not None:
                self._opaque(m.group(0), out)
            else:
                self._ctl(m.group("ctl"), out)
        if pos != len(data):  # pragma: no cover - the token pattern covers every character
            self._opaque(data[pos:], out)
        self.flush(out)
        if self.cursor_shown and self.cur is not None and self.newlines is None and self.cur != self.t_cur:
            out.append(self._move(*self.cur))
        self._release_sync(out)
        return "".join(out)

    def _release_sync(self, out: list[str]) -> None:
        """A held synchronized-output start goes out just before the first thing sent
        after it (and stays held while nothing is)."""
        if self.sync_held is not None and any(out[self.sync_held:]):
            out.insert(self.sync_held, "\x1b[?2026h")
            self.sync_held = None

    # -- tokens --------------------------------------------------------------------------
    def _csi(self, m: re.Match[str], out: list[str]) -> None:
        params, inter, final = m.group("params"), m.group("inter"), m.group("final")
        seq = m.group(0)
        if inter:
            if final == "p" and inter == "$":  # a mode query (DECRQM)
                self._pass(seq, out)
            else:
                self._opaque(seq, out)
            return
        if params.startswith("?"):
            if final in "hl":
                modes = set(params[1:].split(";"))
                if modes == {"2026"}:
                    self.flush(out)
                    self._release_sync(out)
                    if final == "h":
                        self.sync_held = len(out)
                    elif self.sync_held is not None:  # an empty frame: neither start nor end
                        self.sync_held = None
                    else:
                        self._pass(seq, out)
                    return
                if modes <= HARMLESS_MODES:
                    if "7" in modes:
                        self.wrap = final == "h"
                    if "25" in modes:
                        self.cursor_shown = final == "h"
                        if self.cursor_shown:
                            self._sync(out)
                    self._pass(seq, out)
                    return
                if modes <= SCREEN_MODES | HARMLESS_MODES:
                    self._opaque(seq, out)
                    return
            self._opaque(seq, out)
            return
        if params.startswith((">", "<", "=")):  # kitty keyboard protocol and friends
            if final == "u":
                self._pass(seq, out)
            else:
                self._opaque(seq, out)
            return
        if final == "m":
            style = apply_sgr(self.style, params)
            if style is None:
                self._opaque(seq, out)
            else:
                self.style = style
            return
        if final == "n" and params == "6":  # cursor position report: where Textual believes it is
            self._sync(out)
            self._pass(seq, out)
            return
        if final in "Hf":
            parts = params.split(";") if params else []
            try:
                row = int(parts[0]) if parts and parts[0] else 1
                col = int(parts[1]) if len(parts) > 1 and parts[1] else 1
            except ValueError:
                self._opaque(seq, out)
                return
            self.cur = (min(max(row, 1), self.rows) - 1, min(max(col, 1), self.cols) - 1)
            self.newlines = None
            return
        if final in "ABCDGd" and self.cur is not None and self.newlines is None and self.cur[1] < self.cols:
            try:
                n = int(params) if params else 1
            except ValueError:
                self._opaque(seq, out)
                return
            n = max(n, 1)
            row, col = self.cur
            if final == "A":
                row -= n
            elif final == "B":
                row += n
            elif final == "C":
                col += n
            elif final == "D":
                col -= n
            elif final == "G":
                col = n - 1
            else:
                row = n - 1
            self.cur = (min(max(row, 0), self.rows - 1), min(max(col, 0), self.cols - 1))
            return
        self._opaque(seq, out)

    def _ctl(self, ch: str, out: list[str]) -> None:
        if ch == "\n" and self.cur is not None and self.cur[0] < self.rows - 1:
            # A line feed inside the screen only moves the cursor; with or without the tty's
            # ONLCR the next thing Textual sends is a cursor move (LayoutUpdate). Until
            # then the column is unsure: remembered to replay if anything else comes first.
            if self.newlines is None:
                self.newlines = (self.cur[0], self.cur[1], 1)
            else:
                self.newlines = (self.newlines[0], self.newlines[1], self.newlines[2] + 1)
            self.cur = (self.cur[0] + 1, self.cur[1])
            return
        if ch == "\r" and self.cur is not None and self.newlines is None:
            self.cur = (self.cur[0], 0)
            return
        if ch == "\x07":  # the bell
            self._pass(ch, out)
            return
        self._opaque(ch, out)

    def _text(self, text: str, out: list[str]) -> None:
        if self.cur is None or self.newlines is not None or self.style is None:
            self._opaque(text, out)
            return
        row_i, col = self.cur
        style = self.style
        row = self.pending.get(row_i)
        if row is None:
            row = self.pending[row_i] = list(self.shadow[row_i])
        cols = self.cols
        if _is_single_cell_widths(text):
            end = col + len(text)
            if end > cols:
                self._opaque(text, out)
                return
            self._break_wide(row, col, end)
            row[col:end] = [(ch, style, 1) for ch in text]
            self.cur = (row_i, end)
            return
        for i, ch in enumerate(text):
            width = get_character_cell_size(ch)
            if width == 0:
                # A mark (a combining accent, a variation selector, a joiner) joins the glyph
                # before it; after a wide glyph that is the cell before its second half.
                last = row[col - 1] if col > 0 else None
                at = col - 2 if last is not None and last[2] == 0 else col - 1
                prev = row[at] if at >= 0 else None
                if prev is None or prev[2] == 0:
                    self._opaque(text[i:], out)  # a mark on nothing this model knows: the rest as it is
                    return
                row[at] = (prev[0] + ch, prev[1], prev[2])
                continue
            if col + width > cols:
                self._opaque(text[i:], out)
                return
            self._break_wide(row, col, col + width)
            row[col] = (ch, style, width)
            if width == 2:
                row[col + 1] = ("", style, 0)
            col += width
            self.cur = (row_i, col)

    @staticmethod
    def _break_wide(row: Row, start: int, end: int) -> None:
        """Cells [start, end) are being written: a wide glyph cut in half by that loses its
        other half on the terminal, so that half becomes unknown."""
        first = row[start]
        if first is not None and first[2] == 0 and start > 0:
            row[start - 1] = None
        last = row[end - 1]
        if last is not None and last[2] == 2 and end < len(row):
            row[end] = None

    # -- passing through -----------------------------------------------------------------
    def _pass(self, seq: str, out: list[str]) -> None:
        """A sequence that changes no cell: after what was drawn before it, as it is."""
        self.flush(out)
        out.append(seq)
        self.passed += 1

    def _sync(self, out: list[str]) -> None:
        """Put the terminal's cursor and style where the stream has them."""
        self.flush(out)
        if self.newlines is not None:
            row, col, count = self.newlines
            if (row, col) != self.t_cur:
                out.append(self._move(row, min(col, self.cols - 1)))
            out.append("\n" * count)
            self.newlines = None
            self.cur = None  # the column after "\n" depends on the tty (ONLCR)
            self.t_cur = None
        elif self.cur is not None and self.cur != self.t_cur:
            if self.cur[1] < self.cols:
                out.append(self._move(*self.cur))
            elif not self.wrap:  # past the last column: without autowrap the cursor stays on it
                out.append(self._move(self.cur[0], self.cols - 1))
        if self.style is not None and self.style != self.t_style:
            out.append(transition(self.t_style, self.style))
            self.t_style = self.style

    def _opaque(self, seq: str, out: list[str]) -> None:
        """Not understood: sent as it is where Textual meant it, then nothing is known."""
        self._sync(out)
        out.append(seq)
        self.passed += 1
        self.invalidate()
        self.cur = None
        self.newlines = None
        self.style = None
        self.t_style = None

    # -- sending the difference ----------------------------------------------------------
    def _move(self, row: int, col: int) -> str:
        t = self.t_cur
        self.t_cur = (row, col)
        if t is not None and t[0] == row:
            if col > t[1]:
                n = col - t[1]
                return "\x1b[C" if n == 1 else f"\x1b[{n}C"
            return f"\x1b[{col + 1}G" if col else "\r"
        if col == 0:
            return f"\x1b[{row + 1}H"
        return f"\x1b[{row + 1};{col + 1}H"

    def flush(self, out: list[str]) -> None:
        """Send the cells of the rows the stream changed that differ from the shadow."""
        if not self.pending:
            return
        pending = self.pending
        self.pending = {}
        changed = sorted(i for i, row in pending.items() if row != self.shadow[i])
        if len(changed) >= 3:
            region = self._scroll(changed, pending, out)
            if region is not None:  # rows the scroll moved or blanked are sent from their new contents
                changed = sorted(set(changed) | set(region))
        for i in changed:
            self._send_row(i, pending[i], out)

    def _send_row(self, i: int, new: Row, out: list[str]) -> None:
        old = self.shadow[i]
        cols = self.cols
        j = 0
        while j < cols:
            if new[j] == old[j] or new[j] is None:
                j += 1
                continue
            start = j
            if new[start] is not None and new[start][2] == 0 and start > 0:  # type: ignore[index]
                start -= 1  # the second half of a wide glyph: its first half draws it
            end = j + 1
            k = end
            while k < cols:  # extend over short gaps of known, unchanged cells
                if new[k] is None:
                    break
                if new[k] != old[k]:
                    end = k + 1
                    k += 1
                    continue
                if k - end >= GAP:
                    break
                k += 1
            if end < cols and new[end - 1] is not None and new[end - 1][2] == 2:  # type: ignore[index]
                end += 1
            self._send_cells(i, start, end, new, out)
            j = end
        self.shadow[i] = new

    def _send_cells(self, i: int, start: int, end: int, new: Row, out: list[str]) -> None:
        if self.t_cur != (i, start):
            out.append(self._move(i, start))
        col = start
        parts: list[str] = []
        t_style = self.t_style
        single = _is_single_cell_widths
        for j in range(start, end):
            cell = new[j]
            if cell is None or cell[2] == 0:
                continue
            text, style, width = cell
            if self.t_cur is None:
                parts.append(self._move(i, j))
            if style != t_style:
                parts.append(transition(t_style, style))
                t_style = style
            parts.append(text)
            col = j + width
            if single(text):
                self.t_cur = (i, col) if col < self.cols else None
            else:
                self.t_cur = None  # a glyph the terminal may measure otherwise: move before the next
        self.t_style = t_style
        out.append("".join(parts))

    def _scroll(self, changed: list[int], pending: dict[int, Row], out: list[str]) -> range | None:
        """If a block of rows moved up or down by a few lines, let the terminal move it
        (a scroll region and IND/RI, VT100) before the rows are diffed: the lines that
        stay are then not sent again. Every row of the region must be fully known after
        the frame (a cell the scroll moves must be redrawable). Adds the region's rows to
        `pending` and returns them, or None when no shift pays."""
        top, bottom = changed[0], changed[-1]
        shadow = self.shadow
        cols, rows = self.cols, self.rows

        def new_row(i: int) -> Row:
            return pending.get(i, shadow[i])

        def differ(a: Row, b: Row) -> int:
            return 0 if a == b else sum(map(ne, a, b))

        lo, hi = max(0, top - MAX_SHIFT), min(rows - 1, bottom + MAX_SHIFT)
        known = [None not in new_row(i) for i in range(lo, hi + 1)]
        base = {i: differ(new_row(i), shadow[i]) for i in range(top, bottom + 1)}
        # Shifts worth a closer look: some rows match a row k lines away exactly (cheap
        # whole-row comparisons; a scrolled chat keeps most of its rows whole).
        need = max(2, len(changed) // 4)
        shifts = [k for n in range(1, min(MAX_SHIFT, bottom - top) + 1) for k in (n, -n)
                  if sum(1 for i in changed if 0 <= i + k < rows and new_row(i) == shadow[i + k]) >= need]
        best: tuple[int, int, int, int] | None = None  # (gain, shift, first, last) of the region
        for k in shifts:
            # rows i in [top, bottom] that would show old row i + k: what that saves
            gains: list[int | None] = []
            for i in range(top, bottom + 1):
                src = i + k
                if 0 <= src < rows and known[i - lo]:
                    gains.append(base[i] - differ(new_row(i), shadow[src]))
                else:
                    gains.append(None)
            run_start, acc = 0, 0
            for idx, g in enumerate(gains):
                if g is None:
                    run_start, acc = idx + 1, 0
                    continue
                if acc <= 0:
                    run_start, acc = idx, 0
                acc += g
                if acc <= 16:
                    continue
                if k > 0:  # region [first, last]: rows first..last-k take old first+k..last
                    first, last = top + run_start, top + idx + k
                    blank = range(last - k + 1, last + 1)
                else:
                    first, last = top + run_start + k, top + idx
                    blank = range(first, first - k)
                if first < 0 or last >= rows or first < lo or last > hi:
                    continue
                if not all(known[b - lo] for b in blank):
                    continue
                cost = sum(cols - base.get(b, 0) for b in blank) + 4
                gain = acc - cost
                if gain > 16 and (best is None or gain > best[0]):
                    best = (gain, k, first, last)
        if best is None:
            return None
        _gain, k, first, last = best
        region = range(first, last + 1)
        for i in region:
            pending.setdefault(i, list(shadow[i]))
        seq = [f"\x1b[{first + 1};{last + 1}r"]
        if k > 0:
            seq.append(f"\x1b[{last + 1}H" + "\x1bD" * k)
        else:
            seq.append(f"\x1b[{first + 1}H" + "\x1bM" * -k)
        seq.append("\x1b[r")  # the whole screen again
        out.append("".join(seq))
        self.t_cur = None  # home on xterm and tmux, left where it was by others
        moved = [shadow[i] for i in region]
        for i in region:
            src = i + k - first
            shadow[i] = list(moved[src]) if 0 <= src < len(moved) else [None] * cols
        self.scrolls += 1
        return region


class QuietLinuxDriver(LinuxDriver):
    """Textual's Linux driver, its output through a QuietFilter (module notes)."""

    def __init__(self, *args: Any, **kwargs: Any) -> None:
        super().__init__(*args, **kwargs)
        self._init_quiet()

    def _init_quiet(self) -> None:
        self._lock = threading.RLock()
        self._quiet: QuietFilter | None = None
        self._quiet_failed = False
        self._inside = False  # a write under way (a signal handler's write can come in the middle)
        self._interrupted = False  # a write came in the middle of the one under way

    def _terminal_size(self) -> tuple[int, int]:
        try:
            size = os.get_terminal_size(self._file.fileno())  # type: ignore[union-attr]
            return size.columns, size.lines
        except (OSError, ValueError, AttributeError):
            return self._get_terminal_size()

    def invalidate(self) -> None:
        """Forget the terminal's contents (the app calls this on every resize)."""
        with self._lock:
            if self._quiet is not None:
                self._quiet.invalidate()

    def write(self, data: str) -> None:
        with self._lock:
            if self._quiet_failed or self._inside:
                # A write from inside a write (Textual's SIGTSTP handler suspending the app)
                # goes out as it is, and the filter is not trusted from then on.
                self._interrupted = self._inside
                self._quiet_failed = True
                super().write(data)
                return
            prior = self._quiet.carry if self._quiet is not None else ""
            self._inside = True
            try:
                cols, rows = self._terminal_size()
                if self._quiet is None:
                    self._quiet = QuietFilter(cols, rows)
                elif (cols, rows) != (self._quiet.cols, self._quiet.rows):
                    self._quiet.resize(cols, rows)
                sent = self._quiet.feed(data)
            except Exception:  # noqa: BLE001 - an optimisation must never cost a frame
                self._quiet_failed = True
                super().write("\x1b[0m" + prior + data)
                return
            finally:
                self._inside = False
            if self._interrupted:  # a write came in the middle (a suspend, a resume): the
                sent = "\x1b[0m" + prior + data  # terminal may show anything; this frame whole
            if sent:
                super().write(sent)

