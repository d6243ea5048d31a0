"""The model picker (F4, or "Switch model" in the command palette).

It lists what `aigc-chat models` lists (aigc_chat.discovery: the bundled models, config
models_dir, the Hugging Face cache, LM Studio, llama.cpp's cache, Ollama) with the same facts,
filtered as you type (every word must appear in the name, architecture, quantisation, kind,
source or path). Files that are not chat models (embeddings, vision projectors, unreadable
files) are shown but cannot be picked. The last row, "Download…" (or Ctrl+D), opens the
download panel (tui/download_panel.py): a model pulled from a hub lands in the hub cache and
comes back here listed and highlighted.

Picking loads the model on a worker thread while the old one stays attached: a failure keeps
the old model and says why. On success the new model takes over the conversation (the whole
conversation is sent to it with the next message), and the sampling values that came from the
old model's defaults are replaced by the new model's (Conversation.switch_model, as /model and
the settings pane do); values set by a flag or changed in this conversation are kept. The old
model is closed: switching back loads it again (a 100-300 MB model loads in about a second;
keeping several resident is left to a later change).
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING, Any

from textual import on, work
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, Label, OptionList, Static
from textual.widgets.option_list import Option

from aigc_chat.discovery import Found, human_params, human_size
from aigc_chat.sanitize import one_line, sanitize
from aigc_chat.tui.repaint import repaint_all

DOWNLOAD = "download"  # the option id of the last row

if TYPE_CHECKING:
    from aigc_chat.backends.base import Backend
    from aigc_chat.chat_state import Phase
    from aigc_chat.tui.chat_screen import ChatScreen


def row_text(e: Found) -> str:
    """One line of facts, as `aigc-chat models` prints them."""
    chat = "chat" if e.chat_template else "no template"
    kind = "" if e.kind in ("chat", "text") else f"  [{e.kind}{': ' + e.error if e.error else ''}]"
    parts = f", {e.parts} parts" if e.parts > 1 else ""
    facts = (f"{e.architecture or '?':<8} {human_params(e.parameters):>6} {e.quantization or '?':<7} "
             f"{human_size(e.size) if e.size else '?':>8}  ctx {e.context_length or '?':<6} {chat:<11}")
    return one_line(f"{one_line(e.name):<32} {facts} {e.source}{parts}{kind}")  # a file name: one row


def count_line(shown: list[Found], total: int) -> str:
    """'2 of 2 files, 1 can chat, 1 base model (no chat template)': "can chat" is what
    `aigc-chat models` calls CHAT yes (a chat template); a base model loads but only continues text."""
    chat = sum(e.kind == "chat" for e in shown)
    base = sum(e.kind == "text" for e in shown)
    line = f"{len(shown)} of {total} files, {chat} can chat"
    if base:
        line += f", {base} base model{'s' if base != 1 else ''} (no chat template)"
    return line + ("" if shown else " (nothing matches the filter)")


def matches(e: Found, text: str) -> bool:
    hay = " ".join([e.name, e.architecture, e.quantization, e.kind, e.source, e.label, e.path,
                    e.title]).lower()
    return all(word in hay for word in text.lower().split())


class ModelPicker(ModalScreen["Found | None"]):
    """Choose a model; dismissed with the chosen Found, or None."""

    CSS_PATH = "model_picker.tcss"
    BINDINGS = [
        Binding("escape", "close", "Close"),
        Binding("down", "move(1)", "Next", show=False),
        Binding("up", "move(-1)", "Previous", show=False),
        Binding("ctrl+d", "download", "Download…", priority=True),  # over the filter's delete-right
    ]

    def __init__(self, config: Any = None, current: str = "", entries: list[Found] | None = None) -> None:
        super().__init__()
        self.config = config
        self.current = current
        self.entries: list[Found] | None = entries
        self.shown: list[Found] = []
        self.downloaded = ""  # the path of a model the download panel just brought

    def compose(self) -> ComposeResult:
        with Vertical(id="picker"):
            yield Label("Switch model: type to filter, Enter loads, Ctrl+D downloads, Esc closes", id="picker-title")
            yield Input(id="picker-filter", placeholder="filter: part of a name, an architecture, a source…")
            yield OptionList(id="picker-list")
            yield Static("looking for models…", id="picker-status")

    def on_mount(self) -> None:
        self.query_one("#picker-filter", Input).focus()
        if self.entries is None:
            self._scan()
        else:
            self._refilter()

    @work(thread=True, exclusive=True, group="picker-scan", exit_on_error=False)
    def _scan(self) -> None:
        from aigc_chat import discovery

        try:
            entries = discovery.scan(self.config)
            error = ""
        except Exception as exc:  # noqa: BLE001 - an unreadable folder is a line in the picker, never a crash
            entries, error = [], f"cannot list models: {exc}"
        self.app.call_from_thread(self._scanned, entries, error)

    def _scanned(self, entries: list[Found], error: str) -> None:
        self.entries = entries
        self._refilter()
        at = self._downloaded_at()
        if at is not None:
            self.query_one("#picker-status", Static).update(Content(sanitize(
                f"downloaded {self.shown[at].name}: Enter loads it")))
        if error:
            self.query_one("#picker-status", Static).update(Content(sanitize(error)))

    @on(Input.Changed, "#picker-filter")
    def _filter_changed(self, event: Input.Changed) -> None:
        self._refilter()

    def _refilter(self) -> None:
        if self.entries is None:
            return
        text = self.query_one("#picker-filter", Input).value
        self.shown = [e for e in self.entries if matches(e, text)]
        options = self.query_one("#picker-list", OptionList)
        options.clear_options()
        options.add_options([
            Option(Content(("● " if self._is_current(e) else "  ") + row_text(e)), id=str(i),
                   disabled=not e.chattable)
            for i, e in enumerate(self.shown)
        ])
        options.add_option(Option(Content("  Download… a model from a Hugging Face hub (ORG/REPO:QUANT)"),
                                  id=DOWNLOAD))
        first = next((i for i, e in enumerate(self.shown) if e.chattable), None)
        at = self._downloaded_at()  # just pulled: highlighted, so Enter loads it
        options.highlighted = first if at is None else at
        self.query_one("#picker-status", Static).update(Content(count_line(self.shown, len(self.entries))))

    def _downloaded_at(self) -> int | None:
        if not self.downloaded:
            return None
        return next((i for i, e in enumerate(self.shown) if e.path == self.downloaded), None)

    def _is_current(self, e: Found) -> bool:
        return bool(self.current) and self.current in (e.name, e.path)

    def action_move(self, step: int) -> None:
        options = self.query_one("#picker-list", OptionList)
        if step > 0:
            options.action_cursor_down()
        else:
            options.action_cursor_up()

    @on(Input.Submitted, "#picker-filter")
    def _submitted(self, event: Input.Submitted) -> None:
        index = self.query_one("#picker-list", OptionList).highlighted
        if index == len(self.shown):
            self.action_download()
        elif index is not None and 0 <= index < len(self.shown) and self.shown[index].chattable:
            self.dismiss(self.shown[index])

    @on(OptionList.OptionSelected, "#picker-list")
    def _selected(self, event: OptionList.OptionSelected) -> None:
        if event.option.id == DOWNLOAD:
            self.action_download()
            return
        entry = self.shown[int(event.option.id or 0)]
        if entry.chattable:
            self.dismiss(entry)

    def action_download(self) -> None:
        from aigc_chat.tui.download_panel import DownloadPanel

        def done(path: Path | None) -> None:
            if path is None:
                return
            self.downloaded = str(path)
            self.query_one("#picker-filter", Input).value = ""
            self.entries = None
            self.query_one("#picker-status", Static).update(Content("looking for models…"))
            self._scan()

        self.app.push_screen(DownloadPanel(), done)

    def action_close(self) -> None:
        self.dismiss(None)


# -- switching, from the app ------------------------------------------------------------------


def open_picker(screen: ChatScreen) -> None:
    """Push the picker; a pick starts the background switch."""
    conv = screen.conversation

    def picked(found: Found | None) -> None:
        if found is not None:
            start_switch(screen, found)

    screen.app.push_screen(ModelPicker(conv.config, conv.settings.model), picked)


def model_ref(found: Found) -> str:
    """What the conversation records: a bundled model's name (its file may move), else the path."""
    return found.name if found.source == "bundled" else found.path


