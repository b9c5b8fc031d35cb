"""Share links: made and revoked by the conversation's owner, opened by anyone with the
token. What a link shows is the branch that ended at the newest message when it was made
(messages are never edited in place: edits and regenerations add siblings), read live, so
deleting the conversation or revoking the link ends it at once. Flushes, never commits."""

from __future__ import annotations

import hashlib
import re
import secrets
from collections.abc import Sequence
from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncSession

from onebox.chat.export import active_branch
from onebox.chat.models import Conversation, Message
from onebox.chat.repository import ChatRepository
from onebox.chat.service import ChatService
from onebox.core.db import utcnow
from onebox.core.errors import BadRequestError, ConflictError, NotFoundError
from onebox.sharing.models import ConversationShare
from onebox.sharing.repository import ShareRepository

TOKEN_BYTES = 32  # 256 random bits: unguessable
TOKEN_SHAPE = re.compile(r"^[A-Za-z0-9_-]{40,64}$")
PREFIX_CHARS = 8
MAX_ACTIVE_SHARES = 20


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


@dataclass(frozen=True, slots=True)
class SharedView:
    conversation: Conversation
    messages: list[Message]


class ShareService:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session
        self.repository = ShareRepository(session)
        self.chat = ChatService(session)

    async def create(
        self, owner_id: str, conversation_id: str, message_id: str | None
    ) -> tuple[ConversationShare, str]:
        conversation = await self.chat.get_conversation(owner_id, conversation_id)
        repository = ChatRepository(self.session)
        if message_id is not None:
            leaf = await repository.get_message(conversation.id, message_id)
            if leaf is None:
                raise NotFoundError(
                    f"Message {message_id!r} not found in this conversation", param="message_id"
                )
        else:
            leaf = await repository.latest_message(conversation.id)
            if leaf is None:
                raise BadRequestError("This conversation has no messages to share yet")
        if await self.repository.count_active(conversation.id) >= MAX_ACTIVE_SHARES:
            raise ConflictError(
                f"At most {MAX_ACTIVE_SHARES} active links per conversation; revoke one first"
            )
        token = secrets.token_urlsafe(TOKEN_BYTES)
        share = ConversationShare(
            token_hash=token_hash(token),
            prefix=token[:PREFIX_CHARS],
            conversation_id=conversation.id,
            owner_id=owner_id,
            message_id=leaf.id,
        )
        await self.repository.add(share)
        return share, token

    async def list(self, owner_id: str, conversation_id: str) -> Sequence[ConversationShare]:
        conversation = await self.chat.get_conversation(owner_id, conversation_id)
        return await self.repository.active_for(owner_id, conversation.id)

    async def revoke(self, owner_id: str, conversation_id: str, share_id: str) -> None:
        share = await self.repository.get(owner_id, conversation_id, share_id)
        if share is None:
            raise NotFoundError(f"Share {share_id!r} not found")
        if share.revoked_at is None:
            share.revoked_at = utcnow()
            await self.session.flush()

    async def open(self, token: str) -> SharedView | None:
        """What the link shows, or ``None`` for a malformed, unknown or revoked token."""
        if not TOKEN_SHAPE.fullmatch(token):
            return None
        share = await self.repository.by_token_hash(token_hash(token))
        if share is None:
            return None
        conversation = await ChatRepository(self.session).get_conversation(
            share.owner_id, share.conversation_id
        )
        if conversation is None:
            return None
        messages = await self.chat.list_messages(conversation)
        branch = active_branch(messages, share.message_id)
        return SharedView(conversation, [m for m in branch if m.role in ("user", "assistant")])
