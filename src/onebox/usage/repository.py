from __future__ import annotations

from collections.abc import Sequence
from typing import Any

from sqlalchemy import func, insert, select
from sqlalchemy.ext.asyncio import AsyncSession

from onebox.usage.models import UsageRecord


class UsageRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def insert_many(self, rows: Sequence[dict[str, Any]]) -> None:
        await self.session.execute(insert(UsageRecord), list(rows))

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
