"""Conversation logic. Services flush but never commit: the request or task owns the
transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from onebox.chat.models import Conversation, Message, MessageStatus, Role
from onebox.chat.repository import ChatRepository
from onebox.chat.schemas import ConversationUpdate
from onebox.chat.search import ConversationSearch, SearchHit, parse_query
from onebox.chat.titles import title_from
from onebox.core.db import utcnow
from onebox.core.errors import BadRequestError, NotFoundError
from onebox.guard import clean_text
from onebox.llm.base import ChatMessage


def clean_system_prompt(text: str | None) -> str | None:
    """The owner's system prompt as stored: control and invisible characters removed (as
    for every message), ``None`` when nothing is left."""
    cleaned = clean_text(text or "").strip()
    return cleaned or None


def system_prompt_for(conversation: Conversation, deployment_prompt: str) -> str:
    """The deployment's system prompt, then the conversation's own instructions."""
    own = conversation.system_prompt
    if not own:
        return deployment_prompt
    return f"{deployment_prompt}\n\n{own}" if deployment_prompt else own


class ChatService:
    def __init__(self, session: AsyncSession) -> None:
        self.repository = ChatRepository(session)

    async def create_conversation(
        self,
        owner_id: str,
        title: str = "",
        model: str | None = None,
        collection_ids: list[str] | None = None,
        *,
        system_prompt: str | None = None,
        temperature: float | None = None,
    ) -> Conversation:
        conversation = Conversation(
            owner_id=owner_id,
            title=title.strip(),
            title_source="user" if title.strip() else "auto",
            model=model,
            collection_ids=list(collection_ids or []),
            system_prompt=clean_system_prompt(system_prompt),
            temperature=temperature,
        )
        await self.repository.add(conversation)
        return conversation

    async def list_conversations(
        self,
        owner_id: str,
        *,
        limit: int,
        offset: int,
        include_archived: bool = False,
        archived_only: bool = False,
    ) -> Sequence[Conversation]:
        return await self.repository.list_conversations(
            owner_id, limit=limit, offset=offset, include_archived=include_archived,
            archived_only=archived_only,
        )  # fmt: skip

    async def search(self, owner_id: str, query: str, *, limit: int) -> list[SearchHit]:
        """The owner's conversations whose title or messages match ``query`` (a 400 when it
        has no word to look for)."""
        parsed = parse_query(query)
        return await ConversationSearch(self.repository.session).search(
            owner_id, parsed, limit=limit
        )

    async def get_conversation(self, owner_id: str, conversation_id: str) -> Conversation:
        conversation = await self.repository.get_conversation(owner_id, conversation_id)
        if conversation is None:
            raise NotFoundError(f"Conversation {conversation_id!r} not found")
        return conversation

    async def update_conversation(
        self, owner_id: str, conversation_id: str, update: ConversationUpdate
    ) -> Conversation:
        conversation = await self.get_conversation(owner_id, conversation_id)
        if update.title is not None:
            title = update.title.strip()
            if not title:
                raise BadRequestError("title must not be blank", param="title")
            conversation.title = title
            conversation.title_source = "user"  # the model's title never replaces it
        if update.pinned is not None:
            conversation.pinned = update.pinned
        if update.archived is not None:
            conversation.archived = update.archived
        if update.model is not None:
            conversation.model = update.model
        if update.collection_ids is not None:
            conversation.collection_ids = list(update.collection_ids)
        if "system_prompt" in update.model_fields_set:
            conversation.system_prompt = clean_system_prompt(update.system_prompt)
        if "temperature" in update.model_fields_set:
            conversation.temperature = update.temperature
        conversation.updated_at = utcnow()
        await self.repository.session.flush()
        return conversation

    async def delete_conversation(self, owner_id: str, conversation_id: str) -> None:
        conversation = await self.get_conversation(owner_id, conversation_id)
        await self.repository.delete_conversation(conversation)

    async def get_message(self, conversation: Conversation, message_id: str) -> Message | None:
        return await self.repository.get_message(conversation.id, message_id)

    async def list_messages(self, conversation: Conversation) -> Sequence[Message]:
        return await self.repository.list_messages(conversation.id)

    async def add_user_message(
        self,
        conversation: Conversation,
        content: str,
        *,
        parent_id: str | None,
        max_chars: int,
    ) -> Message:
        text = clean_text(content)
        if not text.strip():
            raise BadRequestError("content must not be empty", param="content")
        if len(text) > max_chars:
            raise BadRequestError(
                f"content is {len(text)} characters; the limit is {max_chars}", param="content"
            )
        if parent_id is not None:
            parent = await self.repository.get_message(conversation.id, parent_id)
            if parent is None:
                raise NotFoundError(
                    f"Message {parent_id!r} not found in this conversation", param="parent_id"
                )
        else:
            latest = await self.repository.latest_message(conversation.id)
            parent_id = latest.id if latest else None
        message = Message(
            conversation_id=conversation.id, parent_id=parent_id, role=Role.USER, content=text
        )
        await self.repository.add(message)
        if not conversation.title:
            conversation.title = title_from(text)
        conversation.updated_at = utcnow()
        await self.repository.session.flush()
        return message

    async def history_for(
        self, conversation: Conversation, leaf: Message, system_prompt: str
    ) -> list[ChatMessage]:
        """The branch that ends at ``leaf``, oldest first, as model input."""
        by_id = {m.id: m for m in await self.repository.list_messages(conversation.id)}
        branch: list[Message] = []
        current: Message | None = leaf
        while current is not None and len(branch) <= len(by_id):
            branch.append(current)
            current = by_id.get(current.parent_id) if current.parent_id else None
        history = [ChatMessage("system", system_prompt)] if system_prompt else []
        for message in reversed(branch):
            if message.role == Role.ASSISTANT and (
                message.status == MessageStatus.ERROR or not message.content
            ):
                continue
            if message.role in (Role.USER, Role.ASSISTANT):
                history.append(ChatMessage(message.role, message.content))  # type: ignore[arg-type]
        return history
