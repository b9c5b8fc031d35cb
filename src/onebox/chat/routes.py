"""HTTP for conversations and messages. Logic lives in service.py."""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator

from fastapi import APIRouter, Header, Query, Request, Response
from fastapi.responses import StreamingResponse
from sqlalchemy.ext.asyncio import AsyncSession

from onebox.chat.events import LoggedEvent
from onebox.chat.generation import message_out
from onebox.chat.models import Conversation, Message
from onebox.chat.schemas import (
    BranchChoice,
    ConversationCreate,
    ConversationDetail,
    ConversationOut,
    ConversationUpdate,
    FeedbackIn,
    FeedbackOut,
    Generating,
    MessageCreate,
    MessagePage,
    SearchHitOut,
    SearchResults,
)
from onebox.chat.service import ChatService
from onebox.chat.turn import TurnRequest
from onebox.core.errors import BadRequestError, ConflictError, NotFoundError
from onebox.core.inputs import PageOffset
from onebox.core.pagination import Page
from onebox.core.sse import SSE_HEADERS, format_event
from onebox.deps import CurrentPrincipal, CurrentUserId, SessionDep, StateDep
from onebox.documents.service import DocumentService
from onebox.llm.base import ChatMessage
from onebox.llm.registry import UnknownModelError
from onebox.state import AppState
from onebox.users.auth import Principal

router = APIRouter(prefix="/api/conversations", tags=["chat"])

PAGE_SIZE = 50  # messages per page of the branch shown


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
    archived: bool = Query(default=False, description="Only the archived conversations"),
) -> Page[ConversationOut]:
    return await conversation_page(
        session, user_id, limit=limit, offset=offset, include_archived=include_archived,
        archived_only=archived,
    )  # fmt: skip


async def conversation_page(
    session: AsyncSession,
    user_id: str,
    *,
    limit: int,
    offset: int,
    include_archived: bool = False,
    archived_only: bool = False,
) -> Page[ConversationOut]:
    """One page of the caller's conversations (also part of ``GET /api/bootstrap``)."""
    rows = await ChatService(session).list_conversations(
        user_id, limit=limit + 1, offset=offset, include_archived=include_archived,
        archived_only=archived_only,
    )  # fmt: skip
    items = [ConversationOut.model_validate(row) for row in rows]
    return Page[ConversationOut].from_rows(items, limit, offset)


@router.get("/search", response_model=SearchResults)
async def search_conversations(
    session: SessionDep,
    user_id: CurrentUserId,
    q: str = Query(min_length=1, description='Words, "phrases", -excluded, or'),
    limit: int = Query(default=20, ge=1, le=50),
) -> SearchResults:
    """The caller's conversations whose title or messages match ``q`` (archived ones too)."""
    hits = await ChatService(session).search(user_id, q, limit=limit)
    return SearchResults(hits=[SearchHitOut.model_validate(hit) for hit in hits])


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
        user_id,
        body.title,
        model,
        collection_ids,
        system_prompt=body.system_prompt,
        temperature=body.temperature,
    )
    await session.commit()
    return ConversationOut.model_validate(conversation)


@router.get("/{conversation_id}", response_model=ConversationDetail)
async def get_conversation(
    conversation_id: str, session: SessionDep, user_id: CurrentUserId, state: StateDep
) -> ConversationDetail:
    """The conversation with the newest page of the branch shown."""
    # Asked before anything is read: a reply is saved before it stops being in flight, so
    # "not generating" always comes with the saved reply, never an earlier checkpoint of it
    # (read the other way round, a reply ending in between showed as partial and idle).
    running = await state.generations.in_flight(conversation_id)
    service = ChatService(session)
    conversation = await service.get_conversation(user_id, conversation_id)
    page = await service.path_page(user_id, conversation, before=None, limit=PAGE_SIZE)
    return ConversationDetail(
        **ConversationOut.model_validate(conversation).model_dump(),
        messages=page.items,
        has_more=page.has_more,
        generating=Generating(message_id=running.message_id, parent_id=running.parent_id)
        if running and running.message_id
        else None,
    )


@router.get("/{conversation_id}/messages", response_model=MessagePage)
async def list_messages(
    conversation_id: str,
    session: SessionDep,
    user_id: CurrentUserId,
    before: str | None = Query(
        default=None, max_length=36, description="A message id: the page before it"
    ),
    limit: int = Query(default=PAGE_SIZE, ge=1, le=200),
) -> MessagePage:
    """A page of the branch shown, newest pages first; each message lists its siblings."""
    service = ChatService(session)
    conversation = await service.get_conversation(user_id, conversation_id)
    return await service.path_page(user_id, conversation, before=before, limit=limit)


@router.put("/{conversation_id}/branch", response_model=MessagePage)
async def choose_branch(
    conversation_id: str, body: BranchChoice, session: SessionDep, user_id: CurrentUserId
) -> MessagePage:
    """Shows the branch through ``message_id`` (remembered); answers its newest page."""
    service = ChatService(session)
    conversation = await service.get_conversation(user_id, conversation_id)
    await service.choose_branch(conversation, body.message_id)
    page = await service.path_page(user_id, conversation, before=None, limit=PAGE_SIZE)
    await session.commit()
    return page


@router.put("/{conversation_id}/messages/{message_id}/feedback", response_model=FeedbackOut)
async def set_feedback(
    conversation_id: str,
    message_id: str,
    body: FeedbackIn,
    session: SessionDep,
    user_id: CurrentUserId,
) -> FeedbackOut:
    service = ChatService(session)
    conversation = await service.get_conversation(user_id, conversation_id)
    feedback = await service.set_feedback(user_id, conversation, message_id, body)
    await session.commit()
    return feedback


