"""HTTP for a widget key's owner: create a widget key with its settings, change them, and
read (never write) the conversations visitors had through it, or export them."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Request, Response

from onebox.core.errors import NotFoundError
from onebox.core.pagination import Page
from onebox.deps import CurrentPrincipal, SessionDep, StateDep
from onebox.users.repository import UserRepository
from onebox.users.schemas import KeyOut
from onebox.users.service import AccountService
from onebox.widget.export import as_json, as_markdown, export_filename
from onebox.widget.pages import script_tag
from onebox.widget.schemas import (
    WidgetConversationDetail,
    WidgetConversationOut,
    WidgetKeyCreate,
    WidgetKeyCreated,
    WidgetSettingsOut,
    WidgetSettingsUpdate,
)
from onebox.widget.service import WidgetService, WidgetTranscripts

router = APIRouter(prefix="/api/widget/keys", tags=["widget"])

EXPORT_MAX_CONVERSATIONS = 5000


def _client_ip(request: Request, state: StateDep) -> str:
    return state.limits.client_ip(request.client.host if request.client else None, request.headers)


@router.post("", response_model=WidgetKeyCreated, status_code=201)
async def create_widget_key(
    body: WidgetKeyCreate,
    request: Request,
    principal: CurrentPrincipal,
    session: SessionDep,
    state: StateDep,
) -> WidgetKeyCreated:
    user = await UserRepository(session).get(principal.user_id)
    if user is None:
        raise NotFoundError("User not found")
    service = WidgetService(session, state.settings)
    key, secret = await service.create_key(user, body)
    await AccountService(session).audit(
        "key_create", actor=user, target=key.prefix, ip=_client_ip(request, state)
    )
    settings = await service.settings_for(key.id)
    await session.commit()
    return WidgetKeyCreated(
        key=KeyOut.model_validate(key).model_dump(mode="json"),
        secret=secret,
        settings=settings,
        snippet=script_tag(str(request.base_url), secret),
    )


@router.get("/{key_id}", response_model=WidgetSettingsOut)
async def widget_settings(
    key_id: str, principal: CurrentPrincipal, session: SessionDep, state: StateDep
) -> WidgetSettingsOut:
    service = WidgetService(session, state.settings)
    await service.owned_key(principal.user_id, key_id)
    return await service.settings_for(key_id)


@router.patch("/{key_id}", response_model=WidgetSettingsOut)
async def update_widget_settings(
    key_id: str,
    body: WidgetSettingsUpdate,
    principal: CurrentPrincipal,
    session: SessionDep,
    state: StateDep,
) -> WidgetSettingsOut:
    updated = await WidgetService(session, state.settings).update_settings(
        principal.user_id, key_id, body
    )
    await session.commit()
    return updated


@router.get("/{key_id}/conversations", response_model=Page[WidgetConversationOut])
async def widget_conversations(
    key_id: str,
    principal: CurrentPrincipal,
    session: SessionDep,
    state: StateDep,
    limit: int = Query(default=50, ge=1, le=200),
    offset: int = Query(default=0, ge=0, le=1_000_000),
) -> Page[WidgetConversationOut]:
    await WidgetService(session, state.settings).owned_key(principal.user_id, key_id)
    rows = await WidgetTranscripts(session).page(
        principal.user_id, key_id, limit=limit + 1, offset=offset
    )
    return Page[WidgetConversationOut].from_rows(rows, limit, offset)


@router.get("/{key_id}/conversations/{conversation_id}", response_model=WidgetConversationDetail)
async def widget_conversation(
    key_id: str,
    conversation_id: str,
    principal: CurrentPrincipal,
    session: SessionDep,
    state: StateDep,
) -> WidgetConversationDetail:
    await WidgetService(session, state.settings).owned_key(principal.user_id, key_id)
    return await WidgetTranscripts(session).detail(principal.user_id, key_id, conversation_id)


@router.get("/{key_id}/export")
async def export_conversations(
    key_id: str,
    principal: CurrentPrincipal,
    session: SessionDep,
    state: StateDep,
    export_format: Literal["json", "markdown"] = Query(default="json", alias="format"),
    limit: int = Query(default=1000, ge=1, le=EXPORT_MAX_CONVERSATIONS),
    offset: int = Query(default=0, ge=0, le=1_000_000),
) -> Response:
    """The newest ``limit`` conversations (after ``offset``) with every message, as a file."""
    key = await WidgetService(session, state.settings).owned_key(principal.user_id, key_id)
    conversations = await WidgetTranscripts(session).everything(
        principal.user_id, key_id, limit=limit, offset=offset
    )
    if export_format == "markdown":
        content, media_type, extension = as_markdown(key, conversations), "text/markdown", "md"
    else:
        content, media_type, extension = as_json(key, conversations), "application/json", "json"
    return Response(
        content,
        media_type=f"{media_type}; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{export_filename(key, extension)}"'
        },
    )
