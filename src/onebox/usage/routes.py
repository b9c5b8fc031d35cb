"""HTTP for usage reports: the caller's own tokens and cost, and everyone's for admins."""

from __future__ import annotations

from datetime import timedelta
from typing import Any

from fastapi import APIRouter, Query

from onebox.core.db import utcnow
from onebox.deps import AdminPrincipal, CurrentPrincipal, SessionDep
from onebox.usage.repository import UsageRepository

router = APIRouter(prefix="/api", tags=["usage"])


@router.get("/usage")
async def my_usage(
    principal: CurrentPrincipal, session: SessionDep, days: int = Query(default=30, ge=1, le=366)
) -> dict[str, Any]:
    now = utcnow()
    repository = UsageRepository(session)
    day_start = now.replace(hour=0, minute=0, second=0, microsecond=0)
    month_start = day_start.replace(day=1)
    return {
        "tokens_today": await repository.tokens_since(day_start, user_id=principal.user_id),
        "tokens_this_month": await repository.tokens_since(month_start, user_id=principal.user_id),
        "rows": await repository.daily_totals(now - timedelta(days=days), principal.user_id),
    }


@router.get("/admin/usage")
async def all_usage(
    admin: AdminPrincipal, session: SessionDep, days: int = Query(default=30, ge=1, le=366)
) -> dict[str, Any]:
    since = utcnow() - timedelta(days=days)
    rows = await UsageRepository(session).daily_totals(since)
    return {"since": since.isoformat(), "rows": rows}
