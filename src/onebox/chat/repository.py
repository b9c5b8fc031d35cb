"""All SQL for conversations and messages."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import delete, select, update
from sqlalchemy.ext.asyncio import AsyncSession
from sqlalchemy.orm.attributes import set_committed_value

from onebox.chat.models import Conversation, Message, MessageFeedback


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

    async def add(self, row: Conversation | Message | MessageFeedback) -> None:
        self.session.add(row)
        await self.session.flush()

    async def delete_conversation(self, conversation: Conversation) -> None:
        # Explicit delete keeps SQLite and PostgreSQL identical even if a connection was
        # opened without foreign-key enforcement.
        message_ids = select(Message.id).where(Message.conversation_id == conversation.id)
        await self.session.execute(
            delete(MessageFeedback).where(MessageFeedback.message_id.in_(message_ids))
        )
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

    async def message_links(self, conversation_id: str) -> list[tuple[str, str | None]]:
        """Every message's ``(id, parent_id)``, oldest first: the shape of the tree."""
        result = await self.session.execute(
            select(Message.id, Message.parent_id)
            .where(Message.conversation_id == conversation_id)
            .order_by(Message.created_at, Message.id)
        )
        return [(row[0], row[1]) for row in result.all()]

    async def messages_by_id(self, conversation_id: str, ids: Sequence[str]) -> dict[str, Message]:
        if not ids:
            return {}
        result = await self.session.execute(
            select(Message).where(Message.conversation_id == conversation_id, Message.id.in_(ids))
        )
        return {message.id: message for message in result.scalars().all()}

    async def save_branch_choices(
        self, conversation: Conversation, choices: dict[str, str]
    ) -> None:
        """Stores the branch shown without touching ``updated_at`` (switching a branch does
        not move the conversation up the sidebar)."""
        await self.session.execute(
            update(Conversation)
            .where(Conversation.id == conversation.id)
            .values(branch_choices=choices, updated_at=Conversation.updated_at)
            .execution_options(synchronize_session=False)
        )
        set_committed_value(conversation, "branch_choices", choices)

    async def feedback_for(
        self, user_id: str, message_ids: Sequence[str]
    ) -> dict[str, MessageFeedback]:
        if not message_ids:
            return {}
        result = await self.session.execute(
            select(MessageFeedback).where(
                MessageFeedback.user_id == user_id, MessageFeedback.message_id.in_(message_ids)
            )
        )
        return {row.message_id: row for row in result.scalars().all()}

    async def delete_feedback(self, user_id: str, message_id: str) -> bool:
        result = await self.session.execute(
            delete(MessageFeedback).where(
                MessageFeedback.user_id == user_id, MessageFeedback.message_id == message_id
            )
        )
        return bool(getattr(result, "rowcount", 0))
