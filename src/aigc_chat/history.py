"""The history's records and errors: what the store returns and every reader of it shares.

The history is split by job (docs/architecture.md, "The history"):
- history_schema.py: the SQL layout, each migration a function applied in order;
- history_store.py: the SQLite file (opening it, WAL, read-only), its rows, search;
- history_export.py: a stored conversation as Markdown or JSON;
- history_recorder.py: one reply saved while it streams (a turn's save policy);
- history_writer.py / history_service.py: the writer and reader threads of a front end;
- labels.py: the short texts shown for stored things (titles, model names, times).

This module holds only the shapes they pass around, so that an export, the CLI or the TUI
can name a stored conversation without opening SQLite. A stored conversation's branches and
the path it shows follow the tree's rules (aigc_chat.tree), never a copy of them.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import TYPE_CHECKING

from aigc_chat.errors import AigcError, UsageError

if TYPE_CHECKING:
    from collections.abc import Sequence

    from aigc_chat.tree import MessageTree


class HistoryError(AigcError):
    """The history file cannot be opened, read or written; the message says which and why.

    `reason` is the why alone ("database is locked by another process", "disk is full"),
    for front ends that word their own notice; `path` is the file."""

    def __init__(self, message: str, *, path: Path | str | None = None, reason: str = "") -> None:
        super().__init__(message)
        self.path = None if path is None else Path(path)
        self.reason = reason or message


class ConversationGone(UsageError):
    """A write for a conversation (or one of its messages) that is no longer in the file:
    deleted from another window or by `aigc-chat history delete`. Not a failure of the history
    (the next conversation saves fine): the writer reports it and goes on saving."""


@dataclass(frozen=True)
class ConversationSummary:
    id: int
    title: str
    model: str
    backend: str
    created_at: float
    updated_at: float
    message_count: int


@dataclass(frozen=True)
class StoredFile:
    """A file attached to a message: its name and its text as it was when attached."""

    name: str
    content: str


@dataclass(frozen=True)
class StoredMessage:
    id: int
    conversation_id: int
    role: str
    content: str
    created_at: float
    finish_reason: str | None  # None while streaming (or if the process died) and for user rows
    stats: dict = field(default_factory=dict)
    kind: str = "text"
    meta: dict = field(default_factory=dict)
    attachments: tuple[StoredFile, ...] = ()
    parent_id: int | None = None  # the message it answers or follows; None at the top


def tree_of(messages: Sequence[StoredMessage], leaf_id: int | None) -> MessageTree:
    """Stored messages (id order) as the tree the core works on: each node's `ref` and `seq`
    are its id, the leaf is `leaf_id` (the newest message when that is not one of them)."""
    from aigc_chat.attachments import Attachment
    from aigc_chat.tree import MessageTree, Node

    nodes = [Node(m.role, m.content, files=tuple(Attachment(f.name, f.content) for f in m.attachments),
                  kind=m.kind, meta=dict(m.meta), stats=dict(m.stats), finish_reason=m.finish_reason,
                  ref=m.id, seq=m.id)
             for m in messages]
    return MessageTree.from_rows(nodes, {m.id: m.parent_id for m in messages}, leaf_id)


@dataclass(frozen=True)
class StoredConversation:
    """A stored conversation: `messages` is the path it shows (root to `leaf_id`), what a
    reader, an export or a model is given; `all_messages` is every branch, in id order.
    (Not the core's conversation.Conversation, which is a live chat.)"""

    summary: ConversationSummary
    settings: dict
    messages: list[StoredMessage]
    all_messages: list[StoredMessage] = field(default_factory=list)
    leaf_id: int | None = None

    def tree(self) -> MessageTree:
        """Every branch as a MessageTree (a new one on each call: the caller may change it)."""
        return tree_of(self.all_messages, self.leaf_id)

    @property
    def branch_count(self) -> int:
        """How many paths the tree has (its leaves)."""
        return self.tree().branch_count()


CURRENT = -1
"""`add_message(parent=CURRENT)`: after the conversation's current leaf (the default)."""


@dataclass(frozen=True)
class SearchHit:
    conversation_id: int
    message_id: int  # 0 when the match is in the conversation's title
    title: str
    snippet: str  # raw text around the match (untrusted: sanitise before display)
    rank: float  # bm25: lower is a better match
