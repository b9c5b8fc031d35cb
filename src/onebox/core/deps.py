"""Typed dependencies for route signatures."""

from __future__ import annotations

from collections.abc import AsyncIterator
from typing import Annotated, cast

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from onebox.core.settings import Settings
from onebox.core.state import AppState


def get_state(request: Request) -> AppState:
    return cast(AppState, request.app.state.onebox)


StateDep = Annotated[AppState, Depends(get_state)]


def get_settings(state: StateDep) -> Settings:
    return state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    """A session per request. The route commits; anything it leaves is rolled back."""
    async with state.sessionmaker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def get_current_user_id(state: StateDep) -> str:
    # Single-user mode: every request acts as the local user until accounts exist.
    return state.local_user_id


CurrentUserId = Annotated[str, Depends(get_current_user_id)]
