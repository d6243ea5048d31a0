"""Half-typed messages, kept per conversation across quit and reopen (the TUI's message box).

A draft is the text left in the message box when the user leaves a conversation (opens
another, starts a new one, quits). It lives in `drafts.json` beside the history, in the data
dir (AIGC_CHAT_DATA_DIR in tests), keyed by the stored conversation's id, or NEW for the one
not saved yet. Nothing is kept with the history off (`--no-history` keeps nothing on disk).

Written whole and atomically (a temporary file renamed over it), on the caller's thread: the
TUI calls `save` from its config-writer thread. An unreadable or hostile file is ignored
(drafts are a convenience); a draft is kept exactly as typed, up to MAX_CHARS characters.
"""

from __future__ import annotations

import json
import os
import threading
from pathlib import Path

NEW = "new"  # the key of the conversation not saved yet
MAX_CHARS = 200_000  # per draft: a large paste is kept, a runaway one is not
MAX_DRAFTS = 200  # the most recent ones are kept
MAX_FILE = 8 << 20  # bytes: a larger file is not read


def default_path() -> Path:
    from aigc_chat.paths import data_dir

    return data_dir() / "drafts.json"


class Drafts:
    """The drafts file, read once; `get`/`put` in memory, `save` writes it."""

    def __init__(self, path: Path | None = None) -> None:
        self.path = path or default_path()
        self._lock = threading.Lock()
        self._drafts: dict[str, str] = self._read()

    def _read(self) -> dict[str, str]:
        try:
            if self.path.stat().st_size > MAX_FILE:
                return {}
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except (OSError, ValueError):
            return {}
        if not isinstance(data, dict):
            return {}
        return {k: v for k, v in data.items() if isinstance(k, str) and isinstance(v, str) and v}

    def get(self, key: str) -> str:
        with self._lock:
            return self._drafts.get(key, "")

    def put(self, key: str, text: str) -> bool:
        """Remember `text` as the draft of `key` ("" forgets it); True when that changed it."""
        text = text[:MAX_CHARS] if text.strip() else ""
        with self._lock:
            if self._drafts.get(key, "") == text:
                return False
            self._drafts.pop(key, None)
            if text:
                self._drafts[key] = text  # newest last
                while len(self._drafts) > MAX_DRAFTS:
                    self._drafts.pop(next(iter(self._drafts)))
            return True

    def forget(self, key: str) -> bool:
        return self.put(key, "")

    def save(self) -> None:
        """Write the file (OSError when it cannot be written: the caller says so)."""
        with self._lock:
            text = json.dumps(self._drafts, ensure_ascii=False)
        self.path.parent.mkdir(parents=True, exist_ok=True)
        tmp = self.path.with_name(f".{self.path.name}.{os.getpid()}.tmp")
        tmp.write_text(text, encoding="utf-8")
        os.replace(tmp, self.path)
