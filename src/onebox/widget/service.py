"""Widget logic: a key's settings, a visitor's turn, the visitor's and the owner's views of
widget conversations. Flushes, never commits.

A visitor's question is one more door into :class:`~onebox.chat.turn.Turns`: the input
guard, retrieval from the key's collections, the canary, the key's limits, the PII filter
and usage all come from the turn. This module only picks what the turn is asked for.
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession

from onebox.chat.models import Conversation, Message
from onebox.chat.turn import Turn, TurnRequest, Turns
from onebox.core.errors import APIError, AppError, NotFoundError
from onebox.core.settings import Settings
from onebox.documents.service import DocumentService
from onebox.llm.base import ChatMessage
from onebox.llm.registry import ModelEntry, ModelRegistry, UnknownModelError
from onebox.ratelimit import Limits, Subject
from onebox.users.auth import KeySnapshot, Principal
from onebox.users.keys import KeyLimits, KeyService
from onebox.users.models import ApiKey, User
from onebox.users.repository import UserRepository
from onebox.widget.models import WidgetSettings
from onebox.widget.repository import WidgetRepository
from onebox.widget.schemas import (
    VisitorConversation,
    VisitorMessage,
    VisitorSource,
    WidgetAppearance,
    WidgetConfigOut,
    WidgetConversationDetail,
    WidgetConversationOut,
    WidgetKeyCreate,
    WidgetMessageIn,
    WidgetPolicy,
    WidgetSettingsOut,
    WidgetSettingsUpdate,
    WidgetTranscriptMessage,
)

logger = logging.getLogger(__name__)


@dataclass(frozen=True)
class Visitor:
    """One anonymous visitor of a site, asking through a widget key."""

    principal: Principal  # the key's owner, acting through the key
    key: KeySnapshot
    visitor_id: str
    ip: str


@dataclass
class VisitorTurn:
    turn: Turn
    conversation: Conversation | None
    links: dict[str, str]  # document id → address, for sources fetched from the web


def settings_out(key_id: str, row: WidgetSettings | None) -> WidgetSettingsOut:
    if row is None:
        return WidgetSettingsOut(
            key_id=key_id, appearance=WidgetAppearance(), policy=WidgetPolicy()
        )
    return WidgetSettingsOut(
        key_id=key_id,
        appearance=WidgetAppearance.model_validate(row.appearance or {}),
        policy=WidgetPolicy(
            retain_conversations=row.retain_conversations,
            max_visitor_messages=row.max_visitor_messages,
            visitor_requests_per_minute=row.visitor_requests_per_minute,
            visitor_tokens_per_minute=row.visitor_tokens_per_minute,
            visitor_tokens_per_day=row.visitor_tokens_per_day,
        ),
    )


def visitor_sources(
    sources: Sequence[dict[str, Any]], links: dict[str, str]
) -> list[VisitorSource]:
    """What a visitor sees of each source: its title, snippet and, for a web page, its
    address; never ids, scores or the text of passages it does not cite."""
    return [
        VisitorSource(
            number=int(source.get("number", 0)),
            title=str(source.get("document", "")),
            page=source.get("page"),
            heading=str(source.get("heading") or ""),
            snippet=str(source.get("snippet") or ""),
            url=links.get(str(source.get("document_id", ""))),
            used=source.get("used"),
        )
        for source in sources
    ]


class WidgetService:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.session = session
        self.settings = settings
        self.repository = WidgetRepository(session)

    # --- settings ---------------------------------------------------------------------

    async def settings_for(self, key_id: str) -> WidgetSettingsOut:
        return settings_out(key_id, await self.repository.settings(key_id))

    async def config(self, key_id: str) -> WidgetConfigOut:
        found = await self.settings_for(key_id)
        return WidgetConfigOut(
            **found.appearance.model_dump(),
            retain_conversations=found.policy.retain_conversations,
            max_visitor_messages=found.policy.max_visitor_messages,
        )

    async def owned_key(self, owner_id: str, key_id: str) -> ApiKey:
        key = await UserRepository(self.session).get_key(key_id, user_id=owner_id)
        if key is None or key.kind != "widget":
            raise NotFoundError(f"Widget key {key_id!r} not found")
        return key

    async def create_key(self, user: User, body: WidgetKeyCreate) -> tuple[ApiKey, str]:
        collections = None
        if body.collections:
            collections = await DocumentService(self.session, self.settings).resolve_collections(
                user.id, body.collections
            )
        key, secret = await KeyService(self.session).create(
            user,
            name=body.name,
            kind="widget",
            expires_at=body.expires_at,
            limits=KeyLimits(
                requests_per_minute=body.requests_per_minute,
                tokens_per_minute=body.tokens_per_minute,
                tokens_per_day=body.tokens_per_day,
                tokens_per_month=body.tokens_per_month,
                concurrent_streams=body.concurrent_streams,
            ),
            models=body.models,
            collections=collections,
            allowed_origins=body.allowed_origins,
        )
        policy = WidgetPolicy.model_validate(
            body.model_dump(include=set(WidgetPolicy.model_fields))
        )
        await self.repository.add(
            WidgetSettings(
                key_id=key.id, appearance=body.appearance.model_dump(), **policy.model_dump()
            )
        )
        return key, secret

    async def update_settings(
        self, owner_id: str, key_id: str, update: WidgetSettingsUpdate
    ) -> WidgetSettingsOut:
        await self.owned_key(owner_id, key_id)
        row = await self.repository.settings(key_id)
        if row is None:
            row = WidgetSettings(
                key_id=key_id, appearance=WidgetAppearance().model_dump(),
                **WidgetPolicy().model_dump(),
            )  # fmt: skip
            await self.repository.add(row)
        if update.appearance is not None:
            row.appearance = update.appearance.model_dump()
        if update.policy is not None:
            for name, value in update.policy.model_dump(exclude_unset=True).items():
                if value is None and name in {"retain_conversations", "max_visitor_messages"}:
                    continue  # these always have a value
                setattr(row, name, value)
        await self.session.flush()
        return settings_out(key_id, row)

    # --- a visitor's turn -------------------------------------------------------------

    async def prepare_turn(
        self, turns: Turns, models: ModelRegistry, visitor: Visitor, body: WidgetMessageIn
    ) -> VisitorTurn:
        """Everything before the answer streams. The new question (and a new conversation)
        sit in the session, flushed, for the route to commit; nothing is stored when the
        key keeps no conversations."""
        policy = (await self.settings_for(visitor.key.id)).policy
        entry = self._model(models, visitor.key)
        collections = await self._collections(visitor)
        conversation = None
        if policy.retain_conversations:
            conversation = await self._conversation(visitor, body, entry, collections)
            asked = await self.repository.count_user_messages(conversation.id)
            messages = [ChatMessage("user", body.content)]
        else:
            asked = sum(1 for message in body.history if message.role == "user")
            system = self.settings.system_prompt
            messages = [
                *([ChatMessage("system", system)] if system else []),
                *(ChatMessage(m.role, m.content) for m in body.history),
                ChatMessage("user", body.content),
            ]
        if asked >= policy.max_visitor_messages:
            raise APIError(
                409,
                f"This conversation has reached its limit of {policy.max_visitor_messages} "
                "questions; start a new one",
                "invalid_request_error",
                code="conversation_limit",
            )
        turn = await turns.prepare(
            self.session,
            TurnRequest(
                caller=visitor.principal,
                model=entry,
                messages=messages,
                door="widget",
                ip=visitor.ip,
                collections=collections,
                conversation=conversation,
                audit_target=f"widget:{visitor.key.id}",
                limits=self._visitor_limits(visitor, policy),
            ),
        )
        links = await self.repository.document_links(
            visitor.principal.user_id, [s.document_id for s in turn.sources or []]
        )
        return VisitorTurn(turn, conversation, links)

    def _model(self, models: ModelRegistry, key: KeySnapshot) -> ModelEntry:
        """The default model, or the first the key allows that this server still serves."""
        if key.models is None:
            return models.default_entry
        for name in key.models:
            try:
                return models.resolve(name)
            except UnknownModelError:
                continue
        raise APIError(
            503, "None of the models this widget may use is available", "service_unavailable",
            code="assistant_offline",
        )  # fmt: skip

    async def _collections(self, visitor: Visitor) -> list[str] | None:
        """The key's collections that still exist (``None``: the key reads none). A deleted
        collection is skipped, not an error every visitor would see."""
        named = visitor.key.collections
        if named is None:
            return None
        documents = DocumentService(self.session, self.settings)
        ids: list[str] = []
        for ref in named:
            try:
                ids += await documents.resolve_collections(visitor.principal.user_id, [ref], named)
            except AppError:
                logger.info("Widget key %s names a missing collection %r", visitor.key.id, ref)
        return ids

    async def _conversation(
        self,
        visitor: Visitor,
        body: WidgetMessageIn,
        entry: ModelEntry,
        collections: list[str] | None,
    ) -> Conversation:
        if body.conversation_id:
            found = await self.repository.visitor_conversation(
                visitor.key.id, visitor.visitor_id, body.conversation_id
            )
            if found is not None:
                return found
        conversation = Conversation(
            owner_id=visitor.principal.user_id,
            title="",
            model=entry.name,
            collection_ids=list(collections or []),
            widget_key_id=visitor.key.id,
            visitor_id=visitor.visitor_id,
        )
        await self.repository.add(conversation)
        return conversation

    @staticmethod
    def _visitor_limits(visitor: Visitor, policy: WidgetPolicy) -> list[tuple[Subject, Limits]]:
        """Per visitor address, per key: one site's visitors cannot use up another's."""
        limits = Limits(
            requests_per_minute=policy.visitor_requests_per_minute,
            tokens_per_minute=policy.visitor_tokens_per_minute,
            tokens_per_day=policy.visitor_tokens_per_day,
        )
        subject = Subject("visitor", f"{visitor.key.id}:{visitor.ip or visitor.visitor_id}")
        return [] if limits.is_unlimited else [(subject, limits)]

    # --- reading conversations --------------------------------------------------------

    async def visitor_conversation(
        self, visitor: Visitor, conversation_id: str
    ) -> VisitorConversation:
        conversation = await self.repository.visitor_conversation(
            visitor.key.id, visitor.visitor_id, conversation_id
        )
        if conversation is None:
            raise NotFoundError("Conversation not found", param="id")
        messages = (await self.repository.messages_of([conversation.id]))[conversation.id]
        links = await self.repository.document_links(
            visitor.principal.user_id,
            [str(s.get("document_id")) for m in messages for s in m.sources or []],
        )
        return VisitorConversation(
            id=conversation.id, messages=[_visitor_message(m, links) for m in messages]
        )


def _visitor_message(message: Message, links: dict[str, str]) -> VisitorMessage:
    return VisitorMessage(
        id=message.id,
        role=message.role,
        content=message.content,
        status=message.status,
        sources=visitor_sources(message.sources or [], links),
        created_at=message.created_at,
    )


class WidgetTranscripts:
    """The owner's read-only view of a widget key's conversations."""

    def __init__(self, session: AsyncSession) -> None:
        self.repository = WidgetRepository(session)

    async def page(
        self, owner_id: str, key_id: str, *, limit: int, offset: int
    ) -> list[WidgetConversationOut]:
        rows = await self.repository.key_conversations(owner_id, key_id, limit=limit, offset=offset)
        return [
            WidgetConversationOut.model_validate(conversation).model_copy(
                update={"message_count": count}
            )
            for conversation, count in rows
        ]

    async def detail(
        self, owner_id: str, key_id: str, conversation_id: str
    ) -> WidgetConversationDetail:
        conversation = await self.repository.key_conversation(owner_id, key_id, conversation_id)
        if conversation is None:
            raise NotFoundError(f"Conversation {conversation_id!r} not found")
        messages = (await self.repository.messages_of([conversation.id]))[conversation.id]
        return _detail(conversation, messages)

    async def everything(
        self, owner_id: str, key_id: str, *, limit: int, offset: int
    ) -> list[WidgetConversationDetail]:
        """Conversations with their messages, for an export: two queries per page."""
        rows = await self.repository.key_conversations(owner_id, key_id, limit=limit, offset=offset)
        messages = await self.repository.messages_of([c.id for c, _ in rows])
        return [_detail(conversation, messages[conversation.id]) for conversation, _ in rows]


def _detail(conversation: Conversation, messages: Sequence[Message]) -> WidgetConversationDetail:
    return WidgetConversationDetail(
        **WidgetConversationOut.model_validate(conversation).model_dump(exclude={"message_count"}),
        message_count=len(messages),
        messages=[WidgetTranscriptMessage.model_validate(m) for m in messages],
    )
