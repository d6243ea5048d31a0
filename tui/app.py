"""The aigc-chat TUI application: a shell around the chat screen.

The app owns what outlives a screen: the conversation core (aigc_chat.conversation) it hands
to the chat screen (tui/chat_screen.py), the key bindings (built from tui/keymap.py, like the
help and the command palette), the theme, notifications and the clipboard. Everything a
turn needs happens in the chat screen and the core; the process around the app (history
opening, the terminal check, the exit) is tui/launch.py's.

Config writes (theme, reasoning shown or not, "save as default") run on a thread of their own, so a slow disk never
holds up a key.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any, ClassVar

from textual.app import App, SystemCommand
from textual.binding import BindingType
from textual.notifications import SeverityLevel
from textual.screen import Screen

from aigc_chat.backends.base import Backend
from aigc_chat.config import TUI_DEFAULTS, Config, load_config, save_config
from aigc_chat.conversation import Conversation
from aigc_chat.cpu import reserve_for_ui
from aigc_chat.errors import AigcError
from aigc_chat.history_service import HistoryService
from aigc_chat.history_writer import SerialThread
from aigc_chat.sanitize import one_line
from aigc_chat.tui import keymap
from aigc_chat.tui.chat_screen import ChatScreen
from aigc_chat.tui.clipboard import clipboard_sequences, clipboard_text
from aigc_chat.tui.commands import SlashProvider
from aigc_chat.tui.dialogs import HelpScreen
from aigc_chat.tui.events import ConversationDeleted, DefaultsSaved, HistoryFailed, Notice, ReasoningShown
from aigc_chat.tui.headless import HeadlessFinish, detach_terminal
from aigc_chat.tui.help_text import FOOT, help_sections
from aigc_chat.tui.launch import ui_reserve

ENGINE_WAIT = 5.0  # quitting: how long a streaming reply gets to end before the engine goes


class ChatApp(App[int]):
    CSS_PATH = "app.tcss"
    TITLE = "aigc-chat"
    ENABLE_COMMAND_PALETTE = True
    COMMANDS = App.COMMANDS | {SlashProvider}
    BINDINGS: ClassVar[list[BindingType]] = keymap.bindings()

    def __init__(self, config: Config, *, store: Any = None, conversation_id: int | None = None,
                 keep: frozenset[str] = frozenset(), backend: Backend | None = None,
                 history_note: str = "", start_note: str = "") -> None:
        """`store`: the history (None: no history); `conversation_id`: one to open at start;
        `keep`: the settings this run's flags set (they win over that conversation's);
        `backend`: one already loaded (the caller's to close)."""
        super().__init__()
        reserve_for_ui(ui_reserve())
        self.config = config
        self._install_quiet_output()
        self.initial_conversation = conversation_id
        self.keep = keep
        self.conversation = Conversation(config, HistoryService(store),
                                         on_history_failure=self._history_failed_in_writer,
                                         on_conversation_gone=self._conversation_gone_in_writer)
        self.conversation.keep = keep
        tui = {**TUI_DEFAULTS, **config.tui}
        off = "history is off: it cannot be opened (see the notice)" if store is None and history_note else ""
        self.chat_screen = ChatScreen(self.conversation, config, batch_interval=tui["stream_interval_ms"] / 1000,
                                      backend=backend, history_note=history_note, start_note=start_note,
                                      off_reason=off)
        self._theme_ready = False
        self.headless: HeadlessFinish | None = None  # finishing a reply after a hang-up
        self._io = SerialThread("config-writer")  # config.toml writes: theme, save as default
        theme = str(config.tui.get("theme", "textual-dark"))
        if theme in self.available_themes:
            self.theme = theme

    def _install_quiet_output(self) -> None:
        """`[tui] quiet_output` (the default): the terminal gets only the cells that change
        (tui/quiet_output.py). Only over Textual's own Linux driver (not a TEXTUAL_DRIVER
        override, not Windows); inline mode keeps Textual's inline driver."""
        if not {**TUI_DEFAULTS, **self.config.tui}["quiet_output"]:
            return
        try:
            from textual.drivers.linux_driver import LinuxDriver

            from aigc_chat.tui.quiet_output import QuietLinuxDriver
        except ImportError:  # pragma: no cover - not Unix
            return
        if self.driver_class is LinuxDriver:
            self.driver_class = QuietLinuxDriver

    def on_resize(self) -> None:
        """A resize may leave anything on the terminal: quiet output forgets what it knew."""
        invalidate = getattr(self._driver, "invalidate", None)
        if invalidate is not None:
            invalidate()

    def finish_headless(self) -> bool:
        """The terminal has gone (tui/terminal_watch.py): with `[tui] on_hangup = "finish"`,
        stop touching it and hand what the screen was doing to a HeadlessFinish; True when
        there was something to finish (the caller then quits the app; the process ends
        when the finish does). False: nothing to finish, or on_hangup = "stop"."""
        tui = {**TUI_DEFAULTS, **self.config.tui}
        if self.headless is not None:
            return True
        if tui["on_hangup"] != "finish":
            return False
        work = self.chat_screen.hand_over()
        if work is None:
            return False
        from aigc_chat.tui.terminal_watch import arm_watchdog

        detach_terminal()
        done, cancel, queued = work
        self.headless = HeadlessFinish(self.conversation, running_done=done, running_cancel=cancel,
                                       queued=queued, limit=float(tui["hangup_limit_s"]),
                                       after=arm_watchdog).start()
        return True

    def get_default_screen(self) -> Screen[Any]:
        return self.chat_screen

    def on_mount(self) -> None:
        if not self.is_headless:
            from aigc_chat.tui.terminal_watch import watch_terminal

            watch_terminal(self)
        self.theme_changed_signal.subscribe(self, self._theme_changed)
        self.call_after_refresh(self._enable_theme_saving)

    # -- the history's writer thread telling the screen --------------------------------------
    def _history_failed_in_writer(self, exc: Exception) -> None:
        path = getattr(exc, "path", None) or getattr(self.conversation.history.store, "path", "")
        try:
            self.chat_screen.post_message(HistoryFailed(getattr(exc, "reason", "") or str(exc), str(path)))
        except RuntimeError:  # the app's loop is gone (quitting): nobody to tell
            pass

    def _conversation_gone_in_writer(self, conversation_id: int) -> None:
        try:
            self.chat_screen.post_message(ConversationDeleted(conversation_id))
        except RuntimeError:  # quitting
            pass

    # -- actions of the key table that are the app's, not the chat screen's -----------------
    def action_help(self) -> None:
        if not isinstance(self.screen, HelpScreen):
            self.push_screen(HelpScreen(help_sections(), FOOT))

    def action_gan_screen(self) -> None:
        try:
            from aigc_chat.tui.gan_screen import GanScreen
        except ImportError as exc:
            self.notify(f"the GAN screen is not available in this build ({exc})", severity="warning")
            return
        self.push_screen(GanScreen())

    def action_save_default(self) -> None:
        settings = replace(self.conversation.settings)  # what it is now, written off the UI thread

        def save() -> None:
            try:
                path, running = self.conversation.write_defaults(settings)
            except (AigcError, OSError) as exc:
                self._post_notice(f"could not save: {exc}", "error")
                return
            try:  # used from now on: a new conversation starts with them
                self.post_message(DefaultsSaved(running, path))
            except RuntimeError:  # the app's loop is gone (quitting)
                pass

        self._io.submit(save)

    def on_defaults_saved(self, event: DefaultsSaved) -> None:
        self.conversation.config = event.config
        self.notify(f"saved as default in {event.path}")

    def get_system_commands(self, screen: Screen[Any]) -> Iterable[SystemCommand]:
        yield from super().get_system_commands(screen)
        for key in keymap.KEYS:
            if not key.palette:
                continue
            target = self if key.action in keymap.APP_ACTIONS else self.chat_screen
            hint = keymap.key_hint(key)
            yield SystemCommand(key.palette, f"{key.help[0].upper()}{key.help[1:]} {hint}".rstrip(),
                                getattr(target, f"action_{key.action}"))

    async def action_quit(self) -> None:
        self.chat_screen.stop_now()
        self.exit(0)

    # -- notices and the clipboard -----------------------------------------------------------
    def _post_notice(self, text: str, severity: SeverityLevel) -> None:
        """A notification from a thread (post_message is the thread-safe way in)."""
        try:
            self.post_message(Notice(text, severity))
        except RuntimeError:  # the app's loop is gone (quitting)
            pass

    def on_notice(self, event: Notice) -> None:
        self.notify(event.text, severity=event.severity)

    def notify(self, message: str, *, title: str = "", severity: SeverityLevel = "information",
               timeout: float | None = None, markup: bool = False) -> None:
        """Notices often carry untrusted text (an error from a server, a file name, a model's
        metadata): never parsed as markup (a `[` must not restyle or crash the screen), and
        sanitised like everything else shown, on one line (a name with a newline in it cannot
        add a line of its own)."""
        super().notify(one_line(message), title=one_line(title), severity=severity,
                       timeout=timeout, markup=markup)

    def copy_text(self, text: str, what: str = "text") -> None:
        """Copy with a notice; what lands on the clipboard is what the screen shows."""
        self.copy_to_clipboard(text)
        self.notify(f"copied {what} ({len(self._clipboard)} characters)")

    def copy_to_clipboard(self, text: str) -> None:
        """Every copy, Textual's own (a selection, a TextArea) included, goes through here:
        the text is sanitised exactly as the screen shows it, so a reply carrying `ESC[201~`
        and a carriage return cannot end a bracketed paste and run a command in the shell it
        is pasted into. OSC 52 to the terminal, wrapped for tmux when inside tmux."""
        safe = clipboard_text(text)
        self._clipboard = safe
        if self._driver is not None:
            self._driver.write(clipboard_sequences(safe))

    # -- the theme, remembered in config.toml -------------------------------------------------
    def _enable_theme_saving(self) -> None:
        self._theme_ready = True

    def _theme_changed(self, theme: Any) -> None:
        if not self._theme_ready:
            return
        name = getattr(theme, "name", str(theme))
        if self.config.tui.get("theme") == name:
            return
        self._remember("theme", name, "theme")

    # -- reasoning shown or one line, remembered in config.toml the same way -------------------
    def on_reasoning_shown(self, event: ReasoningShown) -> None:
        shown = event.shown
        if self.config.tui.get("show_reasoning", TUI_DEFAULTS["show_reasoning"]) == shown:
            return
        self._remember("show_reasoning", shown, "reasoning view")

    def _remember(self, key: str, value: Any, what: str) -> None:
        """A [tui] choice, kept in config.toml, written on the config-writer thread (the file
        may be slow to write); the file is read again first so nothing else in it changes."""
        self.config.tui[key] = value

        def save() -> None:
            try:
                cfg = load_config(self.config.path, environ={})
                cfg.tui[key] = value
                save_config(cfg)
            except (AigcError, OSError) as exc:
                self._post_notice(f"{what} not remembered: {exc}", "warning")

        self._io.submit(save)

    def on_unmount(self) -> None:
        # Let a streaming reply end (the core records it as cancelled) before the engine goes,
        # then write what the history's writer still has queued (a few seconds at most).
        # After a hang-up with a reply to finish, the headless finish does both instead.
        if self.headless is not None:
            self._io.close(timeout=5)
            return
        self.chat_screen.stop_now()
        self.chat_screen.keep_draft()  # what is half typed comes back on reopen (aigc_chat.drafts)
        if self.conversation.backend_lock.acquire(timeout=ENGINE_WAIT):
            self.conversation.backend_lock.release()
        self._io.close(timeout=5)  # a theme or default being written: let it land
        self.conversation.close()
