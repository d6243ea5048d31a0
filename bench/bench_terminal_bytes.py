"""Bytes the TUI writes to a real terminal per character of reply: what a slow SSH link carries.

    .venv/bin/python bench/bench_terminal_bytes.py [--cases prose2k,prose20k,code,reasoning] [--idle-s 60]
        [--quiet both|on|off] [--sync] [--record DIR]

The installed `aigc-chat` runs in a pseudo-terminal (tests/pty_app.py, 100x30,
TERM=xterm-256color) on the paced plugin backend (tests/paced_backend.py): the reply is a
fixed text, `--piece-chars` characters per piece (a token) every `--delay-ms`, so every run
streams the same bytes at the same pace (about 40 tokens/s by default, like the default
model here). Every byte the app writes while the reply streams is counted and printed
beside the reply's own size (and the CPU time the app used meanwhile), then the bytes an
idle screen writes per minute. Each case runs
twice by default, with `[tui] quiet_output` off (Textual's own output) and on
(tui/quiet_output.py), side by side. Cases:

- prose2k: a 2,000-character reply of plain paragraphs;
- prose20k: a 20,000-character one (the scrolled chat grows well past the screen);
- code: 2,000 characters with a fenced Python block in the middle;
- reasoning: a `<think>` block of 1,000 characters (shown live, folded when the answer
  starts) and a 1,000-character answer.
"""

from __future__ import annotations

import argparse
import os
import random
import shutil
import sys
import tempfile
import time
from pathlib import Path

REPO = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(REPO))

from tests.paced_backend import install  # noqa: E402 - importable once the checkout is on sys.path
from tests.pty_app import PtyApp  # noqa: E402

WORDS = ("the keeper climbs the stairs at dusk and trims the wick while ships pass far out on "
         "the grey water and gulls circle the rocks below the lamp").split()


def prose(chars: int, seed: int = 1) -> str:
    rng = random.Random(seed)
    out: list[str] = []
    size = 0
    while size < chars:
        sentence = " ".join(rng.choice(WORDS) for _ in range(rng.randint(8, 16))).capitalize() + ". "
        if rng.random() < 0.2:
            sentence += "\n\n"
        out.append(sentence)
        size += len(sentence)
    return "".join(out)[:chars].rstrip() + "."


