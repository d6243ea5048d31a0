"""OSC 52 clipboard writes that survive SSH and tmux.

OSC 52 asks the *terminal* (not the remote host) to set its clipboard, so it works over SSH.
Inside tmux the sequence must be wrapped in a DCS passthrough (`ESC P tmux; ... ESC \\`,
every ESC inside doubled) or tmux swallows it; Textual's `copy_to_clipboard` sends it bare.
"""

from __future__ import annotations

import base64
import os
from collections.abc import Mapping

from aigc_chat.sanitize import sanitize


def clipboard_text(text: str) -> str:
    """What may go on the clipboard: the text as the screen shows it (escape sequences
    dropped, other controls and invisible direction changes made visible)."""
    return sanitize(text)


def osc52(text: str) -> str:
    """The bare OSC 52 'set clipboard' sequence for `text`."""
    payload = base64.b64encode(text.encode("utf-8")).decode("ascii")
    return f"\x1b]52;c;{payload}\x07"


def tmux_wrap(sequence: str) -> str:
    """Wrap an escape sequence for tmux's passthrough (needs `allow-passthrough on`)."""
    return "\x1bPtmux;" + sequence.replace("\x1b", "\x1b\x1b") + "\x1b\\"


def in_tmux(environ: Mapping[str, str] | None = None) -> bool:
    env = os.environ if environ is None else environ
    return bool(env.get("TMUX"))


def clipboard_sequences(text: str, environ: Mapping[str, str] | None = None) -> str:
    """What to write to the terminal to put `text` on the clipboard.

    Inside tmux both forms are sent: the bare one is taken by tmux itself when its
    `set-clipboard` option is on, the wrapped one reaches the outer terminal when
    `allow-passthrough` is on. Whichever the user's tmux allows, the copy lands.
    """
    seq = osc52(clipboard_text(text))  # never raw: idempotent on text already made safe
    if in_tmux(environ):
        return seq + tmux_wrap(seq)
    return seq
