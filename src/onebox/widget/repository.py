"""All SQL for the widget: its settings, its conversations, the links of URL documents."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from onebox.chat.models import Conversation, Message, Role
from onebox.documents.models import Document
from onebox.widget.models import WidgetSettings


class WidgetRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def settings(self, key_id: str) -> WidgetSettings | None:
        return await self.session.get(WidgetSettings, key_id)

    async def add(self, row: WidgetSettings | Conversation) -> None:
        self.session.add(row)
        await self.session.flush()

    async def visitor_conversation(
        self, key_id: str, visitor_id: str, conversation_id: str
    ) -> Conversation | None:
        result = await self.session.execute(
            select(Conversation).where(
                Conversation.id == conversation_id,
                Conversation.widget_key_id == key_id,
                Conversation.visitor_id == visitor_id,
            )
        )
        return result.scalar_one_or_none()

    async def count_user_messages(self, conversation_id: str) -> int:
        result = await self.session.execute(
            select(func.count())
            .select_from(Message)
            .where(Message.conversation_id == conversation_id, Message.role == Role.USER)
        )
        return int(result.scalar_one())

    async def key_conversations(
        self, owner_id: str, key_id: str, *, limit: int, offset: int
    ) -> Sequence[tuple[Conversation, int]]:
        """The key's conversations, newest first, each with its message count."""
        counts = (
            select(Message.conversation_id, func.count().label("messages"))
            .group_by(Message.conversation_id)
            .subquery()
        )
        result = await self.session.execute(
            select(Conversation, func.coalesce(counts.c.messages, 0))
            .outerjoin(counts, counts.c.conversation_id == Conversation.id)
            .where(Conversation.owner_id == owner_id, Conversation.widget_key_id == key_id)
            .order_by(Conversation.updated_at.desc(), Conversation.id.desc())
            .limit(limit)
            .offset(offset)
        )
        return [(conversation, int(count)) for conversation, count in result.all()]

    async def key_conversation(
        self, owner_id: str, key_id: str, conversation_id: str
    ) -> Conversation | None:
        result = await self.session.execute(
            select(Conversation).where(
                Conversation.id == conversation_id,
                Conversation.owner_id == owner_id,
                Conversation.widget_key_id == key_id,
            )
        )
        return result.scalar_one_or_none()

    async def messages_of(self, conversation_ids: Sequence[str]) -> dict[str, list[Message]]:
        """Messages of several conversations, oldest first, in one query."""
        found: dict[str, list[Message]] = {cid: [] for cid in conversation_ids}
        if not conversation_ids:
            return found
        result = await self.session.execute(
            select(Message)
            .where(Message.conversation_id.in_(list(conversation_ids)))
            .order_by(Message.created_at, Message.id)
        )
        for message in result.scalars():
            found[message.conversation_id].append(message)
        return found

    async def document_links(self, owner_id: str, document_ids: Sequence[str]) -> dict[str, str]:
        """The address of each of these documents that was fetched from the web."""
        if not document_ids:
            return {}
        result = await self.session.execute(
            select(Document.id, Document.source_uri).where(
                Document.id.in_(list(set(document_ids))),
                Document.owner_id == owner_id,
                Document.source == "url",
            )
        )
        return {document_id: uri for document_id, uri in result.all() if uri}