def code_reply(chars: int) -> str:
    code = "```python\n" + "".join(
        f"def step_{i}(lamp, oil):\n    if oil < {i}:\n        return lamp.dim()\n    return lamp.bright({i})\n\n"
        for i in range(12)) + "```\n\n"
    head = prose(chars // 4, seed=2) + "\n\n"
    return head + code + prose(max(100, chars - len(head) - len(code)), seed=3)


def reasoning_reply(think: int, answer: int) -> str:
    return f"<think>{prose(think, seed=4)}</think>\n\n{prose(answer, seed=5)}"


CASES = {
    "prose2k": lambda: prose(2000),
    "prose20k": lambda: prose(20000),
    "code": lambda: code_reply(2000),
    "reasoning": lambda: reasoning_reply(1000, 1000),
}


def cpu_seconds(pid: int) -> float:
    """User + system CPU time of a running process so far (Linux /proc; 0 elsewhere)."""
    try:
        fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    except OSError:
        return 0.0
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def run_case(name: str, text: str, root: Path, exe: str, pythonpath: str, a: argparse.Namespace,
             quiet: bool) -> int:
    """One case with `[tui] quiet_output = quiet`; prints its line, returns the bytes written."""
    text_file = root / f"{name}.txt"
    text_file.write_text(text, encoding="utf-8")
    Path(os.environ["AIGC_CHAT_CONFIG"]).write_text(
        f'backend = "paced"\n[paced]\ntext_file = "{text_file}"\npiece_chars = {a.piece_chars}\n'
        f"delay_ms = {a.delay_ms}\n[generation]\nmax_tokens = {len(text) // a.piece_chars + 10}\n"
        f"[tui]\nstream_interval_ms = {a.interval_ms}\nquiet_output = {str(quiet).lower()}\n")
    env = dict(os.environ, TERM="xterm-256color", COLORTERM="truecolor", PYTHONPATH=pythonpath)
    app = PtyApp([exe, "--no-history"], env)
    try:
        if not app.read(60, marker=b"idle"):
            raise SystemExit(f"{name}: the app did not start in 60 s")
        if a.sync:  # "synchronized output supported": Textual then wraps every frame in ESC[?2026h/l
            app.write(b"\x1b[?2026;2$y")
        app.read(1.0)
        start = len(app.buf)
        cpu0 = cpu_seconds(app.pid)
        t0 = time.perf_counter()
        app.write(b"Tell me about the lighthouse.\r")
        if not app.read(600, marker=b"tok/s", since=start):
            raise SystemExit(f"{name}: the reply did not end in 600 s")
        app.read(0.5)  # the last paint after the stats line
        elapsed = time.perf_counter() - t0
        sent = len(app.buf) - start
        cpu = cpu_seconds(app.pid) - cpu0
        idle = 0
        measure_idle = bool(a.idle_s) and name == a.idle_case and quiet == (a.quiet != "off")
        if measure_idle:
            mark = len(app.buf)
            app.read(a.idle_s)
            idle = len(app.buf) - mark
    finally:
        app.close()
    label = "quiet" if quiet else "textual"
    if a.record:
        Path(a.record).mkdir(parents=True, exist_ok=True)
        (Path(a.record) / f"{name}-{label}.raw").write_bytes(bytes(app.buf))  # start-up included
    chars = len(text)
    line = (f"{name:10} {label:7} reply {chars:6,} chars  {sent:10,} bytes written in {elapsed:5.1f} s  "
            f"{sent / chars:6.1f} bytes per reply char  {sent / elapsed / 1024:6.1f} KiB/s  app CPU {cpu:5.2f} s")
    print(line, flush=True)
    if measure_idle:
        print(f"{'idle':10} {label:7} after {name}: {idle:,} bytes in {a.idle_s:.0f} s "
              f"({idle * 60 / a.idle_s:.0f} bytes/min)", flush=True)
    return sent


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    p.add_argument("--cases", default=",".join(CASES), help="comma-separated: " + ", ".join(CASES))
    p.add_argument("--delay-ms", type=int, default=25, help="milliseconds between pieces")
    p.add_argument("--piece-chars", type=int, default=5, help="characters per piece (a token)")
    p.add_argument("--interval-ms", type=int, default=50, help="[tui] stream_interval_ms")
    p.add_argument("--idle-s", type=float, default=20.0, help="seconds of idle screen measured (0: none)")
    p.add_argument("--idle-case", default="prose2k", help="the case after which the idle screen is measured")
    p.add_argument("--quiet", choices=("on", "off", "both"), default="both",
                   help="[tui] quiet_output for the runs: on, off (Textual's own output) or both, side by side "
                        "(the idle screen is measured with it on)")
    p.add_argument("--sync", action="store_true",
                   help="answer Textual's synchronized-output query as kitty, WezTerm, iTerm2, foot or Windows "
                        "Terminal do (every frame then comes wrapped in ESC[?2026h ... ESC[?2026l)")
    p.add_argument("--record", default="", metavar="DIR",
                   help="write each case's raw terminal stream (from start-up on) to DIR/CASE.raw")
    a = p.parse_args(argv)
    names = [n for n in a.cases.split(",") if n]
    unknown = [n for n in names if n not in CASES]
    if unknown:
        p.error(f"unknown case(s): {', '.join(unknown)}")
    exe = shutil.which("aigc-chat", path=str(Path(sys.executable).parent)) or "aigc-chat"
    with tempfile.TemporaryDirectory(prefix="aigc-bytes-") as tmp:
        root = Path(tmp)
        for var, sub in (("AIGC_CHAT_CONFIG", "config.toml"), ("AIGC_CHAT_DATA_DIR", "data"),
                         ("AIGC_CHAT_CACHE_DIR", "cache"), ("XDG_CONFIG_HOME", "xdg-config"),
                         ("XDG_DATA_HOME", "xdg-data"), ("XDG_CACHE_HOME", "xdg-cache")):
            os.environ[var] = str(root / sub)
        pythonpath = install(root)
        print(f"aigc-chat in a 100x30 pty, paced backend: {a.piece_chars} chars every {a.delay_ms} ms, "
              f"[tui] stream_interval_ms = {a.interval_ms}, synchronized output {'on' if a.sync else 'off'}")
        for name in names:
            text = CASES[name]()
            sent = {quiet: run_case(name, text, root, exe, pythonpath, a, quiet)
                    for quiet in ((False, True) if a.quiet == "both" else (a.quiet == "on",))}
            if len(sent) == 2:
                print(f"{name:10} quiet output sends {sent[True] / sent[False]:.3f} of Textual's bytes "
                      f"({sent[False] / max(1, sent[True]):.1f}x fewer)", flush=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
