"""Modal screens: confirm, ask for a line of text, help."""

from __future__ import annotations

from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Horizontal, Vertical, VerticalScroll
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Button, Input, Label, Static

from aigc_chat.sanitize import one_line, sanitize


class ConfirmDialog(ModalScreen[bool]):
    BINDINGS = [Binding("escape,n", "dismiss(False)", "No"), Binding("y", "dismiss(True)", "Yes")]

    def __init__(self, question: str, *, default_yes: bool = False) -> None:
        super().__init__(classes="dialog-screen")
        self.question = question
        self.default_yes = default_yes  # focus on Yes (a question whose Yes loses nothing)

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Content(sanitize(self.question)), classes="question")
            with Horizontal(classes="buttons"):
                yield Button("Yes (y)", id="yes", variant="error")
                yield Button("No (n)", id="no")

    def on_mount(self) -> None:
        self.query_one("#yes" if self.default_yes else "#no", Button).focus()

    def on_button_pressed(self, event: Button.Pressed) -> None:
        self.dismiss(event.button.id == "yes")


class TextDialog(ModalScreen[str | None]):
    """One line of input (rename, export path); Enter accepts, Esc cancels."""

    BINDINGS = [Binding("escape", "dismiss(None)", "Cancel")]

    def __init__(self, prompt: str, value: str = "", *, hint: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self.prompt = prompt
        self.value = value
        self.hint = hint

    def compose(self) -> ComposeResult:
        with Vertical(classes="dialog"):
            yield Label(Content(self.prompt), classes="question")
            yield Input(self.value, id="dialog-input")
            if self.hint:
                yield Label(Content(self.hint), classes="hint")

    def on_input_submitted(self, event: Input.Submitted) -> None:
        self.dismiss(event.value)


class HelpScreen(ModalScreen[None]):
    """Keys and commands as two tight tables (no rule between rows: one or two screens)."""

    BINDINGS = [Binding("escape,f1,q", "dismiss(None)", "Close")]

    def __init__(self, sections: list[tuple[str, list[tuple[str, str]]]], foot: str = "") -> None:
        super().__init__(classes="dialog-screen")
        self.sections = sections
        self.foot = foot

    def compose(self) -> ComposeResult:
        from rich.table import Table
        from rich.text import Text

        with VerticalScroll(classes="dialog help", id="help-body") as body:
            body.border_title = "aigc-chat help (Esc closes)"
            for title, rows in self.sections:
                yield Label(Content.assemble((title, "bold")), classes="help-title")
                table = Table(box=None, show_header=False, padding=(0, 1), expand=True)
                table.add_column(style="bold", no_wrap=True)
                table.add_column(ratio=1)
                for key, text in rows:
                    table.add_row(Text(key), Text(text))
                yield Static(table, classes="help-table")
            body.border_subtitle = self.foot


class FileScreen(ModalScreen[None]):
    """An attached file's text, as it will be sent (sanitised on screen like all shown text)."""

    BINDINGS = [Binding("escape,q,enter", "dismiss(None)", "Close")]

    def __init__(self, name: str, text: str) -> None:
        super().__init__(classes="dialog-screen")
        self.file_name, self.text = name, text

    def compose(self) -> ComposeResult:
        with VerticalScroll(classes="dialog help"):
            yield Label(Content(one_line(self.file_name)), classes="question")
            yield Label(Content(sanitize(self.text)))
