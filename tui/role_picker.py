"""The role picker (F8, or "New conversation with a role" in the command palette).

It lists the roles `aigc-chat roles` lists (aigc_chat.roles: the built-ins and config.toml's
`[roles.NAME]` tables), filtered as you type, plus "no role". Picking one starts a new
conversation under it: the role's system prompt and sampling become the conversation's own
settings (the settings pane says `role NAME` beside each value it set), and a role that
names a model loads it: both through `Conversation.switch_model`, as /model and F4 switch.
This run's flags still win: `--system`, `--model` / `--backend` and the sampling flags keep
their values.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from aigc_chat import roles
from aigc_chat.roles import Role
from aigc_chat.sanitize import one_line, sanitize

if TYPE_CHECKING:
    from aigc_chat.tui.chat_screen import ChatScreen

NO_ROLE = Role("", description="no role: the config's own system prompt and sampling", origin="")


def row_text(role: Role) -> str:
    return one_line(f"{one_line(role.name) or '(no role)':<16} {role.origin:<9} {role.description}")


def details(role: Role) -> str:
    """What picking it sets: shown under the list for the highlighted role."""
    backend = f" ({one_line(role.backend)})" if role.backend else ""
    facts = [f"model {one_line(role.model)}{backend}"] if role.model else []
    facts += [f"{k} {list(v) if k == 'stop' else v}" for k, v in role.generation.items()]
    prompt = role.system_prompt or ("the config's own system prompt" if not role.name
                                    else "(no system prompt of its own)")
    return sanitize((" · ".join(facts) + "\n" if facts else "") + prompt)


def matches(role: Role, text: str) -> bool:
    hay = " ".join([role.name, role.description, role.origin, role.system_prompt, role.model]).lower()
    return all(word in hay for word in text.lower().split())


class RolePicker(ModalScreen["Role | None"]):
    """Choose a role; dismissed with the chosen Role (NO_ROLE for none), or None."""

    CSS_PATH = "role_picker.tcss"
    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("down", "move(1)", "Next", show=False),
        Binding("up", "move(-1)", "Previous", show=False),
    ]

    def __init__(self, entries: list[Role], current: str = "") -> None:
        super().__init__()
        self.entries = [*entries, NO_ROLE]
        self.current = current
        self.shown: list[Role] = []

    def compose(self) -> ComposeResult:
        with Vertical(id="role-picker"):
            yield Label("New conversation with a role: type to filter, Enter starts it, Esc closes",
                        id="role-picker-title")
            yield Input(id="role-picker-filter", placeholder="filter: part of a name or a description…")
            yield OptionList(id="role-picker-list")
            yield Static("", id="role-picker-prompt")

    def on_mount(self) -> None:
        self.query_one("#role-picker-filter", Input).focus()
        self._refilter()

    @on(Input.Changed, "#role-picker-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._refilter()

    def _refilter(self) -> None:
        text = self.query_one("#role-picker-filter", Input).value
        self.shown = [r for r in self.entries if matches(r, text)]
        options = self.query_one("#role-picker-list", OptionList)
        options.clear_options()
        options.add_options([Option(Content(("● " if r.name == self.current else "  ") + row_text(r)), id=str(i))
                             for i, r in enumerate(self.shown)])
        options.highlighted = 0 if self.shown else None
        self._show_prompt()

    @on(OptionList.OptionHighlighted, "#role-picker-list")
    def _highlighted(self, event: OptionList.OptionHighlighted) -> None:
        self._show_prompt()

    def _show_prompt(self) -> None:
        """The highlighted role's values and system prompt, under the list."""
        index = self.query_one("#role-picker-list", OptionList).highlighted
        role = self.shown[index] if index is not None and 0 <= index < len(self.shown) else None
        text = "nothing matches the filter" if role is None else details(role)
        self.query_one("#role-picker-prompt", Static).update(Content(text))

    def action_move(self, step: int) -> None:
        options = self.query_one("#role-picker-list", OptionList)
        if step > 0:
            options.action_cursor_down()
        else:
            options.action_cursor_up()

    @on(Input.Submitted, "#role-picker-filter")
    def _submitted(self, event: Input.Submitted) -> None:
        index = self.query_one("#role-picker-list", OptionList).highlighted
        if index is not None and 0 <= index < len(self.shown):
            self.dismiss(self.shown[index])

    @on(OptionList.OptionSelected, "#role-picker-list")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        self.dismiss(self.shown[int(event.option.id or 0)])

    def action_close(self) -> None:
        self.dismiss(None)


# -- from the chat screen ----------------------------------------------------------------------


def open_role_picker(screen: ChatScreen) -> None:
    """Push the picker; a pick starts a new conversation under that role."""
    if screen.busy("role"):
        return
    conv = screen.conversation

    async def picked(role: Role | None) -> None:
        if role is not None:
            await start_role(screen, role)

    screen.app.push_screen(RolePicker(list(roles.all_roles(conv.config).values()), conv.settings.role), picked)


async def start_role(screen: ChatScreen, role: Role) -> None:
    """A new conversation under `role` (NO_ROLE: under none), loading its model if it names one."""
    if screen.busy("role"):
        return
    await screen.stored.new_conversation()
    # the role's system prompt and sampling, for the model that will answer (Conversation.switch_model)
    switch = screen.conversation.switch_model(None, None, role=role.name)
    model = screen.conversation.settings.model
    if switch:
        screen.start_load()
    screen.refresh_settings()
    if role.name:
        screen.app.notify(f"new conversation as {role.name}" + (f", loading {model}" if switch else ""),
                          title="Role")
    else:
        screen.app.notify("new conversation without a role", title="Role")
