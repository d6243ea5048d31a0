"""Compaction as a branch: the older part of a conversation summarised, nothing lost.

When a conversation outgrows the context, the model is asked to summarise the current path's
older part; the last `keep` exchanges stay word for word. The result is a **new branch at the
conversation's root**: a summary message (role "system", kind "summary": it is never shown,
exported or sent as if the user wrote it), then copies of the kept exchanges. The original
branch is not touched: it is the summary's sibling, one `alt+←` away, and its KV state is one
of the engines' kept states, so going back re-reads nothing.

The rules, once, for every front end (TUI `/compact`, `aigc-chat history compact`,
`--continue --compact`, and `[generation] on_overflow = "compact"`):

- **What the model is given to summarise**: the older messages as a transcript. Reasoning is
  never in it (it is never sent back either); attached files are named with their size, not
  pasted; an earlier summary on the path (compacting a compaction) comes first, as what the
  new summary must keep. The instructions are ours (`SUMMARY_PROMPT`, documented in
  docs/history.md) plus the user's own, if given.
- **A transcript that does not fit** is summarised in chunks: each chunk with the summary so
  far, in order. A single message that cannot fit even alone is refused with the numbers.
- **Nothing half-made is stored**: the summary is written, with its copies, only once the model
  has finished it. Cancelled (Esc, Ctrl-C), failed or empty: nothing is stored, the tree is as
  it was.
- **Refused**: while a reply streams (one line), and when there is nothing older than the kept
  exchanges to summarise.

Nothing here imports a UI toolkit; `run` calls the engine and must run off an event loop,
under the conversation's `backend_lock` (the caller holds it, as for a turn).
"""

from __future__ import annotations

import threading
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from aigc_chat import ids
from aigc_chat.chat_types import Message
from aigc_chat.errors import AigcError, UsageError
from aigc_chat.reasoning import Reasoning
from aigc_chat.tree import Node

if TYPE_CHECKING:
    from aigc_chat.conversation import Conversation

SUMMARY_KIND = "summary"
DEFAULT_KEEP = 2
ID_WAIT = 2.0  # seconds a compaction waits for the writer to make an id it names (aigc_chat.ids.wait)
OVERFLOW_CHOICES = ("drop_oldest", "compact", "refuse")

SUMMARY_PROMPT = (
    "You summarise a conversation between a user and an assistant so that it can go on "
    "without the full text. Write a short summary in plain prose. Keep every fact, name, "
    "number, decision and open question the user gave or asked for; keep what the assistant "
    "concluded. Name attached files; do not quote them. Do not add anything that is not in "
    "the conversation. Write only the summary."
)
"""Our instructions for a summary (docs/history.md prints them); the user's are appended."""

SUMMARY_HEADER = "Summary of the earlier conversation (written by the model, not by the user):"
"""What the model is told a summary is, when it is sent as part of the system message."""


class CompactionCancelled(AigcError):
    """The summary was stopped (Esc, Ctrl-C) before it was finished: nothing was stored."""


@dataclass
class CompactPlan:
    """Which messages of the path are summarised and which are kept as they are."""

    path: list[Node]
    older: list[Node]          # summarised (an earlier summary first, if the path has one)
    kept: list[Node]           # copied under the summary, in order
    keep: int


@dataclass
class Compacted:
    """What a compaction made: the summary node and the new leaf, with its figures."""

    summary: Node
    leaf: Node
    tokens_before: int | None
    tokens_after: int | None
    chunks: int
    meta: dict[str, Any] = field(default_factory=dict)

    def line(self) -> str:
        """One line for a front end: what was summarised and what it saved."""
        first, last = self.meta.get("range", [0, 0])
        figures = ""
        if self.tokens_before is not None and self.tokens_after is not None:
            figures = f", {self.tokens_before:,} → {self.tokens_after:,} tokens"
        chunks = f" in {self.chunks} chunks" if self.chunks > 1 else ""
        return (f"compacted: messages {first}-{last} summarised{chunks}{figures}; "
                "the original branch is kept beside it")


def label(meta: dict[str, Any]) -> str:
    """How a summary is named wherever it is shown (screen, `history show`, exports): what it
    covers, the tokens before and after, and the model that wrote it; never as a user's."""
    from aigc_chat.labels import model_label

    span = meta.get("range")
    what = (f"Summary of messages {span[0]}-{span[1]}" if isinstance(span, list) and len(span) == 2
            else "Summary")
    facts = []
    before, after = meta.get("tokens_before"), meta.get("tokens_after")
    if isinstance(before, int) and isinstance(after, int):
        facts.append(f"{before:,} → {after:,} tokens")
    if isinstance(meta.get("model"), str) and meta["model"]:
        facts.append(model_label(meta["model"]))
    return f"{what} ({', '.join(facts)})" if facts else what


