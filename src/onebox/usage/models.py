from __future__ import annotations

from datetime import datetime

from sqlalchemy import Float, Index, Integer, String
from sqlalchemy.orm import Mapped, mapped_column

from onebox.core.db import Base, IdMixin, UTCDateTime, utcnow


class UsageRecord(IdMixin, Base):
    """One generation, from the UI, the CLI or the API. Written in batches."""

    __tablename__ = "usage_records"
    __table_args__ = (
        Index("ix_usage_records_created", "created_at"),
        Index("ix_usage_records_user_created", "user_id", "created_at"),
    )

    created_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow)
    user_id: Mapped[str | None] = mapped_column(String(36), default=None)
    api_key_id: Mapped[str | None] = mapped_column(String(36), default=None)
    source: Mapped[str] = mapped_column(String(16))  # ui | api | cli | widget | title
    model: Mapped[str] = mapped_column(String(200))  # the public name that served it
    requested_model: Mapped[str] = mapped_column(String(200))
    provider: Mapped[str] = mapped_column(String(32))
    prompt_tokens: Mapped[int] = mapped_column(Integer, default=0)
    completion_tokens: Mapped[int] = mapped_column(Integer, default=0)
    queue_ms: Mapped[float | None] = mapped_column(Float, default=None)
    ttft_ms: Mapped[float | None] = mapped_column(Float, default=None)
    duration_ms: Mapped[float] = mapped_column(Float, default=0.0)
    tokens_per_second: Mapped[float | None] = mapped_column(Float, default=None)
    cost: Mapped[float] = mapped_column(Float, default=0.0)
    status: Mapped[str] = mapped_column(String(16))  # complete | partial | error | cancelled
    error_type: Mapped[str | None] = mapped_column(String(64), default=None)
