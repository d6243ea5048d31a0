"""How a run starts its conversation: the rules both front ends share (docs/history.md).

- `--no-history` saves nothing from this run. Alone, the history file is never touched; with
  `--continue` / `--conversation` it is opened read-only, the earlier turns are sent and
  nothing new is written.
- A history that cannot be written is opened read-only (nothing saved, earlier conversations
  can be read); one that cannot be opened at all leaves the run without a history. Both go
  on with a warning, because a history is a convenience, never a precondition for an
  answer, unless the run asked for a saved conversation (`--continue` / `--conversation`):
  answering without it would be a wrong answer, so that is an error.
- `--continue` with nothing saved yet starts a new conversation, with a note.
- `--conversation N` that does not exist is an error, before any model is loaded.
- Flags win over a stored conversation's settings: `--model`, `--backend`, `--system` and the
  sampling flags apply to the continued conversation; everything else comes from it.
"""

from __future__ import annotations

import argparse
from dataclasses import dataclass
from typing import TYPE_CHECKING

from aigc_chat.config import Config
from aigc_chat.errors import UsageError
from aigc_chat.params import PARAM_NAMES

if TYPE_CHECKING:
    from aigc_chat.history import HistoryError
    from aigc_chat.history_store import HistoryStore


@dataclass
class HistoryOpening:
    """The store a run got (None: no history), and why it is less than read-write."""

    store: HistoryStore | None
    problem: HistoryError | None = None  # why it could not be opened, or only read-only
    off_by_flag: bool = False  # --no-history: nothing is saved, by the user's choice

    @property
    def saving(self) -> bool:
        return self.store is not None and not self.store.readonly and not self.off_by_flag


def wants_saved(args: argparse.Namespace) -> bool:
    return bool(getattr(args, "continue_", False) or getattr(args, "conversation", None))


def open_history(args: argparse.Namespace) -> HistoryOpening:
    """Open the history as the rules above say (on the caller's thread, before the run)."""
    from aigc_chat.history import HistoryError
    from aigc_chat.history_store import HistoryStore, default_path

    if getattr(args, "no_history", False):
        if not wants_saved(args) or not default_path().exists():
            return HistoryOpening(None, off_by_flag=True)
        return HistoryOpening(HistoryStore(readonly=True), off_by_flag=True)
    try:
        return HistoryOpening(HistoryStore())
    except HistoryError as exc:
        problem = exc
    try:
        return HistoryOpening(HistoryStore(problem.path, readonly=True), problem)
    except HistoryError:
        if wants_saved(args):
            raise problem from None
        return HistoryOpening(None, problem)


def conversation_to_open(store: HistoryStore | None, args: argparse.Namespace) -> tuple[int | None, str]:
    """The saved conversation this run carries on (None: a new one) and a note for the user."""
    wanted = getattr(args, "conversation", None)
    if wanted is None and not getattr(args, "continue_", False):
        return None, ""
    if store is None:  # --no-history and no history file yet: nothing was ever saved
        if wanted is not None:
            raise UsageError(f"no conversation {int(wanted)}")
        return None, "no saved conversation to continue; starting a new one"
    if wanted is not None:
        store.get_conversation(int(wanted))  # UsageError("no conversation N")
        return int(wanted), ""
    cid = store.latest_conversation_id()
    if cid is None:
        return None, "no saved conversation to continue; starting a new one"
    return cid, ""


def flag_settings(config: Config, args: argparse.Namespace) -> frozenset[str]:
    """The settings this run's flags set: they win over a continued conversation's own."""
    names = {name for name in PARAM_NAMES if config.source(name) == "flag"}
    for flag, name in (("backend", "backend"), ("model", "model"), ("system", "system_prompt")):
        if getattr(args, flag, None) is not None:
            names.add(name)
    if "backend" in names or "model" in names:  # a model named anew: its backend goes with it
        names |= {"backend", "model"}
    return frozenset(names)
