from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, computed_field

from onebox.chat.rendering import render_markdown
from onebox.core.inputs import Text


class ConversationCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Text = Field(default="", max_length=200)
    model: Text | None = Field(
        default=None, description="Model name or alias; default model if unset"
    )
    collection_ids: list[Text] = Field(
        default_factory=list, max_length=50, description="Collections answers draw on"
    )


class ConversationUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    title: Text | None = Field(default=None, min_length=1, max_length=200)
    pinned: bool | None = None
    archived: bool | None = None
    model: Text | None = Field(default=None, min_length=1, max_length=200)
    collection_ids: list[Text] | None = Field(default=None, max_length=50)


class ConversationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    title: str
    pinned: bool
    archived: bool
    model: str | None
    collection_ids: list[str] = Field(default_factory=list)
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
