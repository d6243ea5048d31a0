"""`aigc-chat history ...`: the saved conversations, for people and for scripts.

Everything printed that came from a conversation (titles, messages, snippets, model names)
passes through `sanitize()`: model output is untrusted and must not drive the terminal.
JSON output is escaped by json.dumps(ensure_ascii=True) instead, so it stays exact.
A history that cannot be opened is one line on stderr and exit 1, never a traceback.
Reading commands (list, show, search, export) also work on a history they cannot write (a
read-only file, directory or mount: it is opened read-only); rename and delete then say so.
"""

from __future__ import annotations

import argparse
import json
import sys
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from aigc_chat.argtypes import OneLineParser, conversation_id, integer, positive, text
from aigc_chat.errors import UsageError
from aigc_chat.ids import known

if TYPE_CHECKING:
    from aigc_chat.tree import Node

PROG = "aigc-chat history"


def build_parser() -> argparse.ArgumentParser:
    p = OneLineParser(prog=PROG, description="Saved conversations (newest first).")
    sub = p.add_subparsers(dest="command", metavar="COMMAND")
    sub.required = True
    s = sub.add_parser("list", help="id, date, model and title of each conversation, newest first (tab-separated)")
    s.add_argument("--limit", "-n", type=positive, default=50, metavar="N", help="at most N (default 50)")
    s.add_argument("--json", action="store_true", help="one JSON object per line")
    s = sub.add_parser("show", help="print a conversation: the path it shows, and where alternatives are")
    s.add_argument("id", type=conversation_id, metavar="ID")
    s.add_argument("--reasoning", action="store_true", help="also print each reply's reasoning")
    s.add_argument("--at", type=conversation_id, metavar="MSG",
                   help="the branch holding message MSG instead of the current one")
    view = s.add_mutually_exclusive_group()
    view.add_argument("--tree", action="store_true", help="draw every branch as a tree (● marks the current path)")
    view.add_argument("--json", action="store_true",
                      help="every message as JSON, with its id, parent_id and whether it is on the current path")
    s = sub.add_parser("search", help="full-text search over every message and title")
    s.add_argument("query", nargs="+", type=text, metavar="QUERY",
                   help="words to find (taken literally, all must appear)")
    s.add_argument("--limit", "-n", type=positive, default=20, metavar="N", help="at most N hits (default 20)")
    s.add_argument("--json", action="store_true", help="one JSON object per line")
    s = sub.add_parser("export", help="write a conversation as Markdown or JSON")
    s.add_argument("id", type=conversation_id, metavar="ID")
    s.add_argument("--format", "-f", choices=("markdown", "json"), default="markdown")
    s.add_argument("--output", "-o", metavar="PATH", help="write to PATH instead of stdout")
    s.add_argument("--reasoning", action="store_true", help="include each reply's reasoning (left out by default)")
    s.add_argument("--all-branches", action="store_true",
                   help="JSON only: every branch (each message with its parent_id), not just the current path")
    s = sub.add_parser("rename", help="give a conversation a new title")
    s.add_argument("id", type=conversation_id, metavar="ID")
    s.add_argument("title", nargs="+", type=text, metavar="TITLE")
    s = sub.add_parser("delete", help="delete a conversation")
    s.add_argument("id", type=conversation_id, metavar="ID")
    s = sub.add_parser("compact", help="summarise the older part of a conversation into a new branch at its "
                                        "root (the original branch is kept); loads the conversation's model")
    s.add_argument("id", type=conversation_id, metavar="ID")
    s.add_argument("--keep", type=integer("a number of exchanges", minimum=0), default=2, metavar="N",
                   help="the last N exchanges stay word for word (default 2)")
    s.add_argument("--instructions", type=text, default="", metavar="TEXT",
                   help="added to the summary's instructions (docs/history.md prints ours)")
    sub.add_parser("path", help="print where the history is kept")
    return p


def main(argv: Sequence[str] | None = None) -> int:
    args = build_parser().parse_args(list(sys.argv[1:] if argv is None else argv))
    from aigc_chat.history import HistoryError
    from aigc_chat.history_store import HistoryStore, default_path

    if args.command == "path":
        sys.stdout.write(f"{default_path()}\n")
        return 0
    path = default_path()
    try:
        exists = path.exists()
    except OSError:
        exists = True  # let the store say what is wrong with it, in one line
    if not exists and args.command in ("list", "search"):
        return 0 if args.command == "list" else 1  # nothing saved yet: do not create the file
    if not exists:
        raise UsageError(f"no conversation {args.id}")
    if args.command in _WRITING:
        try:
            store = HistoryStore(path)
        except HistoryError as exc:
            raise HistoryError(f"cannot {args.command} conversation {args.id}: the history {path} "
                               f"cannot be written ({exc.reason})", path=path, reason=exc.reason) from None
    else:
        store = HistoryStore.open_for_reading(path)  # a read-only file or mount is still readable
    with store:
        return _COMMANDS[args.command](store, args)


