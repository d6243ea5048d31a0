"""Look into the history while another process (the app under test) is writing it.

For tests that must act on what has been stored so far, not on how long they waited: a
kill -9 mid-reply is only a test of "what was saved survives" once something has been
saved, so they poll `last_reply` until it shows (tests/waiting.py) instead of sleeping.
"""

from __future__ import annotations

from pathlib import Path

from aigc_chat.history_store import HistoryStore


def last_reply(path: Path) -> tuple[str, str | None] | None:
    """(content, finish_reason) of the newest conversation's last message if that is the
    assistant's, else None; read the way another process would (read-only, through the WAL),
    so the writer is never blocked. None too while the file or its first rows do not exist."""
    try:
        with HistoryStore(path, readonly=True) as s:
            convs = s.list_conversations(limit=1)
            if not convs:
                return None
            msgs = s.get_conversation(convs[0].id).messages
    except Exception:  # noqa: BLE001 - not created yet, or mid-migration
        return None
    return (msgs[-1].content, msgs[-1].finish_reason) if msgs and msgs[-1].role == "assistant" else None
