"""HTTP for share links: the owner's API, and the public read-only page."""

from __future__ import annotations

from fastapi import APIRouter, Response
from fastapi.responses import HTMLResponse

from onebox.deps import CurrentUserId, SessionDep
from onebox.sharing.pages import SHARE_HEADERS, not_found_page, shared_page
from onebox.sharing.schemas import ShareCreate, ShareCreated, ShareOut
from onebox.sharing.service import ShareService

router = APIRouter(prefix="/api/conversations", tags=["sharing"])
page_router = APIRouter(include_in_schema=False)


@router.post("/{conversation_id}/shares", response_model=ShareCreated, status_code=201)
async def create_share(
    conversation_id: str,
    session: SessionDep,
    user_id: CurrentUserId,
    body: ShareCreate | None = None,
) -> ShareCreated:
    """A read-only link to the conversation up to its newest message (or ``message_id``).
    The token is shown only now."""
    body = body or ShareCreate()
    share, token = await ShareService(session).create(user_id, conversation_id, body.message_id)
    await session.commit()
    return ShareCreated.model_validate(
        {**ShareOut.model_validate(share).model_dump(), "token": token, "path": f"/s/{token}"}
    )


@router.get("/{conversation_id}/shares", response_model=list[ShareOut])
async def list_shares(
    conversation_id: str, session: SessionDep, user_id: CurrentUserId
) -> list[ShareOut]:
    shares = await ShareService(session).list(user_id, conversation_id)
    return [ShareOut.model_validate(share) for share in shares]


@router.delete("/{conversation_id}/shares/{share_id}", status_code=204)
async def revoke_share(
    conversation_id: str, share_id: str, session: SessionDep, user_id: CurrentUserId
) -> Response:
    await ShareService(session).revoke(user_id, conversation_id, share_id)
    await session.commit()
    return Response(status_code=204)


@page_router.get("/s/{token}", response_class=HTMLResponse)
async def shared_conversation(token: str, session: SessionDep) -> HTMLResponse:
    view = await ShareService(session).open(token)
    if view is None:
        return HTMLResponse(not_found_page(), status_code=404, headers=SHARE_HEADERS)
    return HTMLResponse(shared_page(view), headers=SHARE_HEADERS)
