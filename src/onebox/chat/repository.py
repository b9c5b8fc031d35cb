"""All SQL for conversations and messages."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select
from sqlalchemy.ext.asyncio import AsyncSession

from onebox.chat.models import Conversation, Message


class ChatRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get_conversation(self, owner_id: str, conversation_id: str) -> Conversation | None:
        result = await self.session.execute(
            select(Conversation).where(
                Conversation.id == conversation_id,
                Conversation.owner_id == owner_id,
                Conversation.widget_key_id.is_(None),  # widget conversations are read per key
            )
        )
        return result.scalar_one_or_none()

    async def list_conversations(
        self,
        owner_id: str,
        *,
        limit: int,
        offset: int,
        include_archived: bool,
        archived_only: bool = False,
    ) -> Sequence[Conversation]:
        query = select(Conversation).where(
            Conversation.owner_id == owner_id, Conversation.widget_key_id.is_(None)
        )
        if archived_only:
            query = query.where(Conversation.archived.is_(True))
        elif not include_archived:
            query = query.where(Conversation.archived.is_(False))
        query = query.order_by(
            Conversation.pinned.desc(), Conversation.updated_at.desc(), Conversation.id.desc()
        )
        result = await self.session.execute(query.limit(limit).offset(offset))
        return result.scalars().all()

    async def add(self, row: Conversation | Message) -> None:
        self.session.add(row)
        await self.session.flush()

    async def delete_conversation(self, conversation: Conversation) -> None:
        # Explicit delete keeps SQLite and PostgreSQL identical even if a connection was
        # opened without foreign-key enforcement.
        await self.session.execute(
            delete(Message).where(Message.conversation_id == conversation.id)
        )
        await self.session.delete(conversation)
        await self.session.flush()

    async def list_messages(self, conversation_id: str) -> Sequence[Message]:
        result = await self.session.execute(
            select(Message)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.created_at, Message.id)
        )
        return result.scalars().all()

    async def latest_message(self, conversation_id: str) -> Message | None:
        result = await self.session.execute(
            select(Message)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.created_at.desc(), Message.id.desc())
            .limit(1)
        )
        return result.scalar_one_or_none()

    async def get_message(self, conversation_id: str, message_id: str) -> Message | None:
        result = await self.session.execute(
            select(Message).where(
                Message.id == message_id, Message.conversation_id == conversation_id
            )
        )
        return result.scalar_one_or_none()
