"""The picker's "Download…" panel: a hub reference in, a progress line, Esc to stop.

The download is aigc_chat.hub's (the same code as `aigc-chat pull`) on a thread worker: the
app keeps drawing and a reply that is streaming goes on. Esc while it runs sets the cancel
Event; the transfer stops at the next chunk and the partial file stays in the hub cache, so
Enter (or `aigc-chat pull` with the same reference) continues it. Esc when nothing runs
closes the panel. A finished download dismisses the panel with the model's path: the
picker lists it, highlighted, and Enter loads it.
"""

from __future__ import annotations

import threading
import time
from pathlib import Path

from textual import on
from textual.app import ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from aigc_chat.sanitize import sanitize


class DownloadPanel(ModalScreen["Path | None"]):
    CSS_PATH = "model_picker.tcss"
    BINDINGS = [Binding("escape", "stop_or_close", "Stop / close")]

    def __init__(self) -> None:
        super().__init__()
        self.cancel = threading.Event()
        self.running = False
        self.line = ""

    def compose(self) -> ComposeResult:
        with Vertical(id="download"):
            yield Label("Download a model from a Hugging Face hub: Enter starts, Esc stops (the partial file is "
                        "kept: Enter again continues)", id="download-title")
            yield Input(id="download-ref", placeholder="ORG/REPO:QUANT  or  ORG/REPO/FILE.gguf  (default quant Q4_K_M)")
            yield Static("", id="download-progress")

    def on_mount(self) -> None:
        self.query_one("#download-ref", Input).focus()

    def show(self, text: str) -> None:
        self.line = sanitize(text)
        self.query_one("#download-progress", Static).update(Content(self.line))

    @on(Input.Submitted, "#download-ref")
    def _start(self, event: Input.Submitted) -> None:
        ref = event.value.strip()
        if self.running or not ref:
            return
        self.running = True
        self.cancel.clear()
        self.show(f"asking the hub about {ref}…")
        self.run_worker(lambda: self._download(ref), thread=True, group="download", exclusive=True,
                        exit_on_error=False)

    def _download(self, ref_text: str) -> None:
        from aigc_chat import hub, hub_ref
        from aigc_chat.discovery import human_size
        from aigc_chat.errors import AigcError
        from aigc_chat.pull_cli import figures

        start = time.monotonic()
        first: list[int] = []
        last = [0.0]

        def progress(done: int, total: int, name: str) -> None:
            now = time.monotonic()
            if not first:
                first.append(done)
            if now - last[0] >= 0.1 or done >= total:
                last[0] = now
                pct = 100 * done / total if total else 100.0
                text = f"{name}: {pct:.1f}%  {figures(done, total, done - first[0], now - start)}"
                self.app.call_from_thread(self.show, text)

        try:
            ref = hub_ref.parse_ref(ref_text)
            p = hub.plan(ref)
            self.app.call_from_thread(self.show, f"{ref}: {len(p.files)} file(s), {human_size(p.total)}…")
            path = hub.pull(p, on_progress=progress, cancel=self.cancel)
        except hub.PullCancelled:
            self.app.call_from_thread(self._ended, "stopped: the partial file is kept; Enter continues, Esc closes")
            return
        except AigcError as exc:
            self.app.call_from_thread(self._ended, str(exc))
            return
        except Exception as exc:  # noqa: BLE001 - a failed download is a line in the panel, never a crash
            self.app.call_from_thread(self._ended, f"download failed: {type(exc).__name__}: {exc}")
            return
        self.app.call_from_thread(self._done, path)

    def _ended(self, text: str) -> None:
        self.running = False
        self.show(text)

    def _done(self, path: Path) -> None:
        self.running = False
        self.dismiss(path)

    def action_stop_or_close(self) -> None:
        if self.running:
            self.cancel.set()
            self.show(self.line + "  (stopping…)")
        else:
            self.dismiss(None)
