"""Quiet redraws (tui/quiet_output.py): what the filter sends must leave the terminal showing
exactly what Textual's own output would, only with fewer bytes.

The oracle is a terminal emulator (pyte): one screen fed what Textual (or a generator of
Textual-shaped frames) writes, one fed what the filter makes of it, compared cell by cell
(glyph, colours, attributes) after every write. The streams are cut at random places,
inside escape sequences too."""

from __future__ import annotations

import os
import random
import re
from pathlib import Path

import pyte
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from aigc_chat.tui.quiet_output import DEFAULT, QuietFilter, QuietLinuxDriver, apply_sgr, transition
from tests.paced_backend import install
from tests.pty_app import PtyApp

KITTY = re.compile(r"\x1b\[[<>=][0-9;]*u")  # pyte prints these as text


def cells(screen: pyte.Screen) -> list[list[tuple[object, ...]]]:
    return [[(c.data, c.fg, c.bg, c.bold, c.italics, c.underscore, c.reverse, c.strikethrough)
             for c in (screen.buffer[y][x] for x in range(screen.columns))] for y in range(screen.lines)]


class Pair:
    """Two emulated terminals: one fed the raw stream, one what the filter sends."""

    def __init__(self, cols: int, rows: int) -> None:
        self.raw, self.quiet = pyte.Screen(cols, rows), pyte.Screen(cols, rows)
        self.raw_stream, self.quiet_stream = pyte.Stream(self.raw), pyte.Stream(self.quiet)
        self.filter = QuietFilter(cols, rows)
        self.raw_bytes = self.sent_bytes = 0

    def feed(self, data: str) -> None:
        sent = self.filter.feed(data)
        self.raw_bytes += len(data.encode())
        self.sent_bytes += len(sent.encode())
        self.raw_stream.feed(KITTY.sub("", data))
        self.quiet_stream.feed(KITTY.sub("", sent))

    def same(self) -> bool:
        return cells(self.raw) == cells(self.quiet)


# -- styles ------------------------------------------------------------------------------------
STYLES = st.builds(
    lambda attrs, fg, bg: (frozenset(attrs), fg, bg, None),
    st.sets(st.sampled_from([1, 2, 3, 4, 5, 7, 9, 21, 53])),
    st.sampled_from([None, "31", "97", "38;5;208", "38;2;224;224;224", "38;2;1;120;212"]),
    st.sampled_from([None, "44", "48;5;17", "48;2;18;18;18", "48;2;30;30;30"]),
)


@given(STYLES, STYLES)
def test_a_style_change_sends_what_takes_the_terminal_from_one_style_to_the_other(a, b) -> None:
    seq = transition(a, b)
    if a == b:
        assert seq == ""
        return
    assert seq.startswith("\x1b[") and seq.endswith("m")
    assert apply_sgr(a, seq[2:-1]) == b
    assert len(seq) <= len(transition(None, b))  # never longer than a reset and the whole style


def test_sgr_parsing_knows_textual_styles_and_gives_up_on_the_rest() -> None:
    style = apply_sgr(DEFAULT, "1;38;2;224;224;224;48;2;18;18;18")
    assert style == (frozenset({1}), "38;2;224;224;224", "48;2;18;18;18", None)
    assert apply_sgr(style, "0") == DEFAULT
    assert apply_sgr(style, "22;39") == (frozenset(), None, "48;2;18;18;18", None)
    assert apply_sgr(DEFAULT, "4:3") is None  # sub-parameters (curly underline): not modelled
    assert apply_sgr(DEFAULT, "10") is None  # fonts: not modelled
    assert apply_sgr(None, "1") is None  # a change on top of an unknown style stays unknown
    assert transition(DEFAULT, (frozenset({1}), None, None, None)) == "\x1b[1m"


# -- frames shaped like Textual's --------------------------------------------------------------
GLYPHS = "abcdefgh ▔▁▊▎│─…"


ANSI = ["", "1", "38;2;224;224;224;48;2;18;18;18", "3;38;2;1;120;212;48;2;30;30;30", "7;38;5;208", "4;31;44", "2;9"]


