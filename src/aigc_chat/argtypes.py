"""argparse pieces shared by every command line, so `aigc-chat`, `aigc-chat history` and
`aigc-chat gan` read alike: one parser error policy, and value types whose errors say
"expected WHAT, got 'TEXT'"."""

from __future__ import annotations

import argparse
import math
import re
import sys
from collections.abc import Callable
from typing import NoReturn


class OneLineParser(argparse.ArgumentParser):
    """argparse whose usage error is one line on stderr and exit 2:
    `PROG: error: MESSAGE (see PROG --help)`. argparse's usage dump buries the one line that
    matters; PROG is the parser's own (`aigc-chat gan sample`), so the pointer leads to the
    help that explains the mistake. Subcommand parsers inherit the class. The message quotes
    what was typed, so it is made safe to print first (no escape sequence, no line break)."""

    def error(self, message: str) -> NoReturn:
        from aigc_chat.sanitize import sanitize

        line = sanitize(message).replace("\n", "\u240a")
        self.exit(2, f"{self.prog}: error: {line} (see {self.prog} --help)\n")

# SQLite stores 64-bit integers; a larger id or limit cannot name anything (and would raise
# OverflowError deep inside the driver), so every integer on a command line stays in range.
INT64_MAX = 2**63 - 1


def integer(what: str = "an integer", minimum: int | None = None,
            maximum: int = INT64_MAX) -> Callable[[str], int]:
    def parse(text: str) -> int:
        try:
            value = int(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if (minimum is not None and value < minimum) or value > maximum or value < -INT64_MAX:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = what  # argparse names the type in some messages
    return parse


def number(what: str = "a number", minimum: float | None = None,
           maximum: float | None = None) -> Callable[[str], float]:
    """A finite float: `nan` and `inf` never reach a sampler or an optimiser."""
    def parse(text: str) -> float:
        try:
            value = float(text)
        except ValueError:
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}") from None
        if (not math.isfinite(value) or (minimum is not None and value < minimum)
                or (maximum is not None and value > maximum)):
            raise argparse.ArgumentTypeError(f"expected {what}, got {text!r}")
        return value

    parse.__name__ = what
    return parse


positive = integer("a positive integer", minimum=1)
non_negative = integer("a non-negative integer", minimum=0)
conversation_id = integer("a conversation id", minimum=1)

_warned_utf8 = False


def text(value: str) -> str:
    """Free text from the command line (a prompt, a title, a search), as valid Unicode.

    Bytes that are not UTF-8 reach Python as lone surrogates; they cannot be stored,
    encoded or shown. They become U+FFFD, with one warning, the same as on stdin (file
    names are left alone: they must keep their bytes to name the file)."""
    global _warned_utf8
    try:
        value.encode("utf-8")
        return value
    except UnicodeEncodeError:
        pass
    try:
        fixed = value.encode("utf-8", "surrogateescape").decode("utf-8", "replace")
    except UnicodeEncodeError:
        fixed = re.sub("[\ud800-\udfff]", "\ufffd", value)
    if not _warned_utf8:
        _warned_utf8 = True
        sys.stderr.write("aigc-chat: warning: an argument is not valid UTF-8; "
                         "its invalid bytes became U+FFFD (\ufffd)\n")
    return fixed


text.__name__ = "text"

# Stop sequences on a command line or in the settings pane take the escapes that the peers
# taking stop strings on a command line take: a shell cannot easily pass a newline, and
# `--stop "\n\n"` is what people write. A backslash before anything else stays itself, so
# a Windows path or a regex-looking stop needs no doubling. config.toml has TOML's own
# escapes and is not unescaped again.
_ESCAPES = {"n": "\n", "t": "\t", "r": "\r", "\\": "\\", "0": "\0"}
_ESCAPE = re.compile(r"\\(?:x([0-9A-Fa-f]{2})|u([0-9A-Fa-f]{4})|(.))", re.DOTALL)


def unescape(value: str) -> str:
    r"""`\n`, `\t`, `\r`, `\0`, `\\`, `\xHH` and `\uHHHH`; any other backslash is literal."""
    def repl(m: re.Match[str]) -> str:
        if m.group(1):
            return chr(int(m.group(1), 16))
        if m.group(2):
            return chr(int(m.group(2), 16))
        return _ESCAPES.get(m.group(3), m.group(0))

    return _ESCAPE.sub(repl, value)


def escape(value: str) -> str:
    """The inverse of `unescape` for display and editing: `escape(s)` unescapes to `s`."""
    out = []
    for ch in value:
        if ch == "\\":
            out.append("\\\\")
        elif ch in "\n\t\r\0":
            out.append({"\n": "\\n", "\t": "\\t", "\r": "\\r", "\0": "\\0"}[ch])
        elif ord(ch) < 0x20 or 0x7F <= ord(ch) <= 0x9F:
            out.append(f"\\x{ord(ch):02x}")
        else:
            out.append(ch)
    return "".join(out)


def stop_text(value: str) -> str:
    stop = unescape(text(value))
    if not stop:
        raise argparse.ArgumentTypeError("a stop sequence cannot be empty")
    return stop


stop_text.__name__ = "stop sequence"
