"""Reading a conversation file (the JSON of :mod:`onebox.chat.export`) back into a new
conversation of the caller's. Strict: the schema forbids unknown fields and bounds every
size, and the tree is checked (unique ids, each parent before its children) before
anything is stored. Messages get new ids; their times are kept, so the newest message
(the active branch) stays the newest."""

from __future__ import annotations

from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sqlalchemy.ext.asyncio import AsyncSession

from onebox.chat.models import Conversation, Message
from onebox.chat.schemas import SYSTEM_PROMPT_MAX_CHARS
from onebox.chat.service import clean_system_prompt
from onebox.core.db import new_id, utcnow
from onebox.core.errors import BadRequestError
from onebox.core.inputs import MAX_STORED_INT, Moment, Text

MAX_IMPORT_MESSAGES = 2000
MAX_IMPORT_MESSAGE_CHARS = 200_000
MAX_SOURCES = 100


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid")


class SourceIn(_Strict):
    number: int = Field(ge=1, le=10_000)
    chunk_id: Text | None = Field(default=None, max_length=64)
    document_id: Text | None = Field(default=None, max_length=64)
    collection_id: Text | None = Field(default=None, max_length=64)
    document: Text = Field(default="", max_length=1000)
    page: int | None = Field(default=None, ge=0, le=MAX_STORED_INT)
    heading: Text | None = Field(default=None, max_length=2000)
    snippet: Text = Field(default="", max_length=10_000)
    score: float | None = None
    used: bool | None = None


class MessageIn(_Strict):
    id: Text = Field(min_length=1, max_length=64)
    parent: Text | None = Field(default=None, max_length=64)
    role: Literal["user", "assistant"]
    content: Text = Field(max_length=MAX_IMPORT_MESSAGE_CHARS)
    status: Literal["complete", "partial", "error"] = "complete"
    error: Text | None = Field(default=None, max_length=10_000)
    model: Text | None = Field(default=None, max_length=200)
    prompt_tokens: int | None = Field(default=None, ge=0, le=MAX_STORED_INT)
    completion_tokens: int | None = Field(default=None, ge=0, le=MAX_STORED_INT)
    ttft_ms: int | None = Field(default=None, ge=0, le=MAX_STORED_INT)
    duration_ms: int | None = Field(default=None, ge=0, le=MAX_STORED_INT)
    sources: list[SourceIn] | None = Field(default=None, max_length=MAX_SOURCES)
    created_at: Moment


class ConversationIn(_Strict):
    title: Text = Field(default="", max_length=200)
    model: Text | None = Field(default=None, max_length=200)
    system_prompt: Text | None = Field(default=None, max_length=SYSTEM_PROMPT_MAX_CHARS)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)
    collection_ids: list[Text] = Field(default_factory=list, max_length=50)
    created_at: Moment


class ConversationFile(_Strict):
    """A conversation as ``GET /api/conversations/{id}/export?format=json`` writes it."""

    format: Literal["onebox.conversation"]
    version: Literal[1]
    exported_at: Moment | None = None
    conversation: ConversationIn
    messages: list[MessageIn] = Field(max_length=MAX_IMPORT_MESSAGES)


def check_tree(messages: list[MessageIn]) -> None:
    seen: set[str] = set()
    for index, message in enumerate(messages):
        if message.id in seen:
            raise BadRequestError(
                f"messages[{index}].id {message.id!r} is used twice", param="messages"
            )
        if message.parent is not None and message.parent not in seen:
            raise BadRequestError(
                f"messages[{index}].parent {message.parent!r} must name an earlier message",
                param="messages",
            )
        seen.add(message.id)


async def import_conversation(
    session: AsyncSession,
    owner_id: str,
    document: ConversationFile,
    *,
    model: str | None,
    collection_ids: list[str],
) -> Conversation:
    """Adds the conversation and its messages (flushed, not committed). ``model`` and
    ``collection_ids`` are what the caller may use of the file's (checked by the route)."""
    check_tree(document.messages)
    source = document.conversation
    conversation = Conversation(
        owner_id=owner_id,
        title=" ".join(source.title.split()),
        model=model,
        collection_ids=collection_ids,
        system_prompt=clean_system_prompt(source.system_prompt),
        temperature=source.temperature,
        created_at=source.created_at,
        updated_at=utcnow(),
    )
    session.add(conversation)
    await session.flush()
    ids: dict[str, str] = {}
    rows = []
    for message in document.messages:
        ids[message.id] = new_id()
        rows.append(
            Message(
                id=ids[message.id],
                conversation_id=conversation.id,
                parent_id=ids[message.parent] if message.parent is not None else None,
                role=message.role,
                content=message.content,
                status=message.status,
                error=message.error,
                model=message.model,
                prompt_tokens=message.prompt_tokens,
                completion_tokens=message.completion_tokens,
                ttft_ms=message.ttft_ms,
                duration_ms=message.duration_ms,
                sources=[s.model_dump(exclude_unset=True) for s in message.sources]
                if message.sources is not None
                else None,
                created_at=message.created_at,
            )
        )
    session.add_all(rows)
    await session.flush()
    return conversation
