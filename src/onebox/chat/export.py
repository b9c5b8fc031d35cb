"""A conversation as a file: JSON (the whole tree, with each message's parent) that
:mod:`onebox.chat.importing` reads back, or Markdown (the active branch) to read.

Message ids in a file are local ordinals ("1", "2", …, parents first), so exporting an
imported conversation gives the same file again (only ``exported_at`` differs)."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime
from typing import Any

from onebox.chat.markdown_safety import inert_markdown, plain_markdown
from onebox.chat.models import Conversation, Message
from onebox.core.db import utcnow

EXPORT_FORMAT = "onebox.conversation"
EXPORT_VERSION = 1
_ROLE_NAMES = {"user": "User", "assistant": "Assistant", "system": "System"}
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


def export_filename(conversation: Conversation, extension: str) -> str:
    stem = _UNSAFE_FILENAME.sub("-", conversation.title).strip("-")[:60] or "conversation"
    return f"{stem}-{utcnow():%Y%m%d-%H%M%S}.{extension}"


def parents_first(messages: Sequence[Message]) -> list[Message]:
    """Messages oldest first, each after its parent (clock skew cannot reorder a branch)."""
    ordered = sorted(messages, key=lambda m: (m.created_at, m.id))
    known = {m.id for m in ordered}
    placed: set[str] = set()
    out: list[Message] = []
    pending = ordered
    while pending:
        waiting = []
        for message in pending:
            parent = message.parent_id if message.parent_id in known else None
            if parent is None or parent in placed:
                out.append(message)
                placed.add(message.id)
            else:
                waiting.append(message)
        if len(waiting) == len(pending):  # a cycle cannot be stored, but never loop forever
            out.extend(waiting)
            break
        pending = waiting
    return out


def active_branch(messages: Sequence[Message], leaf_id: str | None = None) -> list[Message]:
    """The branch ending at ``leaf_id`` (default: the newest message), oldest first."""
    if not messages:
        return []
    by_id = {m.id: m for m in messages}
    if leaf_id is None:
        leaf_id = max(messages, key=lambda m: (m.created_at, m.id)).id
    branch: list[Message] = []
    current = by_id.get(leaf_id)
    while current is not None and len(branch) <= len(by_id):
        branch.append(current)
        current = by_id.get(current.parent_id) if current.parent_id else None
    return list(reversed(branch))


def _moment(value: datetime) -> str:
    return value.isoformat()


def as_document(conversation: Conversation, messages: Sequence[Message]) -> dict[str, Any]:
    ordered = parents_first(messages)
    local = {m.id: str(number) for number, m in enumerate(ordered, start=1)}
    return {
        "format": EXPORT_FORMAT,
        "version": EXPORT_VERSION,
        "exported_at": _moment(utcnow()),
        "conversation": {
            "title": conversation.title,
            "model": conversation.model,
            "system_prompt": conversation.system_prompt,
            "temperature": conversation.temperature,
            "collection_ids": list(conversation.collection_ids or []),
            "created_at": _moment(conversation.created_at),
        },
        "messages": [
            {
                "id": local[m.id],
                "parent": local.get(m.parent_id) if m.parent_id else None,
                "role": m.role,
                "content": m.content,
                "status": m.status,
                "error": m.error,
                "model": m.model,
                "prompt_tokens": m.prompt_tokens,
                "completion_tokens": m.completion_tokens,
                "ttft_ms": m.ttft_ms,
                "duration_ms": m.duration_ms,
                "sources": m.sources,
                "created_at": _moment(m.created_at),
            }
            for m in ordered
        ],
    }


def as_json(conversation: Conversation, messages: Sequence[Message]) -> str:
    return json.dumps(as_document(conversation, messages), ensure_ascii=False, indent=2)


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _quoted(text: str) -> str:
    """Message text as a block quote, so its own headings and rules stay inside it."""
    return "\n".join(f"> {line}" if line else ">" for line in text.split("\n"))


def _source_line(source: dict[str, Any]) -> str:
    where = [str(source.get("document") or "document")]
    if source.get("heading"):
        where.append(str(source["heading"]))
    if source.get("page") is not None:
        where.append(f"page {source['page']}")
    return f"- \\[{source.get('number', '?')}\\] {plain_markdown(' · '.join(where))}"


def as_markdown(conversation: Conversation, messages: Sequence[Message]) -> str:
    """The active branch, readable; every message made inert (see markdown_safety)."""
    title = conversation.title or "Untitled conversation"
    lines = [f"# {plain_markdown(title)}", ""]
    details = [f"Exported {_when(utcnow())}"]
    if conversation.model:
        details.append(f"model {plain_markdown(conversation.model)}")
    if conversation.temperature is not None:
        details.append(f"temperature {conversation.temperature:g}")
    lines.append(" · ".join(details))
    if conversation.system_prompt:
        lines += ["", "**System prompt:**", "", _quoted(inert_markdown(conversation.system_prompt))]
    for message in active_branch(messages):
        role = _ROLE_NAMES.get(message.role, "Message")
        status = "" if message.status == "complete" else f" ({message.status})"
        lines += [
            "",
            f"## {role}{status}",
            "",
            f"*{_when(message.created_at)}*",
            "",
            _quoted(inert_markdown(message.content)),
        ]
        used = [s for s in message.sources or [] if s.get("used")]
        if used:
            lines += ["", "Sources:", ""]
            lines += [_source_line(source) for source in used]
    return "\n".join(lines) + "\n"
