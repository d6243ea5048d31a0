"""The F1 help text, built from the key table and the slash commands (tui/keymap.py,
tui/slash.py): a key or command added there shows up here by itself.

`help_sections` is what the F1 screen draws: one row per key, no rule between rows, so the
whole table fits one or two screens; `help_markdown` is the same as Markdown (docs, tests)."""

from __future__ import annotations

from aigc_chat.tui.keymap import KEYS
from aigc_chat.tui.slash import COMMANDS

FOOT = "// at the start sends a literal /"


FOCUSED = "tab, then "


def help_sections() -> list[tuple[str, list[tuple[str, str]]]]:
    """[(section title, [(key or command, what it does), ...]), ...]: the keys that act on a
    focused message get a section of their own, so the key column stays narrow."""
    keys = [(k.label, k.help) for k in KEYS if not k.label.startswith(FOCUSED)]
    focused = [(k.label[len(FOCUSED):], k.help.removeprefix("on a focused message: ").removeprefix("on a focused "))
               for k in KEYS if k.label.startswith(FOCUSED)]
    cmds = [(f"/{name} {syn}".rstrip(), text) for name, (syn, text) in COMMANDS.items()]
    return [("Keys", keys), ("On a focused message (tab to it)", focused),
            ("Slash commands", cmds)]


def help_markdown() -> str:
    lines = ["# aigc-chat", "", "## Keys", "", "| key | action |", "|---|---|"]
    lines += [f"| `{k.label}` | {k.help} |" for k in KEYS]
    lines += ["", "## Slash commands", "", "| command | action |", "|---|---|"]
    for name, (syn, text) in COMMANDS.items():
        cmd = f"/{name} {syn}".rstrip().replace("|", "\\|")  # a bare | would split the table cell
        lines.append(f"| `{cmd}` | {text} |")
    lines += ["", "Start a message with `//` to send a literal `/`.", "", "Esc closes this help."]
    return "\n".join(lines)
