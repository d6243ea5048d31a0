"""A conversation as a tree of messages: every regenerate and every edit is a new branch.

Each message has a parent (None for the first message of a branch at the top); a
conversation shows one path, from a root to its current leaf. A regenerated reply is a sibling
of the reply it replaces; an edited question is a sibling of the question it replaces. Nothing
is removed by either, so every alternative can be visited again.

Moving to a sibling goes to the newest message in that sibling's subtree (ids grow, so the
newest message is always a leaf): the branch as it was left, like a browser tab.

This is the in-memory shape the conversation core and the front ends share; the history store
keeps the same shape (`parent_id`, `current_leaf`). Nothing here touches a store or a screen.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Mapping
from dataclasses import dataclass, field
from typing import Any

from aigc_chat.attachments import Attachment
from aigc_chat.attachments import render as render_files
from aigc_chat.chat_types import Message
from aigc_chat.ids import Ref, known

_order = itertools.count(1)


@dataclass(eq=False)
class Node:
    """One message. `ref` is its stored id, the history writer's Future of one, or None (not
    saved); `seq` orders nodes by creation (the stored id where there is one)."""

    role: str
    content: str
    parent: Node | None = None
    files: tuple[Attachment, ...] = ()
    kind: str = "text"
    meta: dict[str, Any] = field(default_factory=dict)
    stats: dict[str, Any] = field(default_factory=dict)
    finish_reason: str | None = None
    ref: Ref = None
    seq: int = 0
    children: list[Node] = field(default_factory=list)
    live: bool = False  # a reply still being written (its widget streams; it is not sent yet)

    def __post_init__(self) -> None:
        if not self.seq:
            self.seq = next(_order) + (1 << 40)  # after every stored id

    @property
    def sent(self) -> bool:
        """Whether the model sees it: user text, and assistant replies that have text (not a
        reply still streaming, nor one that failed before saying anything). Inline items (GAN
        samples) are shown but never sent. A compaction's summary (kind "summary") is sent, as
        part of the system message (aigc_chat.compaction)."""
        if self.kind == "summary":
            return bool(self.content)
        return self.kind == "text" and (self.role == "user" or (self.role == "assistant" and bool(self.content)))

    def message(self) -> Message:
        if self.kind == "summary":
            from aigc_chat.compaction import summary_message

            return Message("system", summary_message(self))
        if self.role == "user":
            return Message("user", render_files(self.content, self.files))
        return Message("assistant", self.content)


class MessageTree:
    """The messages of one conversation and which path is shown (module notes)."""

    def __init__(self) -> None:
        self.roots: list[Node] = []
        self.leaf: Node | None = None

    # -- building -------------------------------------------------------------------------
    def add(self, node: Node, parent: Node | None) -> Node:
        """`node` as the newest child of `parent` (a root when None); it becomes the leaf."""
        node.parent = parent
        (parent.children if parent is not None else self.roots).append(node)
        self.leaf = node
        return node

    def remove(self, node: Node) -> None:
        """Take out one message (a failed reply that produced nothing): what followed it
        follows its parent, in its place; a path that ended at it ends at the newest message
        under its parent (a failed regenerate then puts back the path it began on: Turn)."""
        siblings = self.siblings(node)
        at = siblings.index(node)
        siblings[at:at + 1] = node.children
        for child in node.children:
            child.parent = node.parent
        node.children = []
        if self.leaf is node:  # the path ended here: the newest message left under its parent
            if node.parent is not None:
                self.leaf = self.newest_leaf(node.parent)
            else:
                self.leaf = max(self.walk(), key=lambda n: n.seq, default=None)

    @classmethod
    def from_rows(cls, rows: Iterable[Node], parent_of: Mapping[int, int | None],
                  leaf_id: int | None) -> MessageTree:
        """A tree of stored messages (`seq` is each one's id), in id order; a parent that is
        missing (a row removed by hand) makes the message a root, so nothing is hidden."""
        tree = cls()
        by_id: dict[int, Node] = {}
        for node in rows:
            parent = by_id.get(parent_of.get(node.seq) or -1)
            node.parent = parent
            (parent.children if parent is not None else tree.roots).append(node)
            by_id[node.seq] = node
        leaf = by_id.get(leaf_id or -1)
        if leaf is None and by_id:
            leaf = max(by_id.values(), key=lambda n: n.seq)
        tree.leaf = leaf
        return tree

    # -- reading ------------------------------------------------------------------------
    def path(self, leaf: Node | None = None) -> list[Node]:
        """The messages from a root down to `leaf` (the current leaf by default)."""
        out: list[Node] = []
        node = self.leaf if leaf is None else leaf
        while node is not None:
            out.append(node)
            node = node.parent
        out.reverse()
        return out

    def siblings(self, node: Node) -> list[Node]:
        """The node and its alternatives, oldest first."""
        return node.parent.children if node.parent is not None else self.roots

    def position(self, node: Node) -> tuple[int, int]:
        """Where the node stands among its alternatives: (1-based index, how many)."""
        siblings = self.siblings(node)
        return siblings.index(node) + 1, len(siblings)

    def newest_leaf(self, node: Node) -> Node:
        """The newest message under `node` (itself if it has none): a leaf."""
        return max(self.walk([node]), key=lambda n: n.seq)

    def sibling(self, node: Node, step: int) -> Node | None:
        """The alternative `step` places away (-1: the previous one), or None past an end."""
        siblings = self.siblings(node)
        index = siblings.index(node) + step
        return siblings[index] if 0 <= index < len(siblings) else None

    def switch(self, node: Node, step: int) -> Node | None:
        """Show the alternative `step` places from `node`, down to its newest message. The
        alternative itself is returned (None past an end, and nothing changes)."""
        other = self.sibling(node, step)
        if other is not None:
            self.leaf = self.newest_leaf(other)
        return other

    def show(self, node: Node) -> None:
        """Show the branch that holds `node`: the path shown if `node` is on it, else the
        newest message under `node`."""
        if node not in self.path():
            self.leaf = self.newest_leaf(node)

    def contains(self, node: Node) -> bool:
        """Whether `node` is (still) in the tree: not removed, nor under a removed message."""
        while node.parent is not None:
            if node not in node.parent.children:
                return False
            node = node.parent
        return node in self.roots

    def walk(self, start: Iterable[Node] | None = None) -> Iterator[Node]:
        """Every node under `start` (every node when None), depth first."""
        stack = list(reversed(list(self.roots if start is None else start)))
        while stack:
            node = stack.pop()
            yield node
            stack.extend(reversed(node.children))

    def branch_count(self) -> int:
        """How many paths there are (leaves): 1 for a plain conversation, 0 for an empty one."""
        return sum(1 for n in self.walk() if not n.children)

    def find(self, message_id: int) -> Node | None:
        """The node stored with id `message_id` (None if it is not known to be stored)."""
        for node in self.walk():
            if known(node.ref) == message_id:
                return node
        return None
