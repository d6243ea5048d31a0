"""Slash commands acted on, and offered in the command palette.

The grammar is tui/slash.py's (plain unit tests); this module runs a parsed command on the
chat screen, and `SlashProvider` lists the same commands in ctrl+p: one with no argument runs
at once, one that needs an argument is put into the message box for the user to finish."""

from __future__ import annotations

import random
from functools import partial
from typing import TYPE_CHECKING

from textual.command import DiscoveryHit, Hit, Hits, Provider

from aigc_chat.errors import AigcError
from aigc_chat.tui import slash
from aigc_chat.tui.chat_view import GanMessage

if TYPE_CHECKING:
    from aigc_chat.tui.chat_screen import ChatScreen


async def run_slash(screen: ChatScreen, text: str) -> None:
    """Parse and run one command; a usage error is a notice, never a crash."""
    try:
        await _run(screen, slash.parse(text))
    except AigcError as exc:
        screen.app.notify(str(exc), severity="error")


async def _run(screen: ChatScreen, cmd: slash.SlashCommand) -> None:
    conv = screen.conversation
    notify = screen.app.notify
    if cmd.name == "new":
        await screen.action_new_conversation()
    elif cmd.name == "help":
        await screen.app.run_action("help")
    elif cmd.name == "system":
        conv.set_system_prompt(cmd.arg)
        screen.refresh_settings()
        notify("system prompt cleared" if not cmd.arg else "system prompt set")
    elif cmd.name == "temp":
        p = conv.set_params(temperature=cmd.arg)
        screen.refresh_settings()
        notify(f"temperature {p.temperature}")
    elif cmd.name == "stop":
        if cmd.args[0] == "clear":
            conv.set_params(stop=())
            notify("stop sequences cleared")
        else:
            p = conv.set_params(stop=(*conv.settings.params.stop, cmd.arg))
            notify(f"stop sequences: {', '.join(repr(s) for s in p.stop)}")
        screen.refresh_settings()
    elif cmd.name == "think":
        p = conv.set_params(thinking=cmd.arg == "on")
        note = ("" if conv.backend is None or "thinking" in conv.backend.supported_params
                else " (this model's template cannot turn it off: it will think anyway)")
        notify(f"thinking {'on' if p.thinking else 'off'}{note}")
    elif cmd.name == "model":
        screen.switch_model(None, cmd.arg)
    elif cmd.name == "backend":
        screen.switch_model(cmd.arg, "")
    elif cmd.name == "file":
        screen.attach(cmd.arg)
    elif cmd.name == "export":
        screen.stored.export(conv.conversation_ref, cmd.arg)
    elif cmd.name == "compact":
        await screen.start_compaction(cmd.arg)
    elif cmd.name == "gan":
        await add_gan(screen, None if cmd.args[0] == "" else int(cmd.args[0]), int(cmd.args[1]))


async def add_gan(screen: ChatScreen, label: int | None, n: int) -> None:
    """GAN samples inline in the chat: stored with the conversation, never sent to the model.
    Not while a reply streams: the samples would follow a reply that is still being written."""
    if screen.busy("gan"):
        return
    try:
        from aigc_chat.gan import DEFAULT_CHECKPOINT
        checkpoint = str(DEFAULT_CHECKPOINT)
    except ImportError:
        checkpoint = ""
    meta = {"checkpoint": checkpoint, "seed": random.randrange(2**31), "label": label, "n": n}
    text = f"GAN samples: label {label if label is not None else 'any'}, n {n}, seed {meta['seed']}"
    node = screen.conversation.add_item("assistant", text, "gan", meta)  # queued: never waits
    screen.history.current_id = screen.conversation.conversation_ref
    await screen.chat.add(GanMessage(meta, node=node, text=text))
    screen.history.reload()


class SlashProvider(Provider):
    """The slash commands in the command palette."""

    def _entries(self) -> list[tuple[str, str, str]]:
        return [(f"/{name} {syn}".rstrip(), text, name) for name, (syn, text) in slash.COMMANDS.items()]

    def _choose(self, name: str) -> None:
        from aigc_chat.tui.chat_screen import ChatScreen

        screen = next((s for s in self.app.screen_stack if isinstance(s, ChatScreen)), None)
        if screen is None:
            return
        synopsis = slash.COMMANDS[name][0]
        if synopsis and not synopsis.startswith("["):  # needs an argument: let the user type it
            screen.prompt.load_text(f"/{name} ")
            screen.prompt.move_cursor(screen.prompt.document.end)
            screen.prompt.focus()
            return
        self.app.call_later(run_slash, screen, f"/{name}")

    async def discover(self) -> Hits:
        for title, help_text, name in self._entries():
            yield DiscoveryHit(title, partial(self._choose, name), help=help_text)

    async def search(self, query: str) -> Hits:
        matcher = self.matcher(query)
        for title, help_text, name in self._entries():
            score = matcher.match(title)
            if score > 0:
                yield Hit(score, matcher.highlight(title), partial(self._choose, name), help=help_text)