def exchanges(path: Sequence[Node]) -> list[int]:
    """Where each exchange of the path begins: the index of every user text message."""
    return [i for i, n in enumerate(path) if n.role == "user" and n.kind == "text"]


def plan(path: list[Node], keep: int = DEFAULT_KEEP) -> CompactPlan:
    """Split the path: the last `keep` exchanges (from their questions down, inline items
    included) are kept, the rest is summarised. UsageError when a reply is still streaming or
    nothing older than the kept part would be summarised."""
    if keep < 0:
        raise UsageError("--keep must be 0 or more")
    if any(n.live for n in path):
        raise UsageError("a reply is streaming: compact once it has finished (or Esc it)")
    starts = exchanges(path)
    cut = starts[-keep] if keep and len(starts) >= keep else (len(path) if not keep else 0)
    older = [n for n in path[:cut] if n.sent or n.kind == SUMMARY_KIND]
    if not any(n.kind != SUMMARY_KIND for n in older):
        have = len(starts)
        where = " after its summary" if path and path[0].kind == SUMMARY_KIND else ""
        raise UsageError(f"nothing to compact: this branch has {have} exchange{'s' * (have != 1)}{where}, "
                         f"and the last {keep} are kept as they are")
    return CompactPlan(path, older, path[cut:], keep)


def transcript_item(node: Node) -> str:
    """One message as the summariser reads it: reasoning left out, files named, not pasted."""
    if node.kind == SUMMARY_KIND:
        return f"[Summary of what came before]\n{node.content.strip()}"
    who = "User" if node.role == "user" else "Assistant"
    text = node.content.strip()
    for f in node.files:
        lines = f.text.count("\n") + (1 if f.text and not f.text.endswith("\n") else 0)
        text += f"\n[attached file: {f.name}, {lines} lines, not shown]"
    return f"{who}: {text}"


def request(items: Sequence[str], summary_so_far: str = "", instructions: str = "") -> list[Message]:
    """The messages sent to get a summary of `items` (transcript items, in order)."""
    system = SUMMARY_PROMPT
    if instructions.strip():
        system += "\n\nThe user also asks: " + instructions.strip()
    body = "\n\n".join(items)
    if summary_so_far:
        body = f"[Summary of what came before]\n{summary_so_far.strip()}\n\n{body}"
    return [Message("system", system),
            Message("user", f"The conversation:\n\n{body}\n\nWrite the summary now.")]


def summary_message(node: Node) -> str:
    """The summary as the model is sent it, within the system message."""
    return f"{SUMMARY_HEADER}\n{node.content.strip()}"


Progress = Callable[[int, int, int], None]
"""progress(chunk, chunks, characters of summary so far): called as the summary streams."""


