from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from onebox.usage.models import UsageRecord
from onebox.users.models import ApiKey, User


class UsageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_many(self, rows: Sequence[dict[str, Any]]) -> None:
        await self.session.execute(insert(UsageRecord), list(rows))

    async def daily_totals(
        self, since: datetime, user_id: str | None = None
    ) -> list[dict[str, Any]]:
        """Requests, tokens and cost per day, user, API key and model since ``since``."""
        day = func.date(UsageRecord.created_at).label("day")
        query = (
            select(
                day,
                UsageRecord.user_id,
                User.email.label("user_email"),
                UsageRecord.api_key_id,
                ApiKey.prefix.label("key_prefix"),
                UsageRecord.model,
                func.count().label("requests"),
                func.sum(UsageRecord.prompt_tokens).label("prompt_tokens"),
                func.sum(UsageRecord.completion_tokens).label("completion_tokens"),
                func.sum(UsageRecord.cost).label("cost"),
            )
            .outerjoin(User, User.id == UsageRecord.user_id)
            .outerjoin(ApiKey, ApiKey.id == UsageRecord.api_key_id)
            .where(UsageRecord.created_at >= since)
            .group_by(
                day, UsageRecord.user_id, User.email, UsageRecord.api_key_id, ApiKey.prefix,
                UsageRecord.model,
            )
            .order_by(day.desc())
        )  # fmt: skip
        if user_id is not None:
            query = query.where(UsageRecord.user_id == user_id)
        result = await self.session.execute(query)
        return [
            {**row._mapping, "day": str(row.day), "cost": float(row.cost or 0)} for row in result
        ]

    async def tokens_since(self, since: datetime, *, user_id: str) -> int:
        result = await self.session.execute(
            select(
                func.coalesce(
                    func.sum(UsageRecord.prompt_tokens + UsageRecord.completion_tokens), 0
                )
            ).where(UsageRecord.user_id == user_id, UsageRecord.created_at >= since)
        )
        return int(result.scalar_one())

    async def totals_by_model(self) -> list[dict[str, Any]]:
        result = await self.session.execute(
            select(
                UsageRecord.model,
                func.count().label("requests"),
                func.sum(UsageRecord.prompt_tokens).label("prompt_tokens"),
                func.sum(UsageRecord.completion_tokens).label("completion_tokens"),
                func.sum(UsageRecord.cost).label("cost"),
            ).group_by(UsageRecord.model)
        )
        return [dict(row._mapping) for row in result]
