"""Make untrusted model text safe for a terminal.

A model can emit ESC sequences (clear screen, set title, OSC 52 clipboard writes, hyperlinks)
or bare control bytes. Nothing of that may reach the user's terminal: escape sequences are
dropped whole, other control characters become visible Unicode control pictures, and
invisible characters that change how text looks (bidi overrides, zero-width spaces) are shown
as `⟨U+202E⟩`. Newline and tab are kept; CR LF becomes LF. This is for display and for
anything that leaves the process as text (clipboard, stdout, exports); stored text stays exact.
"""

from __future__ import annotations

import re

# ESC [ ... final byte (CSI); ESC ] ... BEL or ESC \ (OSC); ESC P/X/^/_ ... ESC \ (DCS, SOS, PM,
# APC); ESC followed by one intermediate/final byte. The 8-bit C1 forms are handled the same.
_ESCAPE = re.compile(
    r"""
    (?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]              # CSI
  | (?:\x1b\]|\x9d).*?(?:\x07|\x1b\\|\x9c)        # OSC
  | (?:\x1b[PX^_]|[\x90\x98\x9e\x9f]).*?(?:\x1b\\|\x9c)  # DCS SOS PM APC
  | \x1b[ -/]*[0-~]                               # two-byte escapes, e.g. ESC c (reset)
    """,
    re.VERBOSE | re.DOTALL,
)
# Characters that change how text *looks* without being seen ("Trojan Source"): the bidi
# embeddings, overrides and isolates, the direction marks, zero-width spaces and joiners'
# invisible kin (word joiner, BOM, invisible operators), the deprecated format characters,
# interlinear annotations, line/paragraph separators (a newline to some terminals, nothing
# to others), soft hyphen and the invisible "tag" characters used to smuggle text. ZWJ and
# ZWNJ (U+200D, U+200C) stay: emoji and several scripts need them, and they reorder nothing.
_INVISIBLE = (
    "\u00ad\u061c\u180e\u200b\u200e\u200f\u2028-\u202e\u2060-\u2064\u2066-\u206f"
    "\ufeff\ufff9-\ufffb\U000e0000-\U000e007f"
)
# Lone surrogates: what Python makes of bytes that are not UTF-8 (argv, environment, file
# names); they cannot be encoded for the terminal at all.
_CONTROL = re.compile(f"[\\x00-\\x08\\x0b-\\x1f\\x7f-\\x9f{_INVISIBLE}\\ud800-\\udfff]")
# Characters that may start a sequence whose rest is still to come.
_STARTERS = "\x1b\x9b\x9d\x90\x98\x9e\x9f\r"


def _visible(match: re.Match[str]) -> str:
    code = ord(match.group())
    if code < 0x20:
        return chr(0x2400 + code)  # ␀ .. ␟
    if code == 0x7F:
        return "\u2421"  # ␡
    if code <= 0x9F or 0xD800 <= code <= 0xDFFF:
        return "\ufffd"  # C1 controls, lone surrogates
    return f"\u27e8U+{code:04X}\u27e9"  # ⟨U+202E⟩: seen for what it is, and harmless


def sanitize(text: str) -> str:
    """Sanitise a complete piece of text."""
    text = text.replace("\r\n", "\n")
    text = _ESCAPE.sub("", text)
    return _CONTROL.sub(_visible, text)


# What keeps a name on one line: the line feed and the tab that sanitize() lets through.
_LINE_BREAKS = str.maketrans({"\n": "\u240a", "\t": "\u2409"})


def one_line(text: str) -> str:
    """Untrusted text shown or framed where one line is expected: a model file's name, a
    server's model id, a file's metadata name, an attached file's name, a conversation title,
    a role name. Sanitised, and the line feed and tab become ␊ and ␉ (CR, VT, FF, NEL, U+2028
    are already shown by sanitize()), so such a name cannot forge a table row, a log line, a
    Markdown heading or a second file block. Stored text stays exact: this is for showing."""
    return sanitize(str(text)).translate(_LINE_BREAKS)


class StreamSanitizer:
    """Sanitise a stream of deltas, holding back a possibly unfinished escape sequence."""

    def __init__(self) -> None:
        self._held = ""

    def feed(self, delta: str) -> str:
        text = self._held + delta
        self._held = ""
        start = max(text.rfind(c, max(0, len(text) - 256)) for c in _STARTERS)
        if start != -1 and not _complete(text[start:]):
            self._held = text[start:]
            text = text[:start]
        return sanitize(text)

    def flush(self) -> str:
        held, self._held = self._held, ""
        return sanitize(held)


_CSI = re.compile(r"(?:\x1b\[|\x9b)[0-?]*[ -/]*[@-~]")
_STRING_SEQ = re.compile(r"(?:\x1b[\]PX^_]|[\x9d\x90\x98\x9e\x9f]).*?(?:\x07|\x1b\\|\x9c)", re.DOTALL)
_SHORT = re.compile(r"\x1b[ -/]*[0-~]")


def _complete(tail: str) -> bool:
    """Whether a tail that starts with ESC/C1/CR is already a whole unit (so need not wait)."""
    if tail.startswith("\r"):
        return len(tail) > 1
    if len(tail) >= 256:
        return True  # an unterminated sequence this long is garbage: let sanitize() show it
    if tail.startswith(("\x1b[", "\x9b")):
        return _CSI.match(tail) is not None
    if tail.startswith(("\x1b]", "\x1bP", "\x1bX", "\x1b^", "\x1b_")) or tail[0] in "\x9d\x90\x98\x9e\x9f":
        return _STRING_SEQ.match(tail) is not None
    return _SHORT.match(tail) is not None