@router.delete("/{conversation_id}/messages/{message_id}/feedback", status_code=204)
async def clear_feedback(
    conversation_id: str, message_id: str, session: SessionDep, user_id: CurrentUserId
) -> Response:
    service = ChatService(session)
    conversation = await service.get_conversation(user_id, conversation_id)
    await service.clear_feedback(user_id, conversation, message_id)
    await session.commit()
    return Response(status_code=204)


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
    await ChatService(session).get_conversation(user_id, conversation_id)
    await state.generations.stop(conversation_id)
    await ChatService(session).delete_conversation(user_id, conversation_id)
    await session.commit()
    return Response(status_code=204)


@router.post("/{conversation_id}/stop", status_code=202)
async def stop_generation(
    conversation_id: str, session: SessionDep, user_id: CurrentUserId, state: StateDep
) -> dict[str, bool]:
    await ChatService(session).get_conversation(user_id, conversation_id)
    return {"stopped": await state.generations.stop(conversation_id)}


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
    """Store the user's message, then stream the reply as Server-Sent Events. With
    ``edit_of`` the message is a new version of an earlier one (a new branch)."""
    conversation = await ChatService(session).get_conversation(principal.user_id, conversation_id)
    return await _reply_stream(
        request, session, principal, state, conversation,
        messages=[ChatMessage("user", body.content)],
        parent_id=body.parent_id, edit_of=body.edit_of,
    )  # fmt: skip


@router.post(
    "/{conversation_id}/messages/{message_id}/regenerate",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def regenerate(
    conversation_id: str,
    message_id: str,
    request: Request,
    session: SessionDep,
    principal: CurrentPrincipal,
    state: StateDep,
) -> StreamingResponse:
    """A new reply to the user message that reply ``message_id`` answered (or to user
    message ``message_id``), stored as a sibling and shown; streamed like a new message."""
    conversation = await ChatService(session).get_conversation(principal.user_id, conversation_id)
    return await _reply_stream(
        request, session, principal, state, conversation, messages=[], reuse=message_id
    )


async def _reply_stream(
    request: Request,
    session: SessionDep,
    principal: Principal,
    state: AppState,
    conversation: Conversation,
    *,
    messages: list[ChatMessage],
    parent_id: str | None = None,
    edit_of: str | None = None,
    reuse: str | None = None,
) -> StreamingResponse:
    # Read now: a failed flush below expires the conversation, and reading it then raises.
    claimed = conversation.id
    if not await state.generations.claim(claimed):
        raise ConflictError("A reply is already being generated in this conversation")
    try:
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
                messages=messages,
                door="ui",
                ip=state.limits.client_ip(
                    request.client.host if request.client else None, request.headers
                ),
                conversation=conversation,
                parent_id=parent_id,
                edit_of=edit_of,
                reuse_message_id=reuse,
                audit_target=conversation.id,
            ),
        )
        await session.commit()
    except BaseException:
        await asyncio.shield(state.generations.release(claimed))
        raise
    assert turn.user_message is not None
    opening = {
        "user_message": message_out(turn.user_message),
        "assistant_message_id": turn.message_id,
        "conversation": ConversationOut.model_validate(conversation).model_dump(mode="json"),
    }
    run = await state.generations.start(turn, opening)
    # The reply outlives this response: a client that goes away reattaches with
    # GET .../messages/{id}/events; only Stop or the time limit ends it early.
    return _event_stream(run.follow(0))


@router.get(
    "/{conversation_id}/messages/{message_id}/events",
    response_class=StreamingResponse,
    responses={200: {"content": {"text/event-stream": {}}}},
)
async def follow_reply(
    conversation_id: str,
    message_id: str,
    session: SessionDep,
    user_id: CurrentUserId,
    state: StateDep,
    after: int | None = Query(
        default=None, ge=0, description="Replay the events after this id (as Last-Event-ID)"
    ),
    last_event_id: str | None = Header(default=None, alias="Last-Event-ID"),
) -> StreamingResponse:
    """A reply's events: those after ``Last-Event-ID`` (or ``?after=``) first, then live ones
    until it ends. A reply that has ended gives its final event, the stored message."""
    conversation = await ChatService(session).get_conversation(user_id, conversation_id)
    if last_event_id is not None and last_event_id.strip():
        try:
            after = int(last_event_id)
        except ValueError:
            raise BadRequestError(
                "Last-Event-ID must be an event id from this stream", param="Last-Event-ID"
            ) from None
        if after < 0:
            raise BadRequestError("Last-Event-ID must not be negative", param="Last-Event-ID")
    running = await state.generations.in_flight(conversation.id)
    if running is None or running.message_id != message_id:
        message = await ChatService(session).get_message(conversation, message_id)
        if message is None or message.role != "assistant":
            raise NotFoundError(
                f"Reply {message_id!r} not found in this conversation", param="message_id"
            )

    async def stored() -> Message | None:
        async with state.sessionmaker() as own:
            return await ChatService(own).get_message(conversation, message_id)

    events = state.generations.follow(conversation.id, message_id, after or 0, stored)
    return _event_stream(events)


def _event_stream(events: AsyncIterator[LoggedEvent | None]) -> StreamingResponse:
    async def frames() -> AsyncIterator[bytes]:
        async for event in events:
            if event is None:
                yield b": keep-alive\n\n"
            else:
                yield format_event(event.name, event.data, event.id)

    return StreamingResponse(frames(), media_type="text/event-stream", headers=SSE_HEADERS)
