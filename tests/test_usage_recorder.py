"""Usage rows survive shutdown: closing the recorder while a batch is being written must not
lose that batch."""

from __future__ import annotations

import asyncio
from typing import Any

import pytest
from sqlalchemy import func, select

from onebox.usage.models import UsageRecord
from onebox.usage.repository import UsageRepository
from onebox.usage.service import GenerationMeter, UsageRecorder
from tests.conftest import AppUnderTest

pytestmark = pytest.mark.anyio


def usage_row() -> dict[str, Any]:
    return GenerationMeter().row(
        source="api", user_id=None, model="m", requested_model="m", provider="fake",
        usage=None, cost_per_token=(0.0, 0.0), status="complete",
    )  # fmt: skip


async def test_close_during_a_flush_keeps_the_batch(
    api: AppUnderTest, monkeypatch: pytest.MonkeyPatch
) -> None:
    sessionmaker = api.app.state.onebox.sessionmaker
    writing = asyncio.Event()
    original = UsageRepository.insert_many

    async def slow_insert(self: UsageRepository, rows: Any) -> None:
        writing.set()
        await asyncio.sleep(0.3)
        await original(self, rows)

    monkeypatch.setattr(UsageRepository, "insert_many", slow_insert)
    recorder = UsageRecorder(sessionmaker, flush_interval=0.01)
    await recorder.start()
    recorder.record(usage_row())
    recorder.record(usage_row())
    await asyncio.wait_for(writing.wait(), 5)  # the background flush holds the batch now
    await recorder.close()

    async with sessionmaker() as session:
        count = await session.scalar(select(func.count()).select_from(UsageRecord))
    assert count == 2