def start_switch(screen: ChatScreen, found: Found) -> None:
    from aigc_chat.loader import LOCAL_BACKENDS

    if screen.busy("pick_model"):
        return
    backend = screen.conversation.settings.backend
    if backend not in LOCAL_BACKENDS:
        backend = "llama"  # a GGUF file: the llama.cpp backend
    previous = screen.chat_state.loading(f"loading: {found.name}", engine_stays=True)
    screen.run_worker(lambda: _load(screen, found, backend, previous), thread=True, group="model-switch",
                      exclusive=True, exit_on_error=False)


def _load(screen: ChatScreen, found: Found, backend: str, previous: Phase) -> None:
    conv = screen.conversation
    try:  # the old model is not generating (we were idle); a spare of this model is reused
        new = conv.load_backend(None, conv.config, backend=backend, model=model_ref(found))
    except Exception as exc:  # noqa: BLE001 - a failed switch keeps the old model, and says why
        reason = str(exc) if str(exc) else type(exc).__name__
        screen.app.call_from_thread(_failed, screen, found, reason, previous)
        return
    screen.app.call_from_thread(_loaded, screen, found, backend, new)


def _failed(screen: ChatScreen, found: Found, reason: str, previous: Phase) -> None:
    old = screen.conversation.settings.model or "the default model"
    repaint_all(screen.app)  # a failed load may have hidden frames too
    screen.chat_state.restore(previous)
    screen.app.notify(f"{reason}; still on {one_line(old)}", title=f"Could not load {one_line(found.name)}",
                      severity="error", timeout=8)
    screen.call_later(screen.send_next_queued)


def _loaded(screen: ChatScreen, found: Found, backend: str, new: Backend) -> None:
    from aigc_chat.tui.events import ModelLoaded

    screen.conversation.switch_model(backend, model_ref(found))  # the sampling follows the model
    screen.post_message(ModelLoaded(new, []))  # the screen attaches it (closing the old one)
    screen.refresh_settings()
    screen.app.notify(f"now answering with {one_line(found.name)}", title="Model switched")
