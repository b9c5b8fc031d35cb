"""HTTP for moving a conversation in and out: export as Markdown or JSON, import JSON."""

from __future__ import annotations

from typing import Literal

from fastapi import APIRouter, Query, Response

from onebox.chat.export import as_json, as_markdown, export_filename
from onebox.chat.importing import ConversationFile, import_conversation
from onebox.chat.schemas import ConversationOut
from onebox.chat.service import ChatService
from onebox.deps import CurrentUserId, SessionDep, StateDep
from onebox.documents.service import DocumentService
from onebox.llm.registry import UnknownModelError

router = APIRouter(prefix="/api/conversations", tags=["chat"])


@router.get(
    "/{conversation_id}/export",
    responses={200: {"content": {"text/markdown": {}, "application/json": {}}}},
)
async def export_conversation(
    conversation_id: str,
    session: SessionDep,
    user_id: CurrentUserId,
    export_format: Literal["md", "json"] = Query(default="json", alias="format"),
) -> Response:
    """The conversation as a file: ``json`` holds every branch (each message names its
    parent) and reads back with ``POST /api/conversations/import``; ``md`` is the active
    branch with its sources, with HTML and unsafe links made inert."""
    service = ChatService(session)
    conversation = await service.get_conversation(user_id, conversation_id)
    messages = await service.list_messages(conversation)
    if export_format == "md":
        content, media_type = as_markdown(conversation, messages), "text/markdown"
    else:
        content, media_type = as_json(conversation, messages), "application/json"
    filename = export_filename(conversation, export_format)
    return Response(
        content,
        media_type=f"{media_type}; charset=utf-8",
        headers={
            "Content-Disposition": f'attachment; filename="{filename}"',
            "Cache-Control": "no-store",
        },
    )


@router.post("/import", response_model=ConversationOut, status_code=201)
async def import_conversation_file(
    body: ConversationFile, session: SessionDep, user_id: CurrentUserId, state: StateDep
) -> ConversationOut:
    """A new conversation from an exported JSON file. A model this server does not serve
    becomes the default one; collections the caller cannot read are left out."""
    model = None
    if body.conversation.model:
        try:
            model = state.models.resolve(body.conversation.model).name
        except UnknownModelError:
            model = None
    collection_ids = await DocumentService(session, state.settings).readable_collection_ids(
        user_id, body.conversation.collection_ids
    )
    conversation = await import_conversation(
        session, user_id, body, model=model, collection_ids=collection_ids
    )
    await session.commit()
    return ConversationOut.model_validate(conversation)
