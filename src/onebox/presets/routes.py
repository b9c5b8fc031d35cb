"""HTTP for presets. Logic lives in service.py."""

from __future__ import annotations

from fastapi import APIRouter, Response

from onebox.core.errors import BadRequestError
from onebox.deps import CurrentUserId, SessionDep, StateDep
from onebox.documents.service import DocumentService
from onebox.llm.registry import UnknownModelError
from onebox.presets.schemas import PresetCreate, PresetOut, PresetUpdate
from onebox.presets.service import PresetService
from onebox.state import AppState

router = APIRouter(prefix="/api/presets", tags=["presets"])


def _canonical_model(state: AppState, name: str | None) -> str | None:
    if not name:
        return None
    try:
        return state.models.resolve(name).name
    except UnknownModelError as exc:
        raise BadRequestError(str(exc), param="model") from exc


@router.get("", response_model=list[PresetOut])
async def list_presets(session: SessionDep, user_id: CurrentUserId) -> list[PresetOut]:
    return [PresetOut.model_validate(row) for row in await PresetService(session).list(user_id)]


@router.post("", response_model=PresetOut, status_code=201)
async def create_preset(
    body: PresetCreate, session: SessionDep, user_id: CurrentUserId, state: StateDep
) -> PresetOut:
    body.model = _canonical_model(state, body.model)
    body.collection_ids = await DocumentService(session, state.settings).resolve_collections(
        user_id, body.collection_ids
    )
    preset = await PresetService(session).create(user_id, body)
    await session.commit()
    return PresetOut.model_validate(preset)


@router.get("/{preset_id}", response_model=PresetOut)
async def get_preset(preset_id: str, session: SessionDep, user_id: CurrentUserId) -> PresetOut:
    return PresetOut.model_validate(await PresetService(session).get(user_id, preset_id))


@router.patch("/{preset_id}", response_model=PresetOut)
async def update_preset(
    preset_id: str,
    body: PresetUpdate,
    session: SessionDep,
    user_id: CurrentUserId,
    state: StateDep,
) -> PresetOut:
    if "model" in body.model_fields_set:
        body.model = _canonical_model(state, body.model)
    if body.collection_ids is not None:
        body.collection_ids = await DocumentService(session, state.settings).resolve_collections(
            user_id, body.collection_ids
        )
    preset = await PresetService(session).update(user_id, preset_id, body)
    await session.commit()
    return PresetOut.model_validate(preset)


@router.delete("/{preset_id}", status_code=204)
async def delete_preset(preset_id: str, session: SessionDep, user_id: CurrentUserId) -> Response:
    await PresetService(session).delete(user_id, preset_id)
    await session.commit()
    return Response(status_code=204)
