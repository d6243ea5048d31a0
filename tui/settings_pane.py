"""The settings pane: the conversation's backend, model, sampling, stops and system prompt.

Each field is checked with the same `coerce_param` the CLI and config use, so a bad value
gets the same reason everywhere; it is shown under the field and the old value stays in
force. Valid values are applied when the field is submitted (Enter) or left. The system
prompt is multi-line (Enter is a newline there): it applies when the field is left.

Each sampling field's label says where its value came from (aigc_chat.model_settings: a
flag, `role NAME`, config [models."GLOB"], config [generation], the model file, the built-in
table, the default), or "this conversation" once it differs from what the config and model give.
A conversation under a role (aigc_chat.roles: `--role`, the role picker F8) shows the role at
the top with what it set, and `role NAME` beside the system prompt while it is the role's.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from textual import events, on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, VerticalScroll
from textual.content import Content
from textual.message import Message
from textual.suggester import SuggestFromList
from textual.widgets import Button, Input, Label, OptionList, Select, Static, TextArea

from aigc_chat import roles
from aigc_chat.argtypes import escape, unescape
from aigc_chat.config import Config
from aigc_chat.conversation import ConversationSettings
from aigc_chat.errors import ParamError
from aigc_chat.params import coerce_param
from aigc_chat.sanitize import one_line, sanitize

NUMERIC_FIELDS: tuple[tuple[str, str], ...] = (
    ("temperature", "Temperature"),
    ("top_p", "Top p"),
    ("top_k", "Top k"),
    ("min_p", "Min p"),
    ("repeat_penalty", "Repeat penalty"),
    ("max_tokens", "Max tokens"),
    ("seed", "Seed (empty: random)"),
)


SYSTEM_TITLE = "System prompt (applies on leaving: Tab)"
MODEL_TITLE = "Model (Enter loads it)"


def _fmt(value: Any) -> str:
    return "" if value is None else str(value)


class StopList(OptionList):
    BINDINGS = [Binding("delete,backspace,d", "remove_stop", "Remove stop")]

    def action_remove_stop(self) -> None:
        self.query_ancestor(SettingsPane).remove_highlighted_stop()


class SystemPromptArea(TextArea):
    """A system prompt can be paragraphs long: Enter makes a new line here, and the text
    is applied when the field is left (Tab, F3, a click elsewhere). No key of its own:
    ctrl+s is flow control on some links (docs/tui.md, "Keys")."""

    def __init__(self, *, id: str | None = None) -> None:
        super().__init__(id=id, soft_wrap=True, show_line_numbers=False, tab_behavior="focus")
        self.applied = ""

    def show(self, text: str) -> None:
        """Set the text without reporting it as a change."""
        self.applied = text
        self.load_text(text)

    def action_apply(self) -> None:
        if self.text != self.applied:
            self.applied = self.text
            self.post_message(SettingsPane.SystemPromptChanged(self.text))

    def on_blur(self, event: events.Blur) -> None:
        self.action_apply()


class SettingsPane(VerticalScroll):
    """Fields for every setting of the current conversation. Esc in any field goes back to
    the message box (the chat screen hears Leave)."""

    BINDINGS = [Binding("escape", "leave", "Back to the message", show=False)]

    class Leave(Message):
        pass

    @dataclass
    class ParamChanged(Message):
        name: str
        value: Any

    @dataclass
    class SystemPromptChanged(Message):
        text: str

    @dataclass
    class ModelChosen(Message):
        backend: str
        model: str

    class SaveDefault(Message):
        pass

    def __init__(self, backends: list[str], *, id: str | None = None) -> None:
        super().__init__(id=id)
        self.backends = backends
        self._stops: tuple[str, ...] = ()
        self._loading = False
        self._applied: dict[str, str] = {}
        self._backend_value = ""

    def compose(self) -> ComposeResult:
        yield Static("", id="set-role")
        yield Label("Backend")
        yield Select([(b, b) for b in self.backends], id="set-backend", allow_blank=False, compact=True)
        yield Label(MODEL_TITLE, id="lbl-model")
        yield Input(id="set-model", placeholder="empty: the default model")
        yield Static("", id="set-model-list", classes="hint")
        for name, title in NUMERIC_FIELDS:
            yield Label(title, id=f"lbl-{name}")
            yield Input(id=f"set-{name}", classes="param")
            yield Static("", id=f"err-{name}", classes="error")
        yield Label("Stop sequences", id="lbl-stop")
        yield StopList(id="set-stops")
        yield Input(id="set-stop-add", placeholder=r"add a stop sequence (\n = newline), Enter")
        yield Static("", id="err-stop", classes="error")
        yield Label(SYSTEM_TITLE, id="lbl-system")
        yield SystemPromptArea(id="set-system")
        with Horizontal(id="settings-buttons"):
            yield Button("Save as default", id="set-save", variant="primary")

    def on_mount(self) -> None:
        self.border_title = "Settings (F3)"

    def action_leave(self) -> None:
        self.post_message(self.Leave())

    # -- attributes down ------------------------------------------------------------------
    def load(self, settings: ConversationSettings, models: list[str] | None = None,
             config: Config | None = None) -> None:
        """Show a conversation's settings (no messages are sent back for these values), and
        where each came from: `config`'s sources for those it still holds."""
        self._loading = True
        try:
            select = self.query_one("#set-backend", Select)
            self._backend_value = settings.backend
            if settings.backend in self.backends:
                select.value = settings.backend
            self.query_one("#set-model", Input).value = settings.model
            p = settings.params
            for name, _ in NUMERIC_FIELDS:
                value = _fmt(getattr(p, name))
                self.query_one(f"#set-{name}", Input).value = value
                self._applied[name] = value
                self._show_error(name, "")
            self._set_stops(p.stop)
            self._show_sources(settings, config)
            self._show_role(settings, config)
            self.query_one("#set-system", SystemPromptArea).show(settings.system_prompt)
            self.set_models(models or [])
        finally:
            self.call_after_refresh(self._done_loading)

    def _show_sources(self, settings: ConversationSettings, config: Config | None) -> None:
        titles = dict(NUMERIC_FIELDS, stop="Stop sequences")
        for name, title in titles.items():
            value = getattr(settings.params, name)
            if config is not None and value == getattr(config.generation, name, object()):
                source = config.source(name)
            else:
                source = "this conversation"
            self._show_source(name, source, title)

    def _show_role(self, settings: ConversationSettings, config: Config | None) -> None:
        """The conversation's role and what it set (shown only under a role)."""
        line = self.query_one("#set-role", Static)
        line.display = bool(settings.role)
        set_by_role = roles.sets(config, settings) if config is not None else []
        system = self.query_one("#lbl-system", Label)
        model_source = ""
        if "model" in set_by_role:
            model_source = f"role {settings.role}"
        elif config is not None and settings.model and settings.model != config.model:
            model_source = "this conversation"
        self.query_one("#lbl-model", Label).update(
            Content.assemble(MODEL_TITLE, ("  · " + sanitize(model_source), "dim")) if model_source else MODEL_TITLE)
        if "system prompt" in set_by_role:
            system.update(Content.assemble(SYSTEM_TITLE, ("  · " + one_line(f"role {settings.role}"), "dim")))
        else:
            system.update(SYSTEM_TITLE)
        if not settings.role:
            return
        what = (("sets " + ", ".join(n.replace("_", " ") for n in set_by_role)) if set_by_role
                else "its values saved with this conversation")
        line.update(Content.assemble(("Role ", "bold"), (one_line(settings.role), "bold"),
                                     ("  · " + what, "dim")))

    def on_settings_pane_system_prompt_changed(self, event: SettingsPane.SystemPromptChanged) -> None:
        self.query_one("#lbl-system", Label).update(SYSTEM_TITLE)  # the user's now, not the role's

    def _show_source(self, name: str, source: str, title: str | None = None) -> None:
        title = title or dict(NUMERIC_FIELDS, stop="Stop sequences")[name]
        self.query_one(f"#lbl-{name}", Label).update(Content.assemble(
            title, ("  · " + one_line(source), "dim")))

    def _done_loading(self) -> None:
        self._loading = False

    def set_models(self, models: list[str]) -> None:
        """Offer a backend's models (openai: the server's /v1/models) in the model field."""
        field = self.query_one("#set-model", Input)
        field.suggester = SuggestFromList(models, case_sensitive=False) if models else None
        shown = ", ".join(one_line(m) for m in models[:8])
        hint = "models: " + shown + (" …" if len(models) > 8 else "") if len(models) > 1 else ""
        self.query_one("#set-model-list", Static).update(Content(sanitize(hint)))

    def _set_stops(self, stops: tuple[str, ...]) -> None:
        self._stops = tuple(stops)
        # shown as typed: the escapes the input takes (\n, \t, ...), then made safe to show
        self.query_one(StopList).set_options([Content(sanitize(escape(s))) for s in self._stops])

    def _show_error(self, name: str, reason: str) -> None:
        err = self.query_one(f"#err-{name}", Static)
        err.update(Content(reason))
        err.display = bool(reason)
        if name != "stop":
            self.query_one(f"#set-{name}", Input).set_class(bool(reason), "-invalid")

    # -- numeric fields -------------------------------------------------------------------
    def _check(self, name: str, text: str) -> tuple[bool, Any]:
        try:
            return True, coerce_param(name, text)
        except ParamError as exc:
            self._show_error(name, str(exc))
            return False, None

    @on(Input.Changed, ".param")
    def _param_typed(self, event: Input.Changed) -> None:
        name = (event.input.id or "")[4:]
        if self._check(name, event.value)[0]:
            self._show_error(name, "")

    @on(Input.Submitted, ".param")
    def _param_submitted(self, event: Input.Submitted) -> None:
        self._apply(event.input)

    @on(Input.Blurred, ".param")
    def _param_left(self, event: Input.Blurred) -> None:
        self._apply(event.input)

    def _apply(self, field: Input) -> None:
        if self._loading:
            return
        name = (field.id or "")[4:]
        if self._applied.get(name) == field.value:
            return
        ok, value = self._check(name, field.value)
        if ok:
            self._applied[name] = field.value
            self._show_source(name, "this conversation")
            self.post_message(self.ParamChanged(name, value))

    # -- stops ------------------------------------------------------------------------------
    @on(Input.Submitted, "#set-stop-add")
    def _stop_added(self, event: Input.Submitted) -> None:
        text = unescape(event.value)  # the command line's rule: `\n\n` is two newlines
        try:
            stops = coerce_param("stop", (*self._stops, text))
        except ParamError as exc:
            self._show_error("stop", str(exc))
            return
        self._show_error("stop", "")
        event.input.value = ""
        self._set_stops(stops)
        self._show_source("stop", "this conversation")
        self.post_message(self.ParamChanged("stop", stops))

    def remove_highlighted_stop(self) -> None:
        option_list = self.query_one(StopList)
        index = option_list.highlighted
        if index is None or not 0 <= index < len(self._stops):
            return
        stops = self._stops[:index] + self._stops[index + 1:]
        self._set_stops(stops)
        self._show_source("stop", "this conversation")
        self.post_message(self.ParamChanged("stop", stops))

    # -- the rest ---------------------------------------------------------------------------
    @on(Input.Submitted, "#set-model")
    def _model_submitted(self, event: Input.Submitted) -> None:
        backend = self.query_one("#set-backend", Select).value
        self.post_message(self.ModelChosen(str(backend), event.value.strip()))

    @on(Select.Changed, "#set-backend")
    def _backend_changed(self, event: Select.Changed) -> None:
        if (self._loading or not self._backend_value or event.value is Select.BLANK
                or event.value == self._backend_value):
            return  # a value we set ourselves, not the user's choice
        self._backend_value = str(event.value)
        self.post_message(self.ModelChosen(str(event.value), self.query_one("#set-model", Input).value.strip()))

    @on(Button.Pressed, "#set-save")
    def _save(self, event: Button.Pressed) -> None:
        event.stop()
        self.post_message(self.SaveDefault())
