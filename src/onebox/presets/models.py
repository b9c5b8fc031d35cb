from __future__ import annotations

from sqlalchemy import JSON, Float, ForeignKey, Index, String, Text, UniqueConstraint
from sqlalchemy.orm import Mapped, mapped_column

from onebox.core.db import Base, IdMixin, TimestampMixin


class Preset(IdMixin, TimestampMixin, Base):
    """A user's saved chat settings; a new conversation (or an existing one) takes a copy."""

    __tablename__ = "presets"
    __table_args__ = (
        UniqueConstraint("owner_id", "name", name="uq_presets_owner_name"),
        Index("ix_presets_owner", "owner_id"),
    )

    owner_id: Mapped[str] = mapped_column(ForeignKey("users.id", ondelete="CASCADE"))
    name: Mapped[str] = mapped_column(String(100))
    system_prompt: Mapped[str] = mapped_column(Text, default="")
    model: Mapped[str | None] = mapped_column(String(200), default=None)
    collection_ids: Mapped[list[str]] = mapped_column(JSON, default=list)
    temperature: Mapped[float | None] = mapped_column(Float, default=None)
