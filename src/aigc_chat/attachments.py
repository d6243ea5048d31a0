"""Files brought into a chat: read safely, refused clearly, and put into the user's message in
one documented format, the same for every backend (docs/files.md).

What the model is sent for a message with files: each file, in the order attached, as

    File `NAME` (SIZE):
    ````
    the file's text
    ````

(the fence is one backtick longer than the longest run of backticks in the file, so nothing
inside can close it; NAME is kept on its line by `sanitize.one_line`, so a file name holding a
newline, a "File ..." line and a fence cannot forge a second file block), a blank line, then
what the user typed. The history stores the typed
text and each file's content apart (the file may change or vanish later), so this is built
again the same way whenever the conversation is carried on.
"""

from __future__ import annotations

import codecs
import hashlib
import re
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from aigc_chat.errors import UsageError
from aigc_chat.safe_open import read_regular
from aigc_chat.sanitize import one_line

HARD_CAP = 4 << 20  # bytes: refused before it is read whole (4 MiB of text is ~1M tokens)


@dataclass(frozen=True)
class Attachment:
    name: str  # as the user named it (a path as typed), shown and sent to the model
    text: str
    tokens: int | None = None  # counted against the model's context before sending

    @property
    def size(self) -> int:
        return len(self.text.encode("utf-8"))

    @property
    def sha256(self) -> str:
        return hashlib.sha256(self.text.encode("utf-8")).hexdigest()


def human_size(n: int) -> str:
    if n < 1024:
        return f"{n} B"
    if n < 1 << 20:
        return f"{n / 1024:.1f} KB"
    return f"{n / (1 << 20):.1f} MB"


def from_bytes(name: str, data: bytes) -> Attachment:
    """Text only: a file with NUL bytes, or that is not UTF-8 (after a BOM, which is
    dropped), is refused with one line naming it. UTF-16 text (a BOM, or every other byte NUL)
    is told as such, with how to convert it: "binary" would send the user the wrong way."""
    utf16 = utf16_kind(data)
    if utf16:
        raise UsageError(f"{name} is {utf16} text: only UTF-8 can be attached; convert it with "
                         f"`iconv -f {utf16} -t UTF-8 FILE > FILE.utf8` and attach that")
    if b"\x00" in data:
        raise UsageError(f"{one_line(name)} is a binary file (it has NUL bytes): only text files can be attached")
    if data.startswith(codecs.BOM_UTF8):
        data = data[len(codecs.BOM_UTF8):]
    try:
        text = data.decode("utf-8")
    except UnicodeDecodeError as exc:
        raise UsageError(f"{one_line(name)} is not UTF-8 text (byte {exc.start} is not): only text files can "
                         "be attached") from None
    return Attachment(name, text)


def utf16_kind(data: bytes) -> str:
    """'UTF-16LE' / 'UTF-16BE' when the bytes look like UTF-16 text (a BOM, or NULs on every
    other byte of a mostly-ASCII start), else ''."""
    if data.startswith(codecs.BOM_UTF16_LE) and not data.startswith(codecs.BOM_UTF32_LE):
        return "UTF-16LE"
    if data.startswith(codecs.BOM_UTF16_BE):
        return "UTF-16BE"
    head = data[: min(len(data), 512) // 2 * 2]
    if len(head) < 4:
        return ""
    even, odd = head[0::2], head[1::2]
    for zeros, text, kind in ((odd, even, "UTF-16LE"), (even, odd, "UTF-16BE")):
        if zeros.count(0) >= 0.9 * len(zeros) and text.count(0) == 0:
            try:
                head.decode(kind)
            except UnicodeDecodeError:
                continue
            return kind
    return ""


def read_file(path_text: str, cap: int = HARD_CAP) -> Attachment:
    """A text file by path: regular files only (never a FIFO or a device: they could block),
    at most `cap` bytes, refused before it is read whole."""
    path = Path(path_text).expanduser()
    if path.is_dir():
        raise UsageError(f"{one_line(path_text)} is a directory: attach its files one by one (a shell glob does it)")
    return from_bytes(path_text, read_regular(path, cap, "file"))


def fence(text: str) -> str:
    longest = max((len(m) for m in re.findall(r"`+", text)), default=0)
    return "`" * max(3, longest + 1)


def render(text: str, attachments: Sequence[Attachment]) -> str:
    """The user message the model is sent: the files (module notes), then the typed text."""
    if not attachments:
        return text
    parts = []
    for a in attachments:
        f = fence(a.text)
        body = a.text if a.text.endswith("\n") or not a.text else a.text + "\n"
        parts.append(f"File `{one_line(a.name)}` ({human_size(a.size)}):\n{f}\n{body}{f}\n")
    return "\n".join(parts) + ("\n" + text if text else "")


def too_big(attachments: Sequence[Attachment], room: int) -> str | None:
    """Why these files cannot be sent in `room` tokens (naming the largest), or None."""
    counted = [a for a in attachments if a.tokens is not None]
    total = sum(a.tokens or 0 for a in counted)
    if not counted or total <= room:
        return None
    worst = max(counted, key=lambda a: a.tokens or 0)
    if len(counted) == 1:
        return (f"{one_line(worst.name)} is {worst.tokens:,} tokens, more than the {max(room, 0):,} left in the "
                "model's context: it was not sent (nothing is cut off)")
    return (f"the attached files are {total:,} tokens ({one_line(worst.name)}: {worst.tokens:,}), more than the "
            f"{max(room, 0):,} left in the model's context: nothing was sent")
