"""Typed dependencies for route signatures."""

from __future__ import annotations

import hmac
from collections.abc import AsyncIterator
from typing import Annotated, cast

from fastapi import Depends, Request
from sqlalchemy.ext.asyncio import AsyncSession

from onebox.core.errors import APIError
from onebox.core.settings import Settings
from onebox.state import AppState
from onebox.users.auth import CSRF_HEADER, SESSION_COOKIE, InvalidCredentialsError, Principal

SAFE_METHODS = {"GET", "HEAD", "OPTIONS"}


# Every dependency is ``async def``, even those that never await: FastAPI runs a plain
# ``def`` dependency in its thread pool, a thread hop for each request.


async def get_state(request: Request) -> AppState:
    return cast(AppState, request.app.state.onebox)


StateDep = Annotated[AppState, Depends(get_state)]


async def get_settings(state: StateDep) -> Settings:
    return state.settings


SettingsDep = Annotated[Settings, Depends(get_settings)]


async def get_session(state: StateDep) -> AsyncIterator[AsyncSession]:
    """A session per request. The route commits; anything it leaves is rolled back."""
    async with state.sessionmaker() as session:
        yield session


SessionDep = Annotated[AsyncSession, Depends(get_session)]


def unauthenticated(message: str, code: str = "unauthenticated") -> APIError:
    return APIError(
        401, message, "authentication_error", code=code, headers={"WWW-Authenticate": "Bearer"}
    )


def require_csrf(request: Request, principal: Principal) -> None:
    """Cookie-authenticated writes must echo the session's CSRF token."""
    if request.method in SAFE_METHODS:
        return
    sent = request.headers.get(CSRF_HEADER, "")
    if not hmac.compare_digest(sent.encode(), (principal.csrf_token or "").encode()):
        raise APIError(
            403,
            "Missing or wrong CSRF token (send the X-CSRF-Token header)",
            "permission_error",
            code="csrf_failed",
        )


async def get_principal(request: Request, state: StateDep) -> Principal:
    authorization = request.headers.get("authorization")
    if authorization:
        scheme, _, credential = authorization.partition(" ")
        if scheme.lower() != "bearer" or not credential.strip():
            raise unauthenticated("Send credentials as 'Authorization: Bearer <key>'")
        try:
            principal = await state.auth.from_bearer(credential.strip())
        except InvalidCredentialsError as exc:
            raise unauthenticated(str(exc), "invalid_api_key") from exc
        if principal.key is not None and principal.key.kind == "widget":
            raise APIError(403, "Widget keys only work on /v1 and /widget", "permission_error")
        return principal
    cookie = request.cookies.get(SESSION_COOKIE)
    if cookie:
        principal_or_none = await state.auth.from_session_cookie(cookie)
        if principal_or_none is not None:
            require_csrf(request, principal_or_none)
            return principal_or_none
    peer = request.client.host if request.client else None
    if await state.auth.anonymous_allowed(peer, request.headers):
        return await state.auth.anonymous(state.local_user_id)
    raise unauthenticated("Sign in to continue")


CurrentPrincipal = Annotated[Principal, Depends(get_principal)]


async def get_current_user_id(principal: CurrentPrincipal) -> str:
    return principal.user_id


CurrentUserId = Annotated[str, Depends(get_current_user_id)]


async def require_admin(principal: CurrentPrincipal) -> Principal:
    if not principal.is_admin:
        raise APIError(403, "This needs an administrator", "permission_error")
    return principal


AdminPrincipal = Annotated[Principal, Depends(require_admin)]