class Frames:
    """A screen Textual would draw, and writes that draw its changes the way Textual does:
    chops (a cursor move and styled runs), full repaints with line feeds, a block scrolled
    by a few lines and repainted whole; now and then a wide glyph, a combining mark, a mode
    sequence, or something the filter must pass through and forget the screen for."""

    def __init__(self, rng: random.Random, cols: int, rows: int) -> None:
        self.rng, self.cols, self.rows = rng, cols, rows
        self.lines = [[(" ", "") for _ in range(cols)] for _ in range(rows)]

    def _runs(self, y: int, x1: int, x2: int) -> str:
        """Cells x1..x2 of line y as Textual writes them: each run of one style as
        `ESC[{style}m text ESC[0m` (plain text for no style)."""
        out = []
        line = self.lines[y]
        x = x1
        while x < x2:
            ansi = line[x][1]
            end = x
            while end < x2 and line[end][1] == ansi:
                end += 1
            text = "".join(line[i][0] for i in range(x, end))
            out.append(f"\x1b[{ansi}m{text}\x1b[0m" if ansi else text)
            x = end
        return "".join(out)

    def _write_text(self, y: int, x: int, n: int) -> None:
        rng = self.rng
        line = self.lines[y]
        # a wide glyph cut in half loses its other half (Textual would draw a space there):
        # else the line would be wider than the screen, which Textual never writes
        if x > 0 and line[x][0] == "":
            line[x - 1] = (" ", line[x - 1][1])
        if x + n < self.cols and line[x + n][0] == "":
            line[x + n] = (" ", line[x + n][1])
        ansi = rng.choice(ANSI)
        i = x
        while i < x + n:
            if rng.random() < 0.05 and i + 1 < x + n:
                self.lines[y][i], self.lines[y][i + 1] = ("中", ansi), ("", ansi)
                i += 2
                continue
            ch = rng.choice(GLYPHS)
            if rng.random() < 0.03:
                ch = "e\u0301"
            self.lines[y][i] = (ch, ansi)
            if rng.random() < 0.2:
                ansi = rng.choice(ANSI)
            i += 1

    def chops(self) -> str:
        out = []
        for _ in range(self.rng.randint(1, 4)):
            y = self.rng.randrange(self.rows)
            x = self.rng.randrange(self.cols)
            n = self.rng.randint(1, self.cols - x)
            if self.lines[y][x][0] == "" and x > 0:  # Textual never starts a chop inside a glyph
                x -= 1
                n += 1
            if x + n < self.cols and self.lines[y][x + n][0] == "":
                n += 1
            self._write_text(y, x, n)
            out.append(f"\x1b[{y + 1};{x + 1}H" + self._runs(y, x, x + n))
        return "".join(out)

    def full(self) -> str:
        for y in range(self.rows):
            if self.rng.random() < 0.3:
                self._write_text(y, 0, self.cols)
        if self.rng.random() < 0.2:  # line feeds and no cursor moves: passed through
            return "\x1b[1;1H" + "\r\n".join(self._runs(y, 0, self.cols) for y in range(self.rows))
        # Textual's LayoutUpdate: a cursor move, the line, a line feed
        return "\n".join(f"\x1b[{y + 1};1H" + self._runs(y, 0, self.cols) for y in range(self.rows))

    def scroll(self) -> str:
        top = self.rng.randrange(self.rows - 3)
        bottom = self.rng.randrange(top + 3, self.rows)
        k = self.rng.choice([1, 1, 2, 3, -1, -2])
        block = self.lines[top:bottom + 1]
        if k > 0:
            block = block[k:] + [[(" ", "")] * self.cols for _ in range(k)]
        else:
            block = [[(" ", "")] * self.cols for _ in range(-k)] + block[:k]
        self.lines[top:bottom + 1] = [list(r) for r in block]
        for y in range(top, bottom + 1):
            if self.rng.random() < 0.3:
                self._write_text(y, self.rng.randrange(self.cols // 2), 3)
        return "".join(f"\x1b[{y + 1};1H" + self._runs(y, 0, self.cols) for y in range(top, bottom + 1))

    def next(self) -> str:
        r = self.rng.random()
        body = self.chops() if r < 0.6 else self.scroll() if r < 0.85 else self.full()
        extra = self.rng.random()
        if extra < 0.05:
            body = "\x1b[2J" + self.full()  # not modelled: passed through, the screen forgotten
        elif extra < 0.08:
            body = self.chops() + "\x1b]8;id=1;https://x\x1b\\" + self.chops() + "\x1b]8;;\x1b\\"
        elif extra < 0.15:
            body = "\x1b[?25l" + body + "\x1b]22;pointer\x07"
        return "\x1b[?2026h" + body + f"\x1b[{self.rng.randint(1, self.rows)};1H" + "\x1b[?2026l"


@settings(max_examples=25, deadline=None)
@given(st.integers(0, 2**32 - 1))
def test_the_filtered_screen_is_textuals_screen_after_every_write(seed: int) -> None:
    rng = random.Random(seed)
    cols, rows = rng.choice([(20, 8), (33, 12)])
    pair = Pair(cols, rows)
    frames = Frames(rng, cols, rows)
    pair.feed("\x1b[?1049h\x1b[?7l")
    for _ in range(40):
        data = frames.next()
        cuts = sorted(rng.sample(range(len(data)), min(2, len(data)))) if rng.random() < 0.3 else []
        for a, b in zip([0, *cuts], [*cuts, len(data)], strict=True):  # cut anywhere, escapes too
            pair.feed(data[a:b])
        assert pair.same(), f"seed {seed}"


def test_a_scrolled_block_is_moved_by_the_terminal_not_sent_again() -> None:
    rng = random.Random(5)
    pair = Pair(40, 20)
    frames = Frames(rng, 40, 20)
    for y in range(20):
        frames._write_text(y, 0, 40)
    pair.feed("\x1b[?7l" + "".join(f"\x1b[{y + 1};1H" + frames._runs(y, 0, 40) for y in range(20)))
    before, raw_before = pair.sent_bytes, pair.raw_bytes
    for _ in range(10):  # the chat scrolling a line at a time as a reply grows
        frames.lines[2:18] = [list(r) for r in frames.lines[3:18]] + [[(" ", "")] * 40]
        frames._write_text(17, 0, 30)
        pair.feed("".join(f"\x1b[{y + 1};1H" + frames._runs(y, 0, 40) for y in range(2, 18)))
        assert pair.same()
    assert pair.filter.scrolls == 10
    # each write repainted 16 rows; only about the new line (and the scroll) went out
    assert pair.sent_bytes - before < (pair.raw_bytes - raw_before) / 5


def test_a_mark_after_a_wide_glyph_keeps_the_text_after_it() -> None:
    """A combining mark, a variation selector or a joiner right after a wide glyph (emoji
    sequences, Japanese voiced marks): the glyph keeps it and the rest of the run is drawn."""
    pair = Pair(20, 4)
    frame = "\x1b[1;1H中\u0301xy\x1b[2;1H\x1b[1m世\u0301\u0301dev\x1b[0m"
    pair.feed(frame)
    assert pair.same()
    assert pair.quiet.display[0].startswith("中xy") and pair.quiet.display[1].startswith("世dev")
    assert pair.filter.passed == 0 and pair.filter.feed(frame) == ""  # modelled: nothing sent again
    # (pyte drops what follows a joiner or a variation selector: checked on what is sent)
    sent = QuietFilter(20, 4).feed("\x1b[1;1H\x1b[1m👨\u200d💻 dev\x1b[0m and 👍\ufe0f more")
    assert "👨\u200d" in sent and "💻" in sent and " dev" in sent and "👍\ufe0f" in sent and " more" in sent
    pair.feed("\x1b[3;1Hab\x1b[3;19H中\u0301q")  # a glyph cut by the edge: the rest as Textual wrote it
    assert pair.same() and pair.filter.passed == 1


def test_text_past_the_last_column_lands_where_the_terminal_would_put_it() -> None:
    """A frame wider than the terminal (a resize not seen yet): with autowrap off (Textual's
    mode) what runs past the edge overwrites the last column, even when the cells before it
    were unchanged and not sent, so the terminal's cursor was somewhere else."""
    pair = Pair(10, 3)
    pair.feed("\x1b[?7l\x1b[1;1Habcdefgh…j")
    pair.feed("\x1b[2;1Hxy\x1b[1;1Habcdefgh…jZ")
    assert pair.same()
    assert pair.quiet.display[:2] == ["abcdefgh…Z", "xy        "]


def test_what_is_not_understood_passes_through_unchanged_and_forgets_the_screen() -> None:
    f = QuietFilter(10, 3)
    f.feed("\x1b[1;1H\x1b[1mabc\x1b[0m")
    assert f.feed("\x1b[1;1H\x1b[1mabc\x1b[0m") == ""  # nothing changed: nothing sent
    assert f.feed("\x1b[?1000h") == "\x1b[?1000h"  # a mode sequence goes as it is
    sent = f.feed("\x1b[2J")
    assert sent.endswith("\x1b[2J")
    # the screen is forgotten: the same cells are sent again in full
    assert "abc" in f.feed("\x1b[1;1H\x1b[1mabc\x1b[0m")
    sent = f.feed("\x1b[1;1H\x1b[5;3Xq")  # an unknown sequence, then text: both where Textual meant
    assert "\x1b[5;3X" in sent and sent.endswith("q")


def stream_reply(cli: str, config: Path, tmp_path: Path, reply: str, quiet: bool) -> bytes:
    """What the real app writes to a 60x16 pseudo-terminal from start-up to the end of a
    paced reply of `reply`."""
    pythonpath = install(tmp_path)
    text = tmp_path / "reply.txt"
    text.write_text(reply)
    config.parent.mkdir(parents=True, exist_ok=True)
    config.write_text(f'backend = "paced"\n[paced]\ntext_file = "{text}"\npiece_chars = 12\ndelay_ms = 5\n'
                      f"[generation]\nmax_tokens = 400\n[tui]\nquiet_output = {str(quiet).lower()}\n")
    env = dict(os.environ, TERM="xterm-256color", COLORTERM="truecolor", PYTHONPATH=pythonpath)
    app = PtyApp([cli, "--no-history"], env, rows=16, cols=60)
    try:
        assert app.read(60, marker=b"idle")
        app.read(0.3)
        app.write(b"Go\r")
        assert app.read(60, marker=b"tok/s", quiet=0.3)
    finally:
        app.close()
    return bytes(app.buf)


def test_model_output_stays_inert_with_quiet_output(cli: str, isolated_dirs: dict[str, Path], tmp_path: Path) -> None:
    """The filter resends Textual's cells, never anything of its own: a reply full of escape
    sequences, markup and bidi controls reaches the terminal as inert as without it."""
    hostile = ("Plain [bold]not bold[/] \x1b]0;pwned\x07\x1b[2J\x1b[31mred\x1b[0m \u202eevil\u202c "
               "\x1b]52;c;cHduZWQ=\x07 \x1b]8;;http://x\x1b\\link\x1b]8;;\x1b\\ end. ") * 8
    data = stream_reply(cli, isolated_dirs["config"], tmp_path, hostile, quiet=True)
    for bad in (b"\x1b]0;", b"\x1b[2J", b"\x1b[31m", b"\xe2\x80\xae", b"\x1b]52;c;cHdu", b"\x1b]8;"):
        assert bad not in data, bad
    assert b"[bold]not bold[/]" in data  # shown, literally


def test_synchronized_output_wraps_what_is_sent_and_an_empty_frame_sends_nothing() -> None:
    f = QuietFilter(10, 3)
    frame = "\x1b[1;1H\x1b[1mabc\x1b[0m"
    # Textual writes the start, the frame and the end as three writes
    assert [f.feed(x) for x in ("\x1b[?2026h", frame, "\x1b[?2026l")] == ["", "\x1b[?2026h\x1b[1H\x1b[0;1mabc",
                                                                         "\x1b[?2026l"]
    assert [f.feed(x) for x in ("\x1b[?2026h", frame, "\x1b[?2026l")] == ["", "", ""]  # nothing changed
    assert f.feed("\x1b[?2026h" + frame.replace("b", "x") + "\x1b[?2026l") == "\x1b[?2026h\x1b[2Gx\x1b[?2026l"


REPLIES = {
    "prose": " ".join(f"word{i}" for i in range(160)) + "\n\n" + "- item\n" * 12,
    # wide glyphs, emoji (which terminals measure differently), combining marks
    "wide": (" ".join(f"灯塔{i} 🚢 cafe\u0301 ✨\uff57\uff49\uff44\uff45" for i in range(50))
             + "\n\n" + "- 項目 🌊\n" * 10),
}


@pytest.mark.parametrize("reply", sorted(REPLIES))
def test_a_recorded_textual_stream_of_a_scrolling_reply(cli: str, isolated_dirs: dict[str, Path],
                                                       tmp_path: Path, reply: str) -> None:
    """The real Textual output of the real app (quiet output off) streaming a reply that
    scrolls, in a pseudo-terminal; replayed through the filter cut at random places."""
    raw = stream_reply(cli, isolated_dirs["config"], tmp_path, REPLIES[reply], quiet=False)
    data = raw.decode("utf-8", "replace")
    data = data[:data.rfind("\x1b[<u")]  # up to the app's exit (pyte knows no alternate screen)
    rng = random.Random(1)
    pair = Pair(60, 16)
    pos = 0
    while pos < len(data):
        end = pos + rng.randint(100, 6000)
        pair.feed(data[pos:end])
        assert pair.same(), f"at {pos}"
        pos = end
    # How many bytes this saves depends on how Textual batched the frames (under load it
    # draws fewer, larger ones): bench/bench_terminal_bytes.py measures it; here, only that
    # the screen is right. The saving itself is held by the scrolled-block test above.


# -- the driver ------------------------------------------------------------------------------
class _Sink:
    def __init__(self) -> None:
        self.data: list[str] = []

    def write(self, text: str) -> None:
        self.data.append(text)


def _driver(monkeypatch: pytest.MonkeyPatch) -> tuple[QuietLinuxDriver, _Sink]:
    driver = QuietLinuxDriver.__new__(QuietLinuxDriver)  # no terminal, no signal handlers
    QuietLinuxDriver._init_quiet(driver)
    sink = _Sink()
    driver._writer_thread = sink  # type: ignore[assignment]
    monkeypatch.setattr(QuietLinuxDriver, "_terminal_size", lambda self: (10, 3))
    return driver, sink


def test_the_driver_sends_textuals_writes_as_they_are_if_the_filter_fails(monkeypatch: pytest.MonkeyPatch) -> None:
    driver, sink = _driver(monkeypatch)
    driver.write("\x1b[1;1Habc")
    driver.write("\x1b[1;1Habc")
    assert "".join(sink.data).count("abc") == 1

    def boom(self: QuietFilter, data: str) -> str:
        raise RuntimeError("a bug")

    monkeypatch.setattr(QuietFilter, "feed", boom)
    driver.write("\x1b[2;1Hxyz")
    driver.write("\x1b[1;1Habc")  # from now on everything goes out as Textual made it
    assert sink.data[-2:] == ["\x1b[0m\x1b[2;1Hxyz", "\x1b[1;1Habc"]


def test_quiet_output_is_installed_unless_switched_off(tmp_path: Path) -> None:
    from textual.drivers.linux_driver import LinuxDriver

    from aigc_chat.config import Config
    from aigc_chat.tui.app import ChatApp

    on = ChatApp(Config(path=tmp_path / "c.toml"))
    assert on.driver_class is QuietLinuxDriver
    off = ChatApp(Config(path=tmp_path / "c.toml", tui={"quiet_output": False}))
    assert off.driver_class is LinuxDriver


def test_a_resize_forgets_the_screen(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> None:
    """After a resize a terminal may show anything (cleared, reflowed, cut): every cell the
    next frames draw is sent again, whether the app says so or the size is seen to change."""
    from aigc_chat.config import Config
    from aigc_chat.tui.app import ChatApp

    driver, sink = _driver(monkeypatch)
    driver.write("\x1b[1;1Habc")
    driver.write("\x1b[1;1Habc")
    assert "".join(sink.data).count("abc") == 1
    app = ChatApp(Config(path=tmp_path / "c.toml"))
    app._driver = driver
    app.on_resize()  # Textual's Resize event
    driver.write("\x1b[1;1Habc")
    assert "".join(sink.data).count("abc") == 2
    monkeypatch.setattr(QuietLinuxDriver, "_terminal_size", lambda self: (12, 4))  # no event: a new size
    driver.write("\x1b[1;1Habc")
    assert "".join(sink.data).count("abc") == 3


def test_a_write_from_inside_a_write_goes_out_as_it_is(monkeypatch: pytest.MonkeyPatch) -> None:
    """Textual's SIGTSTP handler suspends the app (leaving the alternate screen) whenever the
    signal comes, a write under way included: that write must not wait on the first, nor
    be mixed into its half-done frame."""
    driver, sink = _driver(monkeypatch)
    feed = QuietFilter.feed

    def interrupted(self: QuietFilter, data: str) -> str:
        driver.write("\x1b[?1049l")  # the signal handler's write
        return feed(self, data)

    monkeypatch.setattr(QuietFilter, "feed", interrupted)
    driver.write("\x1b[1;1Habc")
    assert sink.data[0] == "\x1b[?1049l" and "abc" in sink.data[1]
    monkeypatch.setattr(QuietFilter, "feed", feed)
    driver.write("\x1b[1;1Habc")  # the filter is not trusted any more: Textual's output as it is
    assert sink.data[-1] == "\x1b[1;1Habc"


def test_a_frame_a_suspend_interrupted_goes_out_whole(monkeypatch: pytest.MonkeyPatch) -> None:
    """SIGTSTP/SIGCONT handlers leave and re-enter the alternate screen (clearing it) in the
    middle of a write: that write's frame is sent as Textual made it, not as the difference
    from a screen that is gone."""
    driver, sink = _driver(monkeypatch)
    driver.write("\x1b[1;1Habc")
    feed = QuietFilter.feed

    def interrupted(self: QuietFilter, data: str) -> str:
        driver.write("\x1b[?1049l")  # suspended ...
        driver.write("\x1b[?1049h")  # ... and resumed: a cleared alternate screen
        return feed(self, data)

    monkeypatch.setattr(QuietFilter, "feed", interrupted)
    driver.write("\x1b[1;1Habc")  # unchanged for the filter, but the screen was cleared
    assert sink.data[-3:] == ["\x1b[?1049l", "\x1b[?1049h", "\x1b[0m\x1b[1;1Habc"]


@pytest.mark.asyncio
async def test_a_model_load_ends_with_the_whole_screen_sent_again(tmp_path: Path) -> None:
    """llama-cpp-python points fd 1 at /dev/null while it loads: frames drawn meanwhile are
    lost, so quiet output must forget the screen and Textual repaint it when a load ends
    (loaded or failed); without it a stale status line stayed (seen in tmux)."""
    from aigc_chat.tui.app import ChatApp
    from aigc_chat.tui.events import ModelFailed, ModelLoaded
    from tests.scripted_backend import ScriptedBackend
    from tests.tui_driver import make_config, wait_for, wait_idle

    app = ChatApp(make_config(tmp_path), store=None, backend=ScriptedBackend(["ok"]))
    async with app.run_test() as pilot:
        await wait_idle(pilot, app)
        forgot: list[str] = []
        app._driver.invalidate = lambda: forgot.append("screen")  # type: ignore[union-attr]
        for event in (ModelLoaded(app.conversation.backend, []), ModelFailed("no such file")):
            seen = len(forgot)
            app.chat_screen.post_message(event)
            await wait_for(pilot, lambda seen=seen: len(forgot) > seen, 10, f"the repaint after {type(event).__name__}")
