from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from onebox.chat.rendering import render_markdown
from onebox.core.inputs import Text

SYSTEM_PROMPT_MAX_CHARS = 4000


class ConversationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Text = Field(default="", max_length=200)
    model: Text | None = Field(
        default=None, description="Model name or alias; default model if unset"
    )
    collection_ids: list[Text] = Field(
        default_factory=list, max_length=50, description="Collections answers draw on"
    )
    system_prompt: Text | None = Field(
        default=None,
        max_length=SYSTEM_PROMPT_MAX_CHARS,
        description="Instructions added after the deployment's system prompt",
    )
    temperature: float | None = Field(
        default=None, ge=0.0, le=2.0, description="Sampling temperature; default if unset"
    )


class ConversationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Text | None = Field(default=None, min_length=1, max_length=200)
    pinned: bool | None = None
    archived: bool | None = None
    model: Text | None = Field(default=None, min_length=1, max_length=200)
    collection_ids: list[Text] | None = Field(default=None, max_length=50)
    system_prompt: Text | None = Field(
        default=None,
        max_length=SYSTEM_PROMPT_MAX_CHARS,
        description="Instructions added after the deployment's; empty or null clears them",
    )
    temperature: float | None = Field(
        default=None, ge=0.0, le=2.0, description="null (sent explicitly) clears it"
    )


class ConversationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    title: str
    title_source: str = Field(
        default="auto",
        description="Where the title came from: `auto` (the first message; the model may "
        "still name the conversation), `model` or `user`",
    )
    pinned: bool
    archived: bool
    model: str | None
    collection_ids: list[str] = Field(default_factory=list)
    system_prompt: str | None = None
    temperature: float | None = None
    created_at: datetime
    updated_at: datetime


class MessageCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: Text
    parent_id: Text | None = Field(
        default=None,
        description="Reply under this message; defaults to the last message of the branch shown",
    )
    edit_of: Text | None = Field(
        default=None,
        description="A new version of this user message: stored as its sibling (a new "
        "branch), answered, and shown",
    )


class MessageOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    conversation_id: str
    parent_id: str | None
    role: str
    content: str
    model: str | None
    prompt_tokens: int | None
    completion_tokens: int | None
    ttft_ms: int | None
    duration_ms: int | None
    status: str
    error: str | None
    sources: list[dict[str, Any]] | None = Field(
        default=None,
        description="Passages retrieved for this reply, numbered as cited; `used` tells "
        "whether the answer cites each",
    )
    created_at: datetime

    @computed_field  # type: ignore[prop-decorator]
    @property
    def html(self) -> str:
        """The content as sanitised HTML, safe to insert into a page."""
        return render_markdown(self.content)


class Generating(BaseModel):
    message_id: str = Field(description="The reply being generated (it may not be stored yet)")
    parent_id: str = Field(description="The user message it answers")


class FeedbackIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    rating: Literal["up", "down"]
    comment: Text = Field(default="", max_length=2000)


class FeedbackOut(BaseModel):
    rating: Literal["up", "down"]
    comment: str
    updated_at: datetime


class PathMessageOut(MessageOut):
    siblings: list[str] = Field(
        default_factory=list,
        description="This message and the other versions under the same parent (edits, "
        "regenerations), oldest first; its position among them is its index",
    )
    feedback: FeedbackOut | None = None


class MessagePage(BaseModel):
    items: list[PathMessageOut] = Field(description="Messages of the branch shown, oldest first")
    has_more: bool = Field(description="Whether older messages precede this page")


class BranchChoice(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message_id: Text = Field(description="Show the branch through this message")


class ConversationDetail(ConversationOut):
    messages: list[PathMessageOut] = Field(
        description="The newest page of the branch shown (older pages: GET .../messages)"
    )
    has_more: bool = False
    generating: Generating | None = Field(
        default=None,
        description="The reply still being generated, if any: follow it with "
        "GET /api/conversations/{id}/messages/{message_id}/events",
    )


class SearchHitOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    conversation_id: str
    title: str
    archived: bool
    message_id: str | None = Field(description="The matching message; null when the title matched")
    role: str | None
    snippet: str = Field(
        description="Safe HTML: the text around the match, escaped, with each matched word in "
        "`<mark>`"
    )
    created_at: datetime


class SearchResults(BaseModel):
    hits: list[SearchHitOut]
