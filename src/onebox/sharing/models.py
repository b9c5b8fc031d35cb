from __future__ import annotations

from datetime import datetime

from sqlalchemy import ForeignKey, Index, String
from sqlalchemy.orm import Mapped, mapped_column

from onebox.core.db import Base, IdMixin, UTCDateTime, utcnow


class ConversationShare(IdMixin, Base):
    """A read-only link to one branch of a conversation: the messages up to ``message_id``
    (the newest message when the link was made). Only the SHA-256 of the link's token is
    stored; the link itself is shown once, when it is made."""

    __tablename__ = "conversation_shares"
    __table_args__ = (Index("ix_conversation_shares_conversation", "conversation_id"),)

    token_hash: Mapped[str] = mapped_column(String(64), unique=True)
    # The token's first characters, to tell links apart in the owner's list.
    prefix: Mapped[str] = mapped_column(String(16))
    conversation_id: Mapped[str] = mapped_column(ForeignKey("conversations.id", ondelete="CASCADE"))
    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    message_id: Mapped[str] = mapped_column(ForeignKey("messages.id", ondelete="CASCADE"))
    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    revoked_at: Mapped[datetime | None] = mapped_column(UTCDateTime, default=None)
