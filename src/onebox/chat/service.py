"""Conversation logic. Services flush but never commit: the request or task owns the
transaction."""

from __future__ import annotations

from collections.abc import Sequence

from sqlalchemy.ext.asyncio import AsyncSession

from onebox.chat.branches import ROOT, MessageTree, page_before
from onebox.chat.models import Conversation, Message, MessageFeedback, MessageStatus, Role
from onebox.chat.repository import ChatRepository
from onebox.chat.schemas import (
    ConversationUpdate,
    FeedbackIn,
    FeedbackOut,
    MessagePage,
    PathMessageOut,
)
from onebox.chat.search import ConversationSearch, SearchHit, parse_query
from onebox.chat.titles import title_from
from onebox.core.db import utcnow
from onebox.core.errors import BadRequestError, ConflictError, NotFoundError
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
        edit_of: str | None = None,
    ) -> Message:
        """Stores a user message under ``parent_id`` (default: the end of the branch shown)
        or, with ``edit_of``, beside that user message; the new message's branch is shown."""
        text = clean_text(content)
        if not text.strip():
            raise BadRequestError("content must not be empty", param="content")
        if len(text) > max_chars:
            raise BadRequestError(
                f"content is {len(text)} characters; the limit is {max_chars}", param="content"
            )
        if edit_of is not None:
            if parent_id is not None:
                raise BadRequestError("give parent_id or edit_of, not both", param="edit_of")
            edited = await self.repository.get_message(conversation.id, edit_of)
            if edited is None or edited.role != Role.USER:
                raise NotFoundError(
                    f"User message {edit_of!r} not found in this conversation", param="edit_of"
                )
            parent_id = edited.parent_id
        elif parent_id is not None:
            parent = await self.repository.get_message(conversation.id, parent_id)
            if parent is None:
                raise NotFoundError(
                    f"Message {parent_id!r} not found in this conversation", param="parent_id"
                )
        else:
            path = (await self.tree(conversation)).active_path(conversation.branch_choices)
            parent_id = path[-1] if path else None
        message = Message(
            conversation_id=conversation.id, parent_id=parent_id, role=Role.USER, content=text
        )
        await self.repository.add(message)
        await self.choose(conversation, parent_id or ROOT, message.id)
        if not conversation.title:
            conversation.title = title_from(text)
        conversation.updated_at = utcnow()
        await self.repository.session.flush()
        return message

    async def regeneration_source(self, conversation: Conversation, message_id: str) -> Message:
        """The user message a new reply answers: the parent of reply ``message_id``, or
        ``message_id`` itself when it is a user message."""
        message = await self.repository.get_message(conversation.id, message_id)
        if message is None:
            raise NotFoundError(f"Message {message_id!r} not found in this conversation")
        if message.role == Role.USER:
            return message
        parent = (
            await self.repository.get_message(conversation.id, message.parent_id)
            if message.parent_id
            else None
        )
        if message.role != Role.ASSISTANT or parent is None or parent.role != Role.USER:
            raise BadRequestError("This message does not answer a user message; nothing to redo")
        return parent

    # -- branches -----------------------------------------------------------------------

    async def tree(self, conversation: Conversation) -> MessageTree:
        return MessageTree(await self.repository.message_links(conversation.id))

    async def choose(self, conversation: Conversation, parent_key: str, child_id: str) -> None:
        """Shows ``child_id`` under ``parent_key`` from now on."""
        choices = dict(conversation.branch_choices or {})
        if choices.get(parent_key) == child_id:
            return
        choices[parent_key] = child_id
        await self.repository.save_branch_choices(conversation, choices)

    async def choose_branch(self, conversation: Conversation, message_id: str) -> None:
        tree = await self.tree(conversation)
        if message_id not in tree:
            raise NotFoundError(
                f"Message {message_id!r} not found in this conversation", param="message_id"
            )
        await self.choose(conversation, tree.parent_key(message_id), message_id)

    async def path_page(
        self, user_id: str, conversation: Conversation, *, before: str | None, limit: int
    ) -> MessagePage:
        """A page of the branch shown, newest first by pages (oldest first within one),
        each message with its siblings and the caller's feedback."""
        tree = await self.tree(conversation)
        path = tree.active_path(conversation.branch_choices)
        if before is not None and before not in path:
            if before not in tree:
                raise NotFoundError(
                    f"Message {before!r} not found in this conversation", param="before"
                )
            raise ConflictError("That message is no longer on the branch shown; reload it")
        ids, has_more = page_before(path, before, limit)
        rows = await self.repository.messages_by_id(conversation.id, ids)
        feedback = await self.repository.feedback_for(user_id, ids)
        items = []
        for message_id in ids:
            item = PathMessageOut.model_validate(rows[message_id])
            item.siblings = tree.siblings(message_id)
            if (given := feedback.get(message_id)) is not None:
                item.feedback = feedback_out(given)
            items.append(item)
        return MessagePage(items=items, has_more=has_more)

    # -- feedback -----------------------------------------------------------------------

    async def _reply(self, conversation: Conversation, message_id: str) -> Message:
        message = await self.repository.get_message(conversation.id, message_id)
        if message is None:
            raise NotFoundError(f"Message {message_id!r} not found in this conversation")
        if message.role != Role.ASSISTANT:
            raise BadRequestError("Only replies take feedback", param="message_id")
        return message

    async def set_feedback(
        self, user_id: str, conversation: Conversation, message_id: str, body: FeedbackIn
    ) -> FeedbackOut:
        await self._reply(conversation, message_id)
        rating = 1 if body.rating == "up" else -1
        comment = clean_text(body.comment).strip()
        existing = (await self.repository.feedback_for(user_id, [message_id])).get(message_id)
        if existing is None:
            existing = MessageFeedback(
                message_id=message_id, user_id=user_id, rating=rating, comment=comment
            )
            await self.repository.add(existing)
        else:
            existing.rating, existing.comment, existing.updated_at = rating, comment, utcnow()
            await self.repository.session.flush()
        return feedback_out(existing)

    async def clear_feedback(
        self, user_id: str, conversation: Conversation, message_id: str
    ) -> None:
        await self._reply(conversation, message_id)
        await self.repository.delete_feedback(user_id, message_id)

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


def feedback_out(row: MessageFeedback) -> FeedbackOut:
    return FeedbackOut(
        rating="up" if row.rating > 0 else "down", comment=row.comment, updated_at=row.updated_at
    )
