"""HTTP for conversations and messages. Logic lives in service.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from onebox.chat.generation import message_out
from onebox.chat.schemas import (
    ConversationCreate,
    ConversationDetail,
    ConversationOut,
    ConversationUpdate,
    MessageCreate,
)
from onebox.chat.service import ChatService
from onebox.chat.turn import TurnRequest
from onebox.core.errors import BadRequestError, ConflictError
from onebox.core.inputs import PageOffset
from onebox.core.pagination import Page
from onebox.core.sse import SSE_HEADERS, format_event
from onebox.deps import CurrentPrincipal, CurrentUserId, SessionDep, StateDep
from onebox.documents.service import DocumentService
from onebox.llm.base import ChatMessage
from onebox.llm.registry import UnknownModelError
from onebox.state import AppState

router = APIRouter(prefix="/api/conversations", tags=["chat"])


def _canonical_model(state: AppState, name: str | None) -> str | None:
    if name is None:
        return None
    try:
        return state.models.resolve(name).name
    except UnknownModelError as exc:
        raise BadRequestError(str(exc), param="model") from exc


@router.get("", response_model=Page[ConversationOut])
async def list_conversations(
    session: SessionDep,
    user_id: CurrentUserId,
    limit: int = Query(default=50, ge=1, le=200),
    offset: PageOffset = 0,
    include_archived: bool = False,
) -> Page[ConversationOut]:
    return await conversation_page(
        session, user_id, limit=limit, offset=offset, include_archived=include_archived
    )


async def conversation_page(
    session: AsyncSession, user_id: str, *, limit: int, offset: int, include_archived: bool = False
) -> Page[ConversationOut]:
    """One page of the caller's conversations (also part of ``GET /api/bootstrap``)."""
    rows = await ChatService(session).list_conversations(
        user_id, limit=limit + 1, offset=offset, include_archived=include_archived
    )
    items = [ConversationOut.model_validate(row) for row in rows]
    return Page[ConversationOut].from_rows(items, limit, offset)


@router.post("", response_model=ConversationOut, status_code=201)
async def create_conversation(
    session: SessionDep,
    user_id: CurrentUserId,
    state: StateDep,
    body: ConversationCreate | None = None,
) -> ConversationOut:
    body = body or ConversationCreate()
    model = _canonical_model(state, body.model)
    collection_ids = await DocumentService(session, state.settings).resolve_collections(
        user_id, body.collection_ids
    )
    conversation = await ChatService(session).create_conversation(
        user_id, body.title, model, collection_ids
    )
    await session.commit()
    return ConversationOut.model_validate(conversation)


@router.get("/{conversation_id}", response_model=ConversationDetail)
async def get_conversation(
    conversation_id: str, session: SessionDep, user_id: CurrentUserId
) -> ConversationDetail:
    service = ChatService(session)
    conversation = await service.get_conversation(user_id, conversation_id)
    messages = await service.list_messages(conversation)
    return ConversationDetail.model_validate(
        {
            **ConversationOut.model_validate(conversation).model_dump(),
            "messages": [message_out(message) for message in messages],
        }
    )


@router.patch("/{conversation_id}", response_model=ConversationOut)
async def update_conversation(
    conversation_id: str,
    body: ConversationUpdate,
    session: SessionDep,
    user_id: CurrentUserId,
    state: StateDep,
) -> ConversationOut:
    if body.model is not None:
        body.model = _canonical_model(state, body.model)
    if body.collection_ids is not None:
        body.collection_ids = await DocumentService(session, state.settings).resolve_collections(
            user_id, body.collection_ids
        )
    conversation = await ChatService(session).update_conversation(user_id, conversation_id, body)
    await session.commit()
    return ConversationOut.model_validate(conversation)


@router.delete("/{conversation_id}", status_code=204)
async def delete_conversation(
    conversation_id: str, session: SessionDep, user_id: CurrentUserId, state: StateDep
) -> Response:
    if state.generations.is_running(conversation_id):
        state.generations.stop(conversation_id)
    await ChatService(session).delete_conversation(user_id, conversation_id)
    await session.commit()
    return Response(status_code=204)


@router.post("/{conversation_id}/stop", status_code=202)
async def stop_generation(
    conversation_id: str, session: SessionDep, user_id: CurrentUserId, state: StateDep
) -> dict[str, bool]:
    await ChatService(session).get_conversation(user_id, conversation_id)
    return {"stopped": state.generations.stop(conversation_id)}


@router.post(
    "/{conversation_id}/messages",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def post_message(
    conversation_id: str,
    body: MessageCreate,
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    state: StateDep,
) -> StreamingResponse:
    """Store the user's message, then stream the reply as Server-Sent Events."""
    conversation = await ChatService(session).get_conversation(principal.user_id, conversation_id)
    if state.generations.is_running(conversation.id):
        raise ConflictError("A reply is already being generated in this conversation")
    try:
        entry = state.models.resolve(conversation.model)
    except UnknownModelError as exc:
        raise BadRequestError(
            f"{exc} any more; choose another model for this conversation", param="model"
        ) from exc
    turn = await state.turns.prepare(
        session,
        TurnRequest(
            caller=principal,
            model=entry,
            messages=[ChatMessage("user", body.content)],
            door="ui",
            ip=state.limits.client_ip(
                request.client.host if request.client else None, request.headers
            ),
            conversation=conversation,
            parent_id=body.parent_id,
            audit_target=conversation.id,
        ),
    )
    await session.commit()
    run = state.generations.start(turn)
    assert turn.user_message is not None
    opening = {
        "user_message": message_out(turn.user_message),
        "assistant_message_id": run.message_id,
        "conversation": ConversationOut.model_validate(conversation).model_dump(mode="json"),
    }

    async def events() -> AsyncIterator[bytes]:
        event_id = 0
        try:
            yield format_event("message", opening, event_id)
            async for event in run.stream():
                event_id += 1
                yield format_event(event.name, event.data, event_id)
        finally:
            # Reached early only when the client went away: stop the model and let the
            # run store what it has as a partial message.
            run.stop()

    return StreamingResponse(events(), media_type="text/event-stream", headers=SSE_HEADERS)
