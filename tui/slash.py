"""Slash commands typed in the input box, parsed without touching the UI.

Keeping the parser apart from the app means every command's grammar and error message is
checked by plain unit tests, and the app only has to act on a `SlashCommand`.
"""

from __future__ import annotations

from dataclasses import dataclass

from aigc_chat.argtypes import unescape as unescape_stop
from aigc_chat.errors import UsageError

#: name -> (argument synopsis, one line of help). The help screen and /help print this.
COMMANDS: dict[str, tuple[str, str]] = {
    "new": ("", "start a new conversation"),
    "system": ("TEXT", "set the system prompt of this conversation (empty clears it)"),
    "temp": ("X", "set the temperature (0 to 2)"),
    "stop": ("add TEXT | clear", "add a stop sequence, or clear them all"),
    "think": ("on | off", "let a reasoning model think before it answers, or not (where its template allows)"),
    "model": ("PATH", "load another model (a GGUF path, or a server's model name)"),
    "backend": ("NAME", "switch backend (llama, torch, openai, ...)"),
    "export": ("PATH", "export this conversation (.json: JSON, otherwise Markdown)"),
    "file": ("PATH", "attach a text file to the next message (Tab completes the path)"),
    "gan": ("[LABEL] [N]", "draw N samples of the GAN (digit LABEL) inline"),
    "compact": ("[INSTRUCTIONS]", "summarise the older part into a new branch; the original stays (alt+←)"),
    "help": ("", "show keys and commands"),
}


@dataclass(frozen=True)
class SlashCommand:
    name: str
    arg: str = ""
    args: tuple[str, ...] = ()


def is_slash(text: str) -> bool:
    """A message is a command when it starts with '/' followed by a letter ('//x' sends '/x')."""
    s = text.lstrip()
    return len(s) > 1 and s[0] == "/" and s[1].isalpha()


def unescape(text: str) -> str:
    """'//text' is how a message that starts with '/' is sent literally."""
    s = text.lstrip()
    return s[1:] if s.startswith("//") else text


def parse(text: str) -> SlashCommand:
    """Parse '/name args'; raise UsageError with one line for an unknown or malformed command."""
    body = text.strip()[1:]
    name, _, arg = body.partition(" ")
    if "\n" in name:
        name, _, rest = name.partition("\n")
        arg = rest + (" " + arg if arg else "")
    name = name.lower()
    arg = arg.strip()
    if name not in COMMANDS:
        raise UsageError(f"unknown command /{name} (type /help for the list)")
    if name in ("new", "help") and arg:
        raise UsageError(f"/{name} takes no argument")
    if name == "temp":
        if not arg:
            raise UsageError("/temp needs a value, e.g. /temp 0.7")
        return SlashCommand(name, arg)
    if name == "stop":
        sub, _, rest = arg.partition(" ")
        if sub == "clear" and not rest.strip():
            return SlashCommand(name, "", ("clear",))
        if sub == "add" and rest.strip():
            # keep inner spaces of the stop text; only the separator space is dropped. The
            # escapes are the command line's (`/stop add \n\n`: aigc_chat.argtypes.unescape).
            return SlashCommand(name, unescape_stop(arg[len("add "):]), ("add",))
        raise UsageError("usage: /stop add TEXT or /stop clear")
    if name == "think":
        if arg.lower() not in ("on", "off"):
            raise UsageError("usage: /think on or /think off")
        return SlashCommand(name, arg.lower())
    if name in ("model", "backend", "export", "file") and not arg:
        raise UsageError(f"/{name} needs an argument: /{name} {COMMANDS[name][0]}")
    if name == "gan":
        parts = arg.split()
        if len(parts) > 2:
            raise UsageError("usage: /gan [LABEL] [N]")
        label: int | None = None
        n = 8
        if parts:
            try:
                label = int(parts[0])
            except ValueError:
                raise UsageError(f"/gan: LABEL must be a number, got {parts[0]!r}") from None
        if len(parts) == 2:
            try:
                n = int(parts[1])
            except ValueError:
                raise UsageError(f"/gan: N must be a number, got {parts[1]!r}") from None
            if not 1 <= n <= 64:
                raise UsageError("/gan: N must be between 1 and 64")
        return SlashCommand(name, arg, ("" if label is None else str(label), str(n)))
    return SlashCommand(name, arg)