def _out(text: str) -> None:
    sys.stdout.write(text)


def _list(store, args) -> int:
    from aigc_chat.labels import format_time, model_label
    from aigc_chat.sanitize import sanitize

    for c in store.list_conversations(limit=args.limit):
        if args.json:
            _out(json.dumps({"id": c.id, "title": c.title, "model": c.model, "backend": c.backend,
                             "created_at": c.created_at, "updated_at": c.updated_at,
                             "messages": c.message_count}, ensure_ascii=True) + "\n")
            continue
        model = model_label(c.model, unset="-")
        fields = (str(c.id), format_time(c.updated_at), _cell(sanitize(model)),
                  _cell(sanitize(c.title)) or "(untitled)")
        _out("\t".join(fields) + "\n")
    return 0


def _show(store, args) -> int:
    from aigc_chat.history_export import conversation_to_dict
    from aigc_chat.labels import format_time
    from aigc_chat.sanitize import one_line, sanitize

    conv = store.get_conversation(args.id, at=args.at)
    if args.json:
        _out(json.dumps(conversation_to_dict(conv, args.reasoning, all_branches=True), ensure_ascii=True,
                        indent=2) + "\n")
        return 0
    s = conv.summary
    _out(f"#{s.id}  {one_line(s.title) or '(untitled)'}\n")  # names and titles: one line each
    facts = [f"created {format_time(s.created_at)}", f"{s.message_count} messages"]
    if conv.branch_count > 1:
        facts.append(f"{conv.branch_count} branches (history show {s.id} --tree)")
    if s.model:
        facts.insert(0, f"model {one_line(s.model)}")
    _out(", ".join(facts) + "\n")
    if args.tree:
        _draw_tree(conv)
        return 0
    system = conv.settings.get("system_prompt")
    if system:
        _out(f"\n[system]\n{sanitize(str(system))}\n")
    tree = conv.tree()
    nodes = {n.seq: n for n in tree.walk()}
    for m in conv.messages:
        head = f"[{one_line(m.role)}"
        if m.kind == "summary":
            from aigc_chat.compaction import label

            head = f"[summary #{m.id}] {one_line(label(m.meta))}"
            _out(f"\n{head}\n{sanitize(m.content).rstrip()}\n")
            continue
        if m.kind != "text":
            head += f" {one_line(m.kind)}"
        head += f" #{m.id}] {format_time(m.created_at)}"
        if m.role == "assistant":
            head += _reply_facts(m)
        at, count = tree.position(nodes[m.id])
        if count > 1:
            others = ", ".join(f"#{o.seq}" for o in tree.siblings(nodes[m.id]) if o.seq != m.id)
            head += f" · alternative {at} of {count} (others: {others})"
        for f in m.attachments:
            head += f"\n[file] {one_line(f.name)} ({len(f.content.encode('utf-8')):,} bytes)"
        thought = m.meta.get("reasoning") if args.reasoning else None
        if isinstance(thought, str) and thought:
            _out(f"\n{head}\n[reasoning]\n{sanitize(thought).rstrip()}\n[answer]\n{sanitize(m.content).rstrip()}\n")
        else:
            _out(f"\n{head}\n{sanitize(m.content).rstrip()}\n")
    return 0


TREE_TEXT = 60  # characters of each message's first line in `show --tree`


def _draw_tree(conv) -> None:
    """Every message, one line each: a chain stays in one column and only a fork indents,
    so a long conversation with a few branches stays narrow. ● is the current path."""
    from aigc_chat.sanitize import one_line, sanitize

    tree = conv.tree()
    on_path = {m.id for m in conv.messages}

    def line(m: Node) -> str:
        first = " ".join(sanitize(m.content).split())
        if len(first) > TREE_TEXT:
            first = first[: TREE_TEXT - 1] + "…"
        mark = '●' if m.seq in on_path else '○'
        if m.kind == "summary":  # a compaction: its own mark, with what it covers
            from aigc_chat.compaction import label

            return f"{mark} [summary #{m.seq}] {one_line(label(m.meta)).replace('Summary ', '', 1)}: {first}"
        kind = f" {one_line(m.kind)}" if m.kind != "text" else ""
        return f"{mark} [{one_line(m.role)}{kind} #{m.seq}] {first}"

    # (messages of one level, the prefix its lines carry), depth first without recursion
    stack: list[tuple[list[Node], int, str]] = [(tree.roots, 0, "")]
    while stack:
        level, i, prefix = stack.pop()
        if i >= len(level):
            continue
        stack.append((level, i + 1, prefix))
        m = level[i]
        if len(level) > 1:
            last = i == len(level) - 1
            _out(f"{prefix}{'└─' if last else '├─'}{line(m)}\n")
            inner = prefix + ("  " if last else "│ ")
        else:
            _out(f"{prefix}{line(m)}\n")
            inner = prefix
        while len(m.children) == 1:  # a chain: same column
            m = m.children[0]
            _out(f"{inner}{line(m)}\n")
        stack.append((m.children, 0, inner))


