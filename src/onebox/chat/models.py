from __future__ import annotations

from datetime import datetime
from enum import StrEnum
from typing import Any

from sqlalchemy import JSON, Boolean, Float, ForeignKey, Index, Integer, SmallInteger, String, Text
from sqlalchemy.orm import Mapped, mapped_column

from onebox.core.db import Base, IdMixin, TimestampMixin, UTCDateTime, utcnow


class Role(StrEnum):
    SYSTEM = "system"
    USER = "user"
    ASSISTANT = "assistant"


class MessageStatus(StrEnum):
    COMPLETE = "complete"
    PARTIAL = "partial"
    ERROR = "error"


class Conversation(IdMixin, TimestampMixin, Base):
    __tablename__ = "conversations"
    __table_args__ = (
        Index("ix_conversations_owner_updated", "owner_id", "updated_at"),
        Index("ix_conversations_widget_visitor", "widget_key_id", "visitor_id"),
        Index("ix_conversations_widget_updated", "widget_key_id", "updated_at"),
    )

    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    title: Mapped[str] = mapped_column(String(200), default="")
    # "auto" (the first message's first line; the model may replace it), "model" or
    # "user" (named by the user: never overwritten).
    title_source: Mapped[str] = mapped_column(String(16), default="auto", server_default="auto")
    pinned: Mapped[bool] = mapped_column(Boolean, default=False)
    archived: Mapped[bool] = mapped_column(Boolean, default=False)
    model: Mapped[str | None] = mapped_column(String(200), default=None)
    # Collections the answers draw on; checked against the owner at every retrieval.
    collection_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    # Widget traffic: the widget key it came through and the browser's anonymous visitor
    # id. The owner reads these conversations per key; they never join the owner's own list.
    # No foreign key: keys are revoked, never deleted, and the owner's cascade removes both
    # (SQLite cannot add a foreign key to an existing table without rebuilding it).
    widget_key_id: Mapped[str | None] = mapped_column(String(36), default=None)
    visitor_id: Mapped[str | None] = mapped_column(String(64), default=None)
    # The owner's own instructions for this conversation (added after the deployment's
    # system prompt) and sampling temperature; None: the defaults.
    system_prompt: Mapped[str | None] = mapped_column(Text, default=None)
    temperature: Mapped[float | None] = mapped_column(Float, default=None)
    # The branch on screen: for each parent message id ("" for the roots), the child the
    # user last chose. A parent without a choice shows its newest child.
    branch_choices: Mapped[dict[str, str] | None] = mapped_column(JSON, default=None)


class Message(IdMixin, Base):
    __tablename__ = "messages"
    __table_args__ = (Index("ix_messages_conversation_created", "conversation_id", "created_at"),)

    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    # Edits and regenerations become siblings under the same parent: the history is a tree.
    parent_id: Mapped[str | None] = mapped_column(
        ForeignKey("messages.id", ondelete="SET NULL"), default=None
    )
    role: Mapped[str] = mapped_column(String(16))
    content: Mapped[str] = mapped_column(Text, default="")
    model: Mapped[str | None] = mapped_column(String(200), default=None)
    prompt_tokens: Mapped[int | None] = mapped_column(Integer, default=None)
    completion_tokens: Mapped[int | None] = mapped_column(Integer, default=None)
    ttft_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    duration_ms: Mapped[int | None] = mapped_column(Integer, default=None)
    status: Mapped[str] = mapped_column(String(16), default=MessageStatus.COMPLETE)
    error: Mapped[str | None] = mapped_column(Text, default=None)
    # Retrieved passages shown to the model, numbered as cited; a snapshot that outlives
    # the documents. Each has ``used``: whether the answer cites it.
    sources: Mapped[list[dict[str, Any]] | None] = mapped_column(JSON, default=None)
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)


class MessageFeedback(Base):
    """The owner's thumbs up (1) or down (-1) on a reply, with an optional comment."""

    __tablename__ = "message_feedback"

    message_id: Mapped[str] = mapped_column(
        ForeignKey("messages.id", ondelete="CASCADE"), primary_key=True
    )
    user_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"), index=True)
    rating: Mapped[int] = mapped_column(SmallInteger)
    comment: Mapped[str] = mapped_column(Text, default="")
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
