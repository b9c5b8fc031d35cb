"""Preset logic. Flushes, never commits. Model names and collections arrive already
resolved by the route (the same checks a conversation's settings get)."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from onebox.chat.service import clean_system_prompt
from onebox.core.db import utcnow
from onebox.core.errors import BadRequestError, ConflictError, NotFoundError
from onebox.presets.models import Preset
from onebox.presets.repository import PresetRepository
from onebox.presets.schemas import PresetCreate, PresetUpdate

MAX_PRESETS_PER_USER = 200


def _clean_name(name: str) -> str:
    cleaned = " ".join(name.split())
    if not cleaned:
        raise BadRequestError("name must not be blank", param="name")
    return cleaned


class PresetService:
    def __init__(self, session: AsyncSession) -> None:
        self.repository = PresetRepository(session)

    async def list(self, owner_id: str) -> Sequence[Preset]:
        return await self.repository.list(owner_id)

    async def get(self, owner_id: str, preset_id: str) -> Preset:
        preset = await self.repository.get(owner_id, preset_id)
        if preset is None:
            raise NotFoundError(f"Preset {preset_id!r} not found")
        return preset

    async def _check_name_free(self, owner_id: str, name: str, keep: str | None = None) -> None:
        existing = await self.repository.by_name(owner_id, name)
        if existing is not None and existing.id != keep:
            raise ConflictError(f"A preset named {name!r} already exists", param="name")

    async def create(self, owner_id: str, body: PresetCreate) -> Preset:
        if await self.repository.count(owner_id) >= MAX_PRESETS_PER_USER:
            raise ConflictError(f"At most {MAX_PRESETS_PER_USER} presets per user")
        name = _clean_name(body.name)
        await self._check_name_free(owner_id, name)
        preset = Preset(
            owner_id=owner_id,
            name=name,
            system_prompt=clean_system_prompt(body.system_prompt) or "",
            model=body.model,
            collection_ids=list(body.collection_ids),
            temperature=body.temperature,
        )
        await self.repository.add(preset)
        return preset

    async def update(self, owner_id: str, preset_id: str, body: PresetUpdate) -> Preset:
        preset = await self.get(owner_id, preset_id)
        sent = body.model_fields_set
        if body.name is not None:
            name = _clean_name(body.name)
            await self._check_name_free(owner_id, name, keep=preset.id)
            preset.name = name
        if body.system_prompt is not None:
            preset.system_prompt = clean_system_prompt(body.system_prompt) or ""
        if "model" in sent:
            preset.model = body.model
        if body.collection_ids is not None:
            preset.collection_ids = list(body.collection_ids)
        if "temperature" in sent:
            preset.temperature = body.temperature
        preset.updated_at = utcnow()
        await self.repository.session.flush()
        return preset

    async def delete(self, owner_id: str, preset_id: str) -> None:
        await self.repository.delete(await self.get(owner_id, preset_id))
