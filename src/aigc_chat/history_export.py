"""A stored conversation as a file: Markdown for people, JSON for programs.

Both are made to be opened anywhere: Markdown's text is sanitised (no control sequences,
markup that could forge a heading, or bidi changes from the model, a file or a title), JSON
escapes every non-ASCII or control character. Stored text itself stays exact: only what is
written here is cleaned. The history command, the TUI's export and /export all use `render`.
"""

from __future__ import annotations

import json
from typing import Any

from aigc_chat.errors import UsageError
from aigc_chat.history import StoredConversation
from aigc_chat.labels import format_time, model_label


def render(conv: StoredConversation, fmt: str, reasoning: bool = False, all_branches: bool = False) -> str:
    """The conversation's current path as Markdown (message text sanitised: it may be
    shown or pasted anywhere) or as JSON (every non-ASCII or control character escaped);
    JSON carries every branch with `all_branches`. A reply's reasoning is left out unless
    `reasoning`."""
    if all_branches and fmt != "json":
        raise UsageError("--all-branches needs JSON: a Markdown export is one path")
    if fmt == "json":
        data = conversation_to_dict(conv, reasoning, all_branches=all_branches)
        return json.dumps(data, ensure_ascii=True, indent=2) + "\n"
    if fmt in ("markdown", "md"):
        return conversation_to_markdown(conv, reasoning)
    raise UsageError(f"unknown export format {fmt!r} (use markdown or json)")


def _meta(meta: dict[str, Any], reasoning: bool) -> dict[str, Any]:
    """A message's meta for an export: its reasoning only when asked for."""
    # a reply cut off mid-stream keeps its writer (aigc_chat.reply_owner): not the reader's business
    return {k: v for k, v in meta.items() if (reasoning or k != "reasoning") and k not in ("writer", "stop")}


def conversation_to_dict(conv: StoredConversation, reasoning: bool = False, *,
                         all_branches: bool = False) -> dict[str, Any]:
    """The current path's messages, or every message with `all_branches`; each says its
    `parent_id` and whether it is on the current path."""
    s = conv.summary
    on_path = {m.id for m in conv.messages}
    return {
        "id": s.id, "title": s.title, "model": s.model, "backend": s.backend,
        "created_at": s.created_at, "updated_at": s.updated_at, "settings": conv.settings,
        "current_leaf": conv.leaf_id, "branches": conv.branch_count,
        "messages": [
            {"id": m.id, "parent_id": m.parent_id, "on_path": m.id in on_path, "role": m.role,
             "content": m.content, "created_at": m.created_at,
             "finish_reason": m.finish_reason, "stats": m.stats, "kind": m.kind,
             "meta": _meta(m.meta, reasoning),
             "attachments": [{"name": f.name, "content": f.content} for f in m.attachments]}
            for m in (conv.all_messages if all_branches else conv.messages)
        ],
    }



def conversation_to_markdown(conv: StoredConversation, reasoning: bool = False) -> str:
    from aigc_chat.sanitize import one_line, sanitize

    # Titles and names (model, role, file) stay on their line: none can forge a heading.
    s = conv.summary
    lines = [f"# {one_line(s.title) or f'Conversation {s.id}'}", ""]
    facts = [f"conversation {s.id}", f"created {format_time(s.created_at)}"]
    if s.model:
        facts.append(f"model {one_line(s.model)}")
    if s.backend:
        facts.append(f"backend {one_line(s.backend)}")
    lines += ["_" + ", ".join(facts) + "_", ""]
    system = conv.settings.get("system_prompt") if isinstance(conv.settings, dict) else None
    if system:
        lines += ["## System", "", sanitize(str(system)), ""]
    for m in conv.messages:
        if m.kind == "summary":  # a compaction's summary: the model's, never the user's
            from aigc_chat.compaction import label

            lines += [f"## {one_line(label(m.meta))}", "", sanitize(m.content), ""]
            continue
        heading = one_line(m.role.capitalize())
        if m.kind != "text":
            heading += f" ({one_line(m.kind)})"
        elif m.role == "assistant" and isinstance(m.stats.get("model"), str) and m.stats["model"]:
            heading += f" ({one_line(model_label(m.stats['model']))})"
        if m.role == "assistant" and m.finish_reason not in (None, "stop"):
            heading += f" [{one_line(str(m.finish_reason))}]"
        elif m.role == "assistant" and m.finish_reason is None:
            heading += " [interrupted]"
        lines += [f"## {heading}", ""]
        for f in m.attachments:  # the files, as attached (sanitised like all shown text)
            from aigc_chat.attachments import fence

            body = sanitize(f.content)
            mark = fence(body)
            lines += [f"**File `{one_line(f.name)}`**", "", mark, body.rstrip("\n"), mark, ""]
        thought = m.meta.get("reasoning") if reasoning and m.role == "assistant" else None
        if isinstance(thought, str) and thought:
            quoted = "\n".join(f"> {line}" if line else ">" for line in sanitize(thought).splitlines())
            lines += ["**Reasoning**", "", quoted, ""]
        lines += [sanitize(m.content), ""]
        if m.kind != "text" and m.meta:
            lines += ["```json", json.dumps(_meta(m.meta, reasoning), ensure_ascii=True, sort_keys=True), "```", ""]
    return "\n".join(lines).rstrip("\n") + "\n"
