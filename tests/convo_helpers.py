"""Conversation files for the export/import/share tests: built by hand, as a client would."""

from __future__ import annotations

from typing import Any

import httpx

XSS = '<img src=x onerror="alert(1)"><script>alert(2)</script>'


def source(number: int, document: str, *, used: bool = True) -> dict[str, Any]:
    return {
        "number": number,
        "chunk_id": f"chunk-{number}",
        "document_id": f"doc-{number}",
        "collection_id": "collection-1",
        "document": document,
        "page": 2,
        "heading": "Background",
        "snippet": f"Snippet of {document}",
        "score": 0.5,
        "used": used,
    }


def message(
    local_id: str, parent: str | None, role: str, content: str, minute: int, **extra: Any
) -> dict[str, Any]:
    return {
        "id": local_id,
        "parent": parent,
        "role": role,
        "content": content,
        "created_at": f"2026-11-01T10:{minute:02d}:00+00:00",
        **extra,
    }


def conversation_file(
    messages: list[dict[str, Any]], *, title: str = "Imported", **conversation: Any
) -> dict[str, Any]:
    return {
        "format": "onebox.conversation",
        "version": 1,
        "conversation": {
            "title": title,
            "created_at": "2026-11-01T10:00:00+00:00",
            **conversation,
        },
        "messages": messages,
    }


def branched_file(**conversation: Any) -> dict[str, Any]:
    """A question, an answer with sources, and a regenerated answer (the newest: active)."""
    return conversation_file(
        [
            message("1", None, "user", "What is **Onebox**?", 1),
            message("2", "1", "assistant", "An old answer.", 2),
            message(
                "3",
                "1",
                "assistant",
                "A self-hosted chat [1].",
                3,
                sources=[source(1, "guide.md"), source(2, "other.md", used=False)],
            ),
        ],
        **conversation,
    )


async def import_file(
    client: httpx.AsyncClient, document: dict[str, Any], headers: dict[str, str] | None = None
) -> dict[str, Any]:
    response = await client.post("/api/conversations/import", json=document, headers=headers)
    assert response.status_code == 201, response.text
    return dict(response.json())
