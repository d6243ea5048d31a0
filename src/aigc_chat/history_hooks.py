"""History for one-shot runs (`aigc-chat --prompt`): save the exchange, continue a saved one.

The question is saved before generation starts (a session listener), the reply while it
streams (`on_delta`, called by the one-shot loop, flushes about once a second) and once more
at the end with its stats and finish reason. History is a convenience here, never a
precondition: if the store cannot be opened or written, one warning goes to stderr and the
answer is given anyway. The exception is `--continue` / `--conversation`: answering without
the conversation the user asked for would be a wrong answer, so that is an error.
"""

from __future__ import annotations

import argparse
import sys
from typing import Any, TextIO

from aigc_chat.backends.base import GenerationResult, Message
from aigc_chat.config import Config
from aigc_chat.errors import AigcError, UsageError
from aigc_chat.session import ChatSession

PROG = "aigc-chat"


class OneshotHistory:
    """The link between one one-shot run and the history store."""

    def __init__(self, session: ChatSession, config: Config, args: argparse.Namespace,
                 err: TextIO | None = None) -> None:
        self.session = session
        self.config = config
        self.err = err if err is not None else sys.stderr
        self.save = not getattr(args, "no_history", False)
        self.continue_latest = bool(getattr(args, "continue_", False))
        self.wanted = getattr(args, "conversation", None)
        self.store: Any = None
        self.conversation_id: int | None = None
        self.recorder: Any = None
        self._text = ""
        self._warned = False
        self._broken = False
        self._args_system = getattr(args, "system", None)
        if not (self.save or self.continue_latest or self.wanted):
            return  # --no-history and nothing to load: never touch the file
        from aigc_chat.history import HistoryStore

        try:
            self.store = HistoryStore()
        except AigcError as exc:
            if self.continue_latest or self.wanted:
                raise
            self._fail(exc)
            return
        if self.save:
            session.listeners.append(self._on_message)

    # -- loading -------------------------------------------------------------------------

    def load_into(self, session: ChatSession) -> None:
        """Put the earlier turns of the requested conversation into the session."""
        cid = self._requested_id()
        if cid is None:
            return
        conv = self.store.get_conversation(cid)  # UsageError("no conversation N") if missing
        self.conversation_id = cid
        turns = [Message(m.role, m.content) for m in conv.messages
                 if m.kind == "text" and m.role in ("user", "assistant") and m.content]
        session.messages[:0] = turns
        stored_system = conv.settings.get("system_prompt") if isinstance(conv.settings, dict) else None
        if stored_system and not self._system_given():
            session.system_prompt = str(stored_system)

    def _requested_id(self) -> int | None:
        if self.wanted:
            try:
                return int(str(self.wanted).strip())
            except ValueError:
                raise UsageError(f"--conversation: expected a conversation id, got {self.wanted!r}") from None
        if self.continue_latest:
            cid = self.store.latest_conversation_id()
            if cid is None:
                self.err.write(f"{PROG}: note: no saved conversation to continue; starting a new one\n")
            return cid
        return None

    def _system_given(self) -> bool:
        return self._args_system is not None

    # -- saving --------------------------------------------------------------------------

    def _settings(self) -> dict[str, Any]:
        try:
            info = self.session.backend.info()
            backend, model = info.name, info.model
        except Exception:  # noqa: BLE001 - the settings record must not stop the answer
            backend, model = self.config.backend, str(self.config.model or "")
        return {"backend": backend, "model": model, "system_prompt": self.session.system_prompt,
                "generation": self.session.params.to_dict()}

    def _on_message(self, msg: Message, result: GenerationResult | None) -> None:
        if self._broken:
            return
        try:
            if msg.role == "user":
                settings = self._settings()
                created = self.conversation_id is None
                if created:
                    self.conversation_id = self.store.create_conversation(
                        model=settings["model"], backend=settings["backend"], settings=settings)
                else:
                    self.store.update_settings(self.conversation_id, settings,
                                               model=settings["model"], backend=settings["backend"])
                try:
                    self.store.add_message(self.conversation_id, "user", msg.content)
                except BaseException:
                    # Whatever failed (the store, or text it cannot encode), leave no empty
                    # "(untitled)" conversation behind, if the store lets us.
                    if created:
                        try:
                            self.store.delete_conversation(self.conversation_id)
                        except Exception:  # noqa: BLE001 - the first error is the one to report
                            pass
                        self.conversation_id = None
                    raise
                from aigc_chat.history import ReplyRecorder

                self.recorder = ReplyRecorder(self.store, self.conversation_id)
                self._text = ""
            elif msg.role == "assistant" and result is not None and self.recorder is not None:
                self.recorder.finish(result)
        except AigcError as exc:
            self._fail(exc)

    def on_delta(self, delta: str) -> None:
        """Called by the one-shot loop for every piece of text as it is generated."""
        if self.recorder is None or self._broken:
            return
        self._text += delta
        try:
            self.recorder.feed(self._text)
        except AigcError as exc:
            self._fail(exc)

    def _fail(self, exc: BaseException) -> None:
        self._broken = True
        if not self._warned:
            self._warned = True
            self.err.write(f"{PROG}: warning: this answer is not saved to the history: {exc}\n")
            self.err.flush()

    def close(self) -> None:
        if self.store is not None:
            try:
                self.store.close()
            except Exception:  # noqa: BLE001
                pass
            self.store = None


def attach_oneshot(session: ChatSession, config: Config, args: argparse.Namespace) -> OneshotHistory:
    """Called by the one-shot CLI once the backend is loaded, before the question is sent."""
    return OneshotHistory(session, config, args)
