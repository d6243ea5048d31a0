"""Every key of the chat, in one table: the app's bindings, the F1 help and the command
palette are all built from it, so none of them can drift from the others.

A row with an `action` is a binding of the app. Most actions are the chat screen's and are
bound as `screen.<action>`: they run on whichever screen is on top, so they do nothing under
the help, the model picker or the GAN screen; the app's own (`APP_ACTIONS`) work everywhere.
A row without an action is a key some widget handles itself (the message box, the history
list, a focused message) and is listed in the help only. A row with a `palette` title is
also offered in ctrl+p.
"""

from __future__ import annotations

from dataclasses import dataclass

from textual.binding import Binding, BindingType


@dataclass(frozen=True)
class Key:
    keys: str  # Textual's key names, comma-separated ("" for widget keys: see `shown`)
    help: str  # what the F1 help says it does
    action: str = ""  # the app's action_<action>; empty: a widget's own key
    footer: str = ""  # its label in the footer; empty: not shown there
    palette: str = ""  # its title in the command palette; empty: not offered there
    priority: bool = False  # wins over a focused widget's own use of the key
    shown: str = ""  # how the help writes the key, when not just `keys`

    @property
    def label(self) -> str:
        return self.shown or self.keys


KEYS: tuple[Key, ...] = (
    Key("f1", "this help", "help", "Help", "Help", shown="F1"),
    Key("enter", "send (while a reply streams: queue it)", shown="Enter"),
    Key("ctrl+j", "new line in the message (also shift+enter where the terminal tells it apart)"),
    Key("up,down", "on an empty message: earlier prompts", shown="up / down"),
    Key("escape", "stop the reply now (the partial reply is kept, marked cancelled)", "cancel",
        palette="Stop generating", shown="Esc"),
    Key("ctrl+n", "new conversation", "new_conversation", "New", "New conversation", priority=True),
    Key("ctrl+r", "regenerate the last reply (the old one stays: ‹ 1/2 ›)", "regenerate", "Regen",
        "Regenerate", priority=True),
    Key("ctrl+o", "edit the last message and resend it (a new branch)", "edit_last", "Edit", "Edit last message",
        priority=True),
    Key("f2", "show / hide the history pane", "toggle_history", "History", "Toggle history pane",
        shown="F2"),
    Key("ctrl+f", "search every message (history pane)", "search", "Search", "Search history",
        priority=True),
    Key("", "in the history list: new, rename, delete, export", shown="n r d e"),
    Key("f3", "show / hide the settings pane: model, sampling, stops, system prompt",
        "toggle_settings", "Settings", "Toggle settings pane", shown="F3"),
    Key("f4", "switch model: the models on this machine, filter as you type", "pick_model",
        palette="Switch model", shown="F4"),
    Key("f5", "copy the last reply (OSC 52: works over SSH and in tmux)", "copy_reply", "Copy",
        "Copy last reply", shown="F5"),
    # TextArea uses F6 too: priority, so it copies the code block even from the message box
    Key("f6", "copy the last code block of the last reply", "copy_code", palette="Copy last code block",
        priority=True, shown="F6"),
    # TextArea uses F7 (select all; ctrl+a does that too): priority, so it compacts from the message box
    Key("f7", "compact: summarise the older part into a new branch (the original stays, alt+←); "
        "/compact TEXT adds instructions", "compact", palette="Compact the conversation", priority=True,
        shown="F7"),
    Key("f8", "new conversation under a role: its system prompt, sampling and model", "pick_role",
        palette="New conversation with a role", shown="F8"),
    Key("", "on a focused message: copy it / its last code block", shown="tab, then c / b"),
    Key("", "on a focused message with alternatives (‹ 2/3 ›): the previous / next one",
        shown="tab, then ← / → (or [ / ])"),
    Key("alt+left", "the previous alternative of the last message that has some", "branch_prev",
        palette="Previous alternative (branch)", shown="alt+←"),
    Key("alt+right", "the next alternative of the last message that has some", "branch_next",
        palette="Next alternative (branch)", shown="alt+→"),
    Key("", "on a focused question of yours: edit it (sending makes a new branch)", shown="tab, then e"),
    Key("", "on a focused message: fork, a new conversation with the path up to it",
        shown="tab, then f"),
    Key("", "on a focused reply: show / hide its reasoning (remembered as the default)",
        shown="tab, then t"),
    Key("", "write the settings to config.toml as the new defaults", "save_default",
        palette="Save settings as default", shown="(palette)"),
    Key("ctrl+g", "GAN screen: sample and browse the GAN", "gan_screen", palette="GAN screen",
        priority=True),
    Key("ctrl+p", "command palette (themes too)"),
    Key("ctrl+q", "quit"),
)


APP_ACTIONS = frozenset({"help", "gan_screen", "save_default"})


def bound_action(k: Key) -> str:
    return k.action if k.action in APP_ACTIONS else f"screen.{k.action}"


def bindings() -> list[BindingType]:
    """The app's BINDINGS, from the table."""
    return [Binding(k.keys, bound_action(k), k.footer or k.help, show=bool(k.footer), priority=k.priority)
            for k in KEYS if k.action and k.keys]


def key_hint(k: Key) -> str:
    """'(ctrl+r)' for the palette's help line."""
    return f"({k.label})" if k.keys else ""
