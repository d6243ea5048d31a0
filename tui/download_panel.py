"""The picker's "Download…" panel: a hub reference in, a progress line, Esc to stop.

The download is aigc_chat.hub's (the same code as `aigc-chat pull`) in a `DownloadJob` that
belongs to the app, on an app-level thread worker: the app keeps drawing, a reply that is
streaming goes on, and Ctrl+B hides the panel while the download continues (the chat is
usable meanwhile; a notification says when it is done, and "Download…" again shows its
progress). Esc while it runs sets the cancel Event: the transfer stops at the next chunk and
the partial file stays in the hub cache, so Enter (or `aigc-chat pull` with the same
reference) continues it. Esc when nothing runs closes the panel. A download that finishes
while the panel is open dismisses it with the model's path: the picker lists the model,
highlighted, and Enter loads it.
"""

from __future__ import annotations

import asyncio
import threading
import time
import weakref
from collections.abc import Callable
from pathlib import Path

from textual import on
from textual.app import App, ComposeResult
from textual.binding import Binding
from textual.containers import Vertical
from textual.content import Content
from textual.screen import ModalScreen
from textual.widgets import Input, Label, Static

from aigc_chat.sanitize import sanitize


class DownloadJob:
    """One download at a time per app; what the panel shows, also while the panel is closed."""

    def __init__(self, app: App) -> None:
        self.app = app
        self.cancel = threading.Event()
        self.running = False
        self.ref = ""
        self.line = ""
        self.path: Path | None = None
        self.listener: Callable[[], None] | None = None  # the open panel, redrawn on each change
        self.finished = threading.Event()  # the worker thread is done
        self.loop: asyncio.AbstractEventLoop | None = None

    def start(self, ref_text: str) -> None:
        self.running = True
        self.ref = ref_text
        self.path = None
        self.cancel.clear()
        self.finished.clear()
        self.loop = asyncio.get_running_loop()  # start() runs on the app's loop
        self._set(f"asking the hub about {ref_text}…")
        self.app.run_worker(lambda: self._download(ref_text), thread=True, group="download", exclusive=True,
                            exit_on_error=False)

    def _post(self, callback: Callable[..., None], *args: object) -> None:
        """Run `callback(*args)` on the app, from the worker thread, without waiting: call_from_thread
        would block forever on a loop that stopped while the app quit."""
        if not self.app.is_running or self.loop is None:
            return
        try:
            self.loop.call_soon_threadsafe(self.app.call_later, callback, *args)
        except RuntimeError:  # the loop is closed: the app is gone
            pass

    def _set(self, text: str) -> None:
        self.line = sanitize(text)
        if self.listener is not None:
            self.listener()

    def _download(self, ref_text: str) -> None:
        try:
            self._run(ref_text)
        finally:
            self.finished.set()

    def _run(self, ref_text: str) -> None:
        from aigc_chat import hub, hub_ref
        from aigc_chat.discovery import human_size
        from aigc_chat.errors import AigcError
        from aigc_chat.pull_cli import figures

        start = time.monotonic()
        first: list[int] = []
        last = [0.0]

        def progress(done: int, total: int, name: str) -> None:
            if not self.app.is_running:  # the app quit: stop at this chunk (the partial is kept), or
                self.cancel.set()  # the interpreter would wait at exit for the whole download
                return
            now = time.monotonic()
            if not first:
                first.append(done)
            if now - last[0] >= 0.1 or done >= total:
                last[0] = now
                pct = 100 * done / total if total else 100.0
                text = f"{name}: {pct:.1f}%  {figures(done, total, done - first[0], now - start)}"
                self._post(self._set, text)

        try:
            ref = hub_ref.parse_ref(ref_text)
            p = hub.plan(ref)
            self._post(self._set, f"{ref}: {len(p.files)} file(s), {human_size(p.total)}…")
            path = hub.pull(p, on_progress=progress, cancel=self.cancel)
        except hub.PullCancelled:
            self._post(self._ended, "stopped: the partial file is kept; Enter continues, Esc closes",
                                      None)
            return
        except AigcError as exc:
            self._post(self._ended, str(exc), None)
            return
        except Exception as exc:  # noqa: BLE001 - a failed download is a line in the panel, never a crash
            self._post(self._ended, f"download failed: {type(exc).__name__}: {exc}", None)
            return
        self._post(self._ended, f"downloaded: {path.name}", path)

    def _ended(self, text: str, path: Path | None) -> None:
        self.running = False
        self.path = path
        self._set(text)
        if self.listener is None:  # hidden: say it where the user is
            if path is not None:
                self.path = None  # nothing to hand to a panel opened later: the picker lists it
                self.app.notify(sanitize(f"{path.name} is ready: F4 lists it"), title="Download finished")
            elif not self.cancel.is_set():
                self.app.notify(self.line, title="Download failed", severity="error", timeout=10)


_JOBS: weakref.WeakKeyDictionary[App, DownloadJob] = weakref.WeakKeyDictionary()


def job_for(app: App) -> DownloadJob:
    if app not in _JOBS:
        _JOBS[app] = DownloadJob(app)
    return _JOBS[app]


class DownloadPanel(ModalScreen["Path | None"]):
    CSS_PATH = "model_picker.tcss"
    BINDINGS = [
        Binding("escape", "stop_or_close", "Stop / close"),
        Binding("ctrl+b", "hide", "Hide (keep downloading)", priority=True),
    ]

    def __init__(self) -> None:
        super().__init__()
        self.job: DownloadJob | None = None

    def compose(self) -> ComposeResult:
        with Vertical(id="download"):
            yield Label("Download a model from a Hugging Face hub: Enter starts, Esc stops (the partial file is "
                        "kept: Enter again continues), Ctrl+B hides this and keeps downloading", id="download-title")
            yield Input(id="download-ref", placeholder="ORG/REPO:QUANT  or  ORG/REPO/FILE.gguf  (default quant Q4_K_M)")
            yield Static("", id="download-progress")

    def on_mount(self) -> None:
        self.job = job_for(self.app)
        self.job.listener = self._redraw
        if self.job.ref:
            self.query_one("#download-ref", Input).value = self.job.ref
        self._redraw()
        self.query_one("#download-ref", Input).focus()

    def on_unmount(self) -> None:
        if self.job is not None and self.job.listener == self._redraw:
            self.job.listener = None

    @property
    def line(self) -> str:
        return self.job.line if self.job is not None else ""

    @property
    def running(self) -> bool:
        return self.job is not None and self.job.running

    def _redraw(self) -> None:
        if self.job is None:
            return
        self.query_one("#download-progress", Static).update(Content(self.job.line))
        if not self.job.running and self.job.path is not None:
            path, self.job.path = self.job.path, None
            self.dismiss(path)

    @on(Input.Submitted, "#download-ref")
    def _start(self, event: Input.Submitted) -> None:
        ref = event.value.strip()
        if self.job is None or self.job.running or not ref:
            return
        self.job.start(ref)

    def action_stop_or_close(self) -> None:
        if self.job is not None and self.job.running:
            self.job.cancel.set()
            self.query_one("#download-progress", Static).update(Content(self.job.line + "  (stopping…)"))
        else:
            self.dismiss(None)

    def action_hide(self) -> None:
        self.dismiss(None)