def _reply_facts(m) -> str:
    from aigc_chat.labels import model_label
    from aigc_chat.reply_stats import prompt_facts
    from aigc_chat.sanitize import one_line

    parts = [one_line(m.finish_reason or "interrupted")]
    if isinstance(m.stats.get("model"), str) and m.stats["model"]:
        parts.insert(0, one_line(model_label(m.stats["model"])))
    tokens = m.stats.get("completion_tokens")
    if tokens:
        parts.append(f"{tokens} tok")
    rate = m.stats.get("decode_tokens_per_s")
    if rate:
        parts.append(f"{rate:.1f} tok/s")
    parts += prompt_facts(m.stats)
    return f" ({', '.join(parts)})"


def _search(store, args) -> int:
    from aigc_chat.sanitize import sanitize

    hits = store.search(" ".join(args.query), limit=args.limit)
    for h in hits:
        if args.json:
            _out(json.dumps({"conversation_id": h.conversation_id, "message_id": h.message_id,
                             "title": h.title, "snippet": h.snippet, "rank": h.rank},
                            ensure_ascii=True) + "\n")
            continue
        _out(f"{h.conversation_id}\t{_cell(sanitize(h.title)) or '(untitled)'}\t{_cell(sanitize(h.snippet))}\n")
    return 0 if hits else 1


def _export(store, args) -> int:
    if args.all_branches and args.format != "json":
        raise UsageError("--all-branches needs --format json: a Markdown export is one path")
    from aigc_chat.history_export import render

    conv = store.get_conversation(args.id)
    text = render(conv, args.format, args.reasoning, args.all_branches)  # markdown sanitised, json escaped
    if args.output:
        from aigc_chat.safe_open import write_private

        write_private(Path(args.output).expanduser(), text)
        return 0
    _out(text)
    return 0


def _rename(store, args) -> int:
    title = " ".join(" ".join(args.title).split())
    if not title:
        raise UsageError("the title is empty")
    store.rename(args.id, title)
    return 0


def _delete(store, args) -> int:
    store.delete_conversation(args.id)
    return 0


def _cell(text: str) -> str:
    """One line, no tabs: each record stays one line in tab-separated output."""
    return " ".join(text.split())


def _compact(store, args) -> int:
    """`history compact ID`: the conversation's own model (its stored backend and model, else
    the config's) writes the summary; one line on stderr says what was made."""
    from aigc_chat.compaction import CompactionCancelled, plan
    from aigc_chat.config import load_config
    from aigc_chat.conversation import Conversation
    from aigc_chat.history_service import HistoryService
    from aigc_chat.sanitize import sanitize

    stored = store.get_conversation(args.id)  # a missing one: one line, before a model loads
    failures: list[Exception] = []
    conv = Conversation(load_config(), HistoryService(store), on_history_failure=failures.append)
    conv.load(stored)
    try:
        plan(conv.tree.path(), args.keep)  # nothing to compact: said before a model is loaded
        conv.attach_backend(conv.load_backend())
        with conv.backend_lock:
            done = conv.compact(args.keep, args.instructions)
    except CompactionCancelled as exc:
        sys.stderr.write(f"aigc-chat: {exc}\n")
        return 130
    finally:
        saved = conv.close(20)
    if failures or not saved:
        reason = str(failures[0]) if failures else "the history stayed busy"
        raise UsageError(f"the summary was made but not saved: {reason}")
    sys.stderr.write(f"aigc-chat: conversation {args.id}: {sanitize(done.line())}\n")
    _out(f"{known(done.summary.ref)}\n")  # saved: the writer has made it
    return 0


_WRITING = ("rename", "delete", "compact")
_COMMANDS = {"compact": _compact, "list": _list, "show": _show, "search": _search, "export": _export,
             "rename": _rename, "delete": _delete}
