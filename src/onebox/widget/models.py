from __future__ import annotations

from datetime import datetime
from typing import Any

from sqlalchemy import JSON, Boolean, ForeignKey, Integer
from sqlalchemy.orm import Mapped, mapped_column

from onebox.core.db import Base, UTCDateTime, utcnow


class WidgetSettings(Base):
    """A widget key's appearance and visitor policy. A widget key without a row uses the
    defaults (keys made through ``/api/keys`` have none)."""

    __tablename__ = "widget_settings"

    key_id: Mapped[str] = mapped_column(
        ForeignKey("api_keys.id", ondelete="CASCADE"), primary_key=True
    )
    # Title, greeting, colour, position, theme, …: validated by WidgetAppearance.
    appearance: Mapped[dict[str, Any]] = mapped_column(JSON, default=dict)
    retain_conversations: Mapped[bool] = mapped_column(Boolean, default=True)
    max_visitor_messages: Mapped[int] = mapped_column(Integer, default=20)
    visitor_requests_per_minute: Mapped[int | None] = mapped_column(Integer, default=None)
    visitor_tokens_per_minute: Mapped[int | None] = mapped_column(Integer, default=None)
    visitor_tokens_per_day: Mapped[int | None] = mapped_column(Integer, default=None)
    updated_at: Mapped[datetime] = mapped_column(UTCDateTime, default=utcnow, onupdate=utcnow)
