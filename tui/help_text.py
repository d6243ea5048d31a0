"""The F1 help text, built from the bindings and slash commands so it cannot drift."""

from __future__ import annotations

from aigc_chat.tui.slash import COMMANDS

KEYS: tuple[tuple[str, str], ...] = (
    ("Enter", "send (while a reply streams: queue it)"),
    ("ctrl+j", "new line in the message (also shift+enter where the terminal tells it apart)"),
    ("up / down", "on an empty message: earlier prompts"),
    ("Esc", "stop the reply now (the partial reply is kept, marked cancelled)"),
    ("ctrl+r", "regenerate the last reply"),
    ("ctrl+o", "edit the last message and resend it"),
    ("ctrl+n", "new conversation"),
    ("F2", "show / hide the history pane"),
    ("ctrl+f", "search every message (history pane)"),
    ("n r d e", "in the history list: new, rename, delete, export"),
    ("F3", "show / hide the settings pane"),
    ("F4", "switch model: the models on this machine, filter as you type"),
    ("F5 / F6", "copy the last reply / its last code block (OSC 52: works over SSH and in tmux)"),
    ("tab, then c / b", "on a focused message: copy it / its last code block"),
    ("ctrl+g", "GAN screen"),
    ("ctrl+p", "command palette (themes too)"),
    ("F1", "this help"),
    ("ctrl+q", "quit"),
)


def help_markdown() -> str:
    lines = ["# aigc-chat", "", "## Keys", "", "| key | action |", "|---|---|"]
    lines += [f"| `{k}` | {v} |" for k, v in KEYS]
    lines += ["", "## Slash commands", "", "| command | action |", "|---|---|"]
    for name, (syn, text) in COMMANDS.items():
        cmd = f"/{name} {syn}".rstrip()
        lines.append(f"| `{cmd}` | {text} |")
    lines += ["", "Start a message with `//` to send a literal `/`.", "", "Esc closes this help."]
    return "\n".join(lines)
