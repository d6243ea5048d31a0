"""The F1 help text, built from the key table and the slash commands (tui/keymap.py,
tui/slash.py): a key or command added there shows up here by itself."""

from __future__ import annotations

from aigc_chat.tui.keymap import KEYS
from aigc_chat.tui.slash import COMMANDS


def help_markdown() -> str:
    lines = ["# aigc-chat", "", "## Keys", "", "| key | action |", "|---|---|"]
    lines += [f"| `{k.label}` | {k.help} |" for k in KEYS]
    lines += ["", "## Slash commands", "", "| command | action |", "|---|---|"]
    for name, (syn, text) in COMMANDS.items():
        cmd = f"/{name} {syn}".rstrip().replace("|", "\\|")  # a bare | would split the table cell
        lines.append(f"| `{cmd}` | {text} |")
    lines += ["", "Start a message with `//` to send a literal `/`.", "", "Esc closes this help."]
    return "\n".join(lines)