def run(conv: Conversation, keep: int = DEFAULT_KEEP, instructions: str = "",
        cancel: threading.Event | None = None, progress: Progress | None = None) -> Compacted:
    """Summarise the current path's older part and add the new branch (module notes). The
    caller holds `conv.backend_lock`. Raises UsageError (refused: nothing to do, does not
    fit, empty summary), CompactionCancelled, or AigcError (the engine failed); in each case
    nothing is stored and the tree is unchanged."""
    backend = conv.backend
    if backend is None:
        raise UsageError("no model is loaded")
    the_plan = plan(conv.tree.path(), keep)
    params = conv.settings.params
    try:
        ctx = backend.info().context_length
    except Exception:  # noqa: BLE001 - no context size known: one chunk, the engine says if too long
        ctx = 0
    reserve = min(params.max_tokens, max(ctx // 4, 1)) if ctx else 0
    items = [transcript_item(n) for n in the_plan.older]
    chunks = _chunks(conv, items, instructions, ctx, reserve)
    summary = ""
    t0 = time.perf_counter()
    for number, chunk in enumerate(chunks, 1):
        summary = _summarise(conv, request(chunk, summary, instructions), number, len(chunks), cancel, progress)
    elapsed = time.perf_counter() - t0
    return _add_branch(conv, the_plan, summary, len(chunks), instructions, elapsed)


def _chunks(conv: Conversation, items: list[str], instructions: str, ctx: int, reserve: int) -> list[list[str]]:
    """The transcript in pieces that each fit with the summary so far (at most `reserve`
    tokens, the room kept for the summary itself); one piece when it all fits."""
    backend = conv.backend
    assert backend is not None
    if not ctx or backend.count_tokens(request(items, "", instructions)) is None:
        return [items]
    limit = ctx - reserve
    whole = backend.count_tokens(request(items, "", instructions)) or 0
    if whole <= limit:
        return [items]
    # the summary so far takes up to `reserve` tokens in every later chunk
    base = (backend.count_tokens(request([], "", instructions)) or 0) + reserve
    out: list[list[str]] = []
    current: list[str] = []
    used = base
    for i, item in enumerate(items, 1):
        size = backend.count_tokens([Message("user", item)]) or 0
        if base + size > limit:
            raise UsageError(
                f"cannot compact: message {i} of the part to summarise needs {size:,} tokens, and with "
                f"the instructions and the summary so far ({base:,}) that is over the {limit:,} the "
                f"context leaves ({ctx:,} less {reserve:,} for the summary); nothing was changed")
        if current and used + size > limit:
            out.append(current)
            current, used = [], base
        current.append(item)
        used += size
    if current:
        out.append(current)
    return out


def _summarise(conv: Conversation, messages: list[Message], number: int, total: int,
               cancel: threading.Event | None, progress: Progress | None) -> str:
    backend = conv.backend
    assert backend is not None
    stream = backend.stream_chat(messages, conv.settings.params, cancel)
    pieces: list[str] = []
    size = 0
    if progress is not None:
        progress(number, total, 0)
    try:
        for piece in stream:
            if isinstance(piece, Reasoning):
                continue  # a reasoning model's thinking is never part of the summary
            pieces.append(piece)
            size += len(piece)
            if progress is not None:
                progress(number, total, size)
    except KeyboardInterrupt:
        stream.close()
        raise CompactionCancelled("compaction stopped: nothing was changed") from None
    finally:
        stream.close()
    result = stream.result
    if result is None or result.finish_reason == "cancelled" or (cancel is not None and cancel.is_set()):
        raise CompactionCancelled("compaction stopped: nothing was changed")
    if result.finish_reason == "error":
        raise AigcError(f"compaction failed: {result.error or 'the engine failed'}; nothing was changed")
    text = "".join(pieces).strip()
    if not text:
        raise UsageError("the model returned an empty summary: nothing was changed")
    return text


def _add_branch(conv: Conversation, the_plan: CompactPlan, summary: str, chunks: int,
                instructions: str, elapsed: float) -> Compacted:
    """The new branch at the root: the summary, then copies of the kept messages; stored
    (queued) in that order. The original path is left as it was."""
    backend = conv.backend
    assert backend is not None
    path = the_plan.path
    ends = (the_plan.older[0], the_plan.older[-1])  # the range's ends only
    older_ids = [ids.wait(node.ref, ID_WAIT) for node in ends]
    first = path.index(the_plan.older[0]) + 1
    last = path.index(the_plan.older[-1]) + 1
    from aigc_chat.conversation import with_system

    before = backend.count_tokens(with_system(conv.settings.system_prompt, conv.sent_up_to(path[-1])))
    author = conv.author()
    earlier = next((n for n in the_plan.older if n.kind == SUMMARY_KIND), None)
    meta: dict[str, Any] = {
        "range": [first, last],
        "messages": len(the_plan.older),
        "ids": [older_ids[0], older_ids[-1]] if older_ids[0] is not None and older_ids[-1] is not None else None,
        "from_leaf": ids.wait(path[-1].ref, ID_WAIT),
        "kept_exchanges": the_plan.keep,
        "model": author.get("model", conv.settings.model),
        "backend": author.get("backend", conv.settings.backend),
        "chunks": chunks,
        "seconds": round(elapsed, 3),
    }
    if earlier is not None:
        meta["compacts"] = ids.wait(earlier.ref, ID_WAIT)
    if instructions.strip():
        meta["instructions"] = instructions.strip()
    node = Node("system", summary, kind=SUMMARY_KIND, meta=meta, stats=dict(author), finish_reason="stop")
    copies = [Node(n.role, n.content, files=n.files, kind=n.kind, meta=dict(n.meta), stats=dict(n.stats),
                   finish_reason=n.finish_reason) for n in the_plan.kept]
    after = backend.count_tokens(with_system(conv.settings.system_prompt,
                                             [node.message(), *(c.message() for c in copies if c.sent)]))
    meta["tokens_before"], meta["tokens_after"] = before, after
    conv.tree.add(node, None)
    parent = node
    for c in copies:
        conv.tree.add(c, parent)
        parent = c
    _store(conv, node, copies)
    return Compacted(node, parent, before, after, chunks, meta)


def _store(conv: Conversation, summary: Node, copies: list[Node]) -> None:
    """Queue the new branch's rows, in order (files by reference: a blob is stored once)."""
    from aigc_chat.conversation import _parent_ref

    queued = conv.history.queued
    if not conv.history.saving or conv.conversation_ref is None or queued is None:
        return
    summary.ref = queued.add_message(conv.conversation_ref, "system", summary.content, kind=SUMMARY_KIND,
                                     meta=summary.meta, stats=summary.stats or None, parent=None)
    for c in copies:
        c.ref = queued.add_message(conv.conversation_ref, c.role, c.content, kind=c.kind, meta=c.meta or None,
                                   stats=c.stats or None, finish_reason=c.finish_reason,
                                   attachments=[(f.name, f.text) for f in c.files], parent=_parent_ref(c.parent))
