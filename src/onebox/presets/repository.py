"""All SQL for presets; every query is filtered by the owner."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from onebox.presets.models import Preset


class PresetRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, owner_id: str, preset_id: str) -> Preset | None:
        result = await self.session.execute(
            select(Preset).where(Preset.id == preset_id, Preset.owner_id == owner_id)
        )
        return result.scalar_one_or_none()

    async def by_name(self, owner_id: str, name: str) -> Preset | None:
        result = await self.session.execute(
            select(Preset).where(Preset.owner_id == owner_id, Preset.name == name)
        )
        return result.scalar_one_or_none()

    async def list(self, owner_id: str) -> Sequence[Preset]:
        result = await self.session.execute(
            select(Preset).where(Preset.owner_id == owner_id).order_by(Preset.name, Preset.id)
        )
        return result.scalars().all()

    async def count(self, owner_id: str) -> int:
        result = await self.session.execute(
            select(func.count()).select_from(Preset).where(Preset.owner_id == owner_id)
        )
        return int(result.scalar_one())

    async def add(self, preset: Preset) -> None:
        self.session.add(preset)
        await self.session.flush()

    async def delete(self, preset: Preset) -> None:
        await self.session.delete(preset)
        await self.session.flush()
