"""HTTP for conversations and messages. Logic lives in service.py."""

from __future__ import annotations

from collections.abc import AsyncIterator

from fastapi import APIRouter, Query, Request, Response
from fastapi.responses import StreamingResponse

from onebox.chat.generation import default_params, message_out
from onebox.chat.schemas import (
    ConversationCreate,
    ConversationDetail,
    ConversationOut,
    ConversationPage,
    ConversationUpdate,
    MessageCreate,
)
from onebox.chat.service import ChatService
from onebox.core.deps import CurrentPrincipal, CurrentUserId, SessionDep, StateDep
from onebox.core.errors import APIError, BadRequestError, ConflictError
from onebox.core.sse import SSE_HEADERS, format_event
from onebox.core.state import AppState
from onebox.documents.answering import retrieval_query, with_sources
from onebox.documents.retrieval import Source
from onebox.documents.service import DocumentService
from onebox.llm.base import ContextWindowExceededError
from onebox.llm.registry import UnknownModelError
from onebox.users.service import record_audit

router = APIRouter(prefix="/api/conversations", tags=["chat"])


def _canonical_model(state: AppState, name: str | None) -> str | None:
    if name is None:
        return None
    try:
        return state.models.resolve(name).name
    except UnknownModelError as exc:
        raise BadRequestError(str(exc), param="model") from exc


@router.get("", response_model=ConversationPage)
async def list_conversations(
    session: SessionDep,
    user_id: CurrentUserId,
    limit: int = Query(default=50, ge=1, le=200),
    offset: int = Query(default=0, ge=0),
    include_archived: bool = False,
) -> ConversationPage:
    rows = await ChatService(session).list_conversations(
        user_id, limit=limit + 1, offset=offset, include_archived=include_archived
    )
    items = [ConversationOut.model_validate(row) for row in rows[:limit]]
    has_more = len(rows) > limit
    return ConversationPage(
        items=items, limit=limit, offset=offset, next_offset=offset + limit if has_more else None
    )


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
    settings = state.settings
    user_id = principal.user_id
    service = ChatService(session)
    conversation = await service.get_conversation(user_id, conversation_id)
    if state.generations.is_running(conversation.id):
        raise ConflictError("A reply is already being generated in this conversation")
    ip = state.limits.client_ip(request.client.host if request.client else None, request.headers)
    try:
        verdict = state.guard.check_input(body.content)
    except APIError as blocked:
        await record_audit(
            state.sessionmaker, "input_blocked", actor_id=user_id, outcome="blocked",
            target=conversation.id, ip=ip, details=blocked.message,
        )  # fmt: skip
        raise
    user_message = await service.add_user_message(
        conversation, verdict.text, parent_id=body.parent_id, max_chars=settings.max_message_chars
    )
    try:
        entry = state.models.resolve(conversation.model)
    except UnknownModelError as exc:
        raise BadRequestError(
            f"{exc} any more; choose another model for this conversation", param="model"
        ) from exc
    params = default_params(entry, settings)
    history = await service.history_for(conversation, user_message, settings.system_prompt)
    sources: list[Source] = []
    readable = await DocumentService(session, settings).readable_collection_ids(
        user_id,
        conversation.collection_ids or [],
        allowed=principal.key.collections if principal.key else None,
    )
    if readable:
        sources = await state.retriever().retrieve(session, retrieval_query(history), readable)
        history = with_sources(history, sources)
    history, prompt_secret = state.guard.protect_system_prompt(history)
    try:
        prompt = state.generations.prepare(entry, history, params)
    except ContextWindowExceededError as exc:
        raise BadRequestError(str(exc), param="content") from exc
    admission = await state.limits.admit(
        principal, ip, estimated_tokens=entry.provider.count_tokens(prompt)
    )
    await session.commit()

    run = state.generations.start(
        model=entry,
        conversation_id=conversation.id,
        parent_id=user_message.id,
        messages=prompt,
        params=params,
        user_id=user_id,
        admission=admission,
        prompt_secret=prompt_secret,
        sources=sources,
        retrieval_used=bool(readable),
    )
    opening = {
        "user_message": message_out(user_message),
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
