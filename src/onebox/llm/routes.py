"""The models a user can pick for a conversation."""

from __future__ import annotations

from fastapi import APIRouter
from pydantic import BaseModel

from onebox.deps import CurrentPrincipal, StateDep
from onebox.state import AppState
from onebox.users.auth import Principal

router = APIRouter(prefix="/api/models", tags=["models"])


class ModelOut(BaseModel):
    id: str
    aliases: list[str]
    provider: str
    context_window: int
    default: bool
    ready: bool


def models_for(state: AppState, principal: Principal) -> list[ModelOut]:
    """The models this caller may use (also part of ``GET /api/bootstrap``)."""
    return [
        ModelOut(
            id=entry.name,
            aliases=entry.spec.aliases,
            provider=entry.spec.provider,
            context_window=entry.provider.context_size,
            default=entry.name == state.models.default,
            ready=entry.provider.is_ready(),
        )
        for entry in state.models.entries()
        if principal.key is None or principal.key.allows_model(entry.name)
    ]


@router.get("", response_model=list[ModelOut])
async def list_models(state: StateDep, principal: CurrentPrincipal) -> list[ModelOut]:
    return models_for(state, principal)
