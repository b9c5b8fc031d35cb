"""All SQL for share links."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy import func, select
from sqlalchemy.ext.asyncio import AsyncSession

from onebox.sharing.models import ConversationShare


class ShareRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def add(self, share: ConversationShare) -> None:
        self.session.add(share)
        await self.session.flush()

    async def active_for(self, owner_id: str, conversation_id: str) -> Sequence[ConversationShare]:
        result = await self.session.execute(
            select(ConversationShare)
            .where(
                ConversationShare.owner_id == owner_id,
                ConversationShare.conversation_id == conversation_id,
                ConversationShare.revoked_at.is_(None),
            )
            .order_by(ConversationShare.created_at.desc(), ConversationShare.id)
        )
        return result.scalars().all()

    async def count_active(self, conversation_id: str) -> int:
        result = await self.session.execute(
            select(func.count())
            .select_from(ConversationShare)
            .where(
                ConversationShare.conversation_id == conversation_id,
                ConversationShare.revoked_at.is_(None),
            )
        )
        return int(result.scalar_one())

    async def get(
        self, owner_id: str, conversation_id: str, share_id: str
    ) -> ConversationShare | None:
        result = await self.session.execute(
            select(ConversationShare).where(
                ConversationShare.id == share_id,
                ConversationShare.owner_id == owner_id,
                ConversationShare.conversation_id == conversation_id,
            )
        )
        return result.scalar_one_or_none()

    async def by_token_hash(self, token_hash: str) -> ConversationShare | None:
        result = await self.session.execute(
            select(ConversationShare).where(
                ConversationShare.token_hash == token_hash,
                ConversationShare.revoked_at.is_(None),
            )
        )
        return result.scalar_one_or_none()
