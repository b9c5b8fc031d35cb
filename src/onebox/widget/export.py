"""A widget key's conversations as a file the owner downloads: JSON or Markdown."""

from __future__ import annotations

import json
import re
from collections.abc import Sequence
from datetime import datetime

from onebox.core.db import utcnow
from onebox.users.models import ApiKey
from onebox.widget.schemas import WidgetConversationDetail

_ROLE_NAMES = {"user": "Visitor", "assistant": "Assistant", "system": "System"}
_UNSAFE_FILENAME = re.compile(r"[^A-Za-z0-9._-]+")


def export_filename(key: ApiKey, extension: str) -> str:
    stem = _UNSAFE_FILENAME.sub("-", key.name or key.prefix).strip("-") or "widget"
    return f"widget-{stem[:60]}-{utcnow():%Y%m%d-%H%M%S}.{extension}"


def _key(key: ApiKey) -> dict[str, str]:
    return {"id": key.id, "name": key.name, "prefix": key.prefix}


def as_json(key: ApiKey, conversations: Sequence[WidgetConversationDetail]) -> str:
    document = {
        "key": _key(key),
        "exported_at": utcnow().isoformat(),
        "conversations": [c.model_dump(mode="json") for c in conversations],
    }
    return json.dumps(document, ensure_ascii=False, indent=2)


def _when(moment: datetime) -> str:
    return moment.strftime("%Y-%m-%d %H:%M UTC")


def _quoted(text: str) -> str:
    """Visitor text as a Markdown block quote, so its own headings and rules stay inside."""
    return "\n".join(f"> {line}" if line else ">" for line in text.splitlines() or [""])


def as_markdown(key: ApiKey, conversations: Sequence[WidgetConversationDetail]) -> str:
    lines = [
        f"# Widget conversations: {key.name or key.prefix}",
        "",
        f"Key `{key.prefix}…`, exported {_when(utcnow())}, {len(conversations)} conversation(s).",
    ]
    for conversation in conversations:
        lines += [
            "",
            f"## {conversation.title or 'Untitled conversation'}",
            "",
            f"Visitor `{conversation.visitor_id or '?'}` · started {_when(conversation.created_at)}"
            f" · last message {_when(conversation.updated_at)}",
        ]
        for message in conversation.messages:
            role = _ROLE_NAMES.get(message.role, message.role)
            status = "" if message.status == "complete" else f" ({message.status})"
            lines += [
                "",
                f"**{role}**{status}, {_when(message.created_at)}:",
                "",
                _quoted(message.content),
            ]
            used = [s for s in message.sources or [] if s.get("used")]
            if used:
                lines += ["", "Sources:"]
                lines += [f"- [{s.get('number')}] {s.get('document', '')}" for s in used]
    return "\n".join(lines) + "\n"
