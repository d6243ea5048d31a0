"""`aigc-chat pull REF` and `--model hf:…`: the terminal side of aigc_chat.hub.

Progress goes to stderr: on a terminal one bar redrawn in place (size, rate, ETA); on a pipe
or a log one line per 10%, so a log of a 20 GB download stays readable. The path of the model
goes to stdout, so `aigc-chat -m "$(aigc-chat pull hf:ORG/REPO)"` works.
"""

from __future__ import annotations

import sys
import time
from pathlib import Path
from typing import TextIO

from aigc_chat.argtypes import OneLineParser, text
from aigc_chat.cli import PROG
from aigc_chat.errors import UsageError
from aigc_chat.sanitize import sanitize


class ProgressPrinter:
    """on_progress for the terminal. `clock` is injectable for tests."""

    def __init__(self, stream: TextIO, tty: bool, label: str, clock=time.monotonic) -> None:
        self.stream = stream
        self.tty = tty
        self.label = sanitize(label)
        self.clock = clock
        self.start = clock()
        self.start_done: int | None = None
        self.last_draw = 0.0
        self.next_tenth = 1
        self.drawn = False

    def __call__(self, done: int, total: int, name: str) -> None:
        now = self.clock()
        if self.start_done is None:
            self.start_done = done  # what was already on disk: not part of the rate
            self.next_tenth = done * 10 // total + 1 if total else 1
        if self.tty:
            if now - self.last_draw >= 0.1 or done >= total:
                self.last_draw = now
                self.stream.write("\r\x1b[2K" + self.bar(done, total, now))
                self.stream.flush()
                self.drawn = True
            return
        while total and done * 10 >= self.next_tenth * total and self.next_tenth <= 10:
            self.stream.write(f"{self.label}: {self.next_tenth * 10}% {self.figures(done, total, now)}\n")
            self.stream.flush()
            self.next_tenth += 1

    def figures(self, done: int, total: int, now: float) -> str:
        return figures(done, total, done - (self.start_done or 0), now - self.start)

    def bar(self, done: int, total: int, now: float, width: int = 24) -> str:
        frac = done / total if total else 1.0
        fill = int(frac * width)
        return f"{self.label} [{'#' * fill}{'.' * (width - fill)}] {frac * 100:5.1f}% {self.figures(done, total, now)}"

    def end(self) -> None:
        if self.tty and self.drawn:
            self.stream.write("\n")
            self.stream.flush()
            self.drawn = False


def figures(done: int, total: int, moved: int, elapsed: float) -> str:
    """`120 MB / 265 MB, 3.4 MB/s, ETA 43s`: `moved` is what arrived in `elapsed` seconds (a resumed
    download's earlier bytes are not part of the rate)."""
    from aigc_chat.discovery import human_size

    rate = moved / max(elapsed, 1e-6)
    left = (total - done) / rate if rate > 0 else None
    eta = "" if done >= total else f", ETA {_duration(left)}" if left is not None else ", ETA ?"
    return f"{human_size(done)} / {human_size(total)}, {human_size(rate)}/s{eta}"


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "?"
    s = int(seconds + 0.5)
    if s >= 3600:
        return f"{s // 3600}h{s % 3600 // 60:02d}m"
    return f"{s // 60}m{s % 60:02d}s" if s >= 60 else f"{s}s"


def _isatty(stream: TextIO) -> bool:
    try:
        return bool(stream.isatty())
    except (AttributeError, ValueError):
        return False


def pull_ref(ref_text: str, err: TextIO | None = None, revision: str = "main", quiet: bool = False) -> Path:
    """Pull (or find in the cache) what `ref_text` names; the model's path. Ctrl-C keeps the partial file."""
    from aigc_chat import hub, hub_ref
    from aigc_chat.discovery import human_size

    err = err or sys.stderr
    ref = hub_ref.parse_ref(ref_text, revision)
    cache = hub.cache_dir()
    if hub.offline():
        local = hub.find_local(ref, cache)
        if local is not None:
            return local
    p = hub.plan(ref)
    files = ", ".join(f.name for f in p.files)
    if not quiet:
        have = hub.partial_bytes(p, cache)
        resume = f", {human_size(have)} already here" if 0 < have < p.total else ""
        err.write(sanitize(f"{PROG}: {ref.repo} {p.quant or ''} ({files}): {human_size(p.total)}{resume}\n"))
    label = ref.repo.split("/")[-1] + (f" {p.quant}" if p.quant else "")
    printer = None if quiet else ProgressPrinter(err, _isatty(err), label)
    try:
        path = hub.pull(p, cache, on_progress=printer)
    except KeyboardInterrupt:
        if printer is not None:
            printer.end()
        have = hub.partial_bytes(p, cache)
        err.write(sanitize(f"{PROG}: interrupted: {human_size(have)} of {human_size(p.total)} kept in {cache}; "
                           "run the same command again to go on\n"))
        raise
    except BaseException:
        if printer is not None:
            printer.end()
        raise
    if printer is not None:
        printer.end()
    if not quiet:
        err.write(sanitize(f"{PROG}: ready: {path} (sha256 checked, GGUF header read)\n"))
    return path


def main(argv: list[str]) -> int:
    p = OneLineParser(prog=f"{PROG} pull",
                      description="Download a GGUF model from a Hugging Face hub into the hub cache "
                                  "(HF_HUB_CACHE / HF_HOME), where `aigc-chat models` finds it.",
                      epilog="REF: hf:ORG/REPO[:QUANT] (default quant Q4_K_M), hf:ORG/REPO/FILE.gguf, or "
                             "ORG/REPO:QUANT. Environment: HF_ENDPOINT, HF_TOKEN, HF_HUB_CACHE, HF_HOME, "
                             "HF_HUB_OFFLINE. Ctrl-C keeps the partial file: the same command continues it.")
    p.add_argument("ref", metavar="REF", type=text)
    p.add_argument("--revision", metavar="REV", default="main", type=text, help="branch, tag or commit (default main)")
    p.add_argument("--quiet", "-q", action="store_true", help="no progress; print only the path")
    args = p.parse_args(argv)
    path = pull_ref(args.ref, revision=args.revision, quiet=args.quiet)
    sys.stdout.write(sanitize(str(path)) + "\n")
    return 0


def resolve_model_ref(ref_text: str, assume_yes: bool, stdin: TextIO | None = None,
                      err: TextIO | None = None) -> str:
    """`--model hf:…`: the cached file, else pull it, after asking on a terminal (on a pipe only with --yes)."""
    from aigc_chat import hub, hub_ref

    err = err or sys.stderr
    stdin = stdin or sys.stdin
    ref = hub_ref.parse_ref(ref_text)
    local = hub.find_local(ref)
    if local is not None:
        return str(local)
    if hub.offline():
        raise UsageError(f"HF_HUB_OFFLINE is set and {ref} is not in the hub cache ({hub.cache_dir()})")
    if not assume_yes:
        if not (_isatty(stdin) and _isatty(err)):
            raise UsageError(f"{ref} is not downloaded yet: run `{PROG} pull {ref}` first, or add --yes to "
                             "download it now")
        p = hub.plan(ref)
        from aigc_chat.discovery import human_size

        err.write(sanitize(f"{ref} is not here yet: download {', '.join(f.name for f in p.files)} "
                           f"({human_size(p.total)}) into {hub.cache_dir()}? [y/N] "))
        err.flush()
        answer = stdin.readline().strip().lower()
        if answer not in ("y", "yes"):
            raise UsageError(f"not downloaded: {ref}")
    return str(pull_ref(ref_text, err=err))
