"""The widget's input and output: its public API (visitors) and the owner's (keys,
conversations, export)."""

from __future__ import annotations

from datetime import datetime
from typing import Any, Literal

from pydantic import BaseModel, ConfigDict, Field, field_validator

VISITOR_PATTERN = r"^[A-Za-z0-9_-]{8,64}$"
COLOUR_PATTERN = r"^#[0-9a-fA-F]{6}$"
MAX_HISTORY_MESSAGES = 200  # what a browser may send when conversations are not kept


class WidgetAppearance(BaseModel):
    """How the widget looks; a page's ``data-`` attributes override each for that page."""

    model_config = ConfigDict(extra="forbid")

    title: str = Field(default="Ask us", min_length=1, max_length=80)
    greeting: str = Field(default="Hi! Ask me anything about our documentation.", max_length=500)
    color: str = Field(default="#2563eb", pattern=COLOUR_PATTERN)
    position: Literal["bottom-right", "bottom-left"] = "bottom-right"
    theme: Literal["light", "dark", "auto"] = "auto"
    open_on_load: bool = False
    suggestions: list[str] = Field(default_factory=list, max_length=6)
    placeholder: str = Field(default="Ask a question…", max_length=120)
    footer: str = Field(default="Answers are generated from our documents.", max_length=200)

    @field_validator("suggestions")
    @classmethod
    def _suggestions(cls, value: list[str]) -> list[str]:
        if any(len(item) > 120 for item in value):
            raise ValueError("each suggestion may have at most 120 characters")
        return [item.strip() for item in value if item.strip()]


class WidgetPolicy(BaseModel):
    """What visitors may do: whether conversations are kept, how long one may get, and the
    limits per visitor address (on top of the key's own limits)."""

    model_config = ConfigDict(extra="forbid")

    retain_conversations: bool = True
    max_visitor_messages: int = Field(default=20, ge=1, le=100)
    visitor_requests_per_minute: int | None = Field(default=10, ge=1)
    visitor_tokens_per_minute: int | None = Field(default=None, ge=1)
    visitor_tokens_per_day: int | None = Field(default=None, ge=1)


class WidgetPolicyUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    retain_conversations: bool | None = None
    max_visitor_messages: int | None = Field(default=None, ge=1, le=100)
    visitor_requests_per_minute: int | None = Field(default=None, ge=1)
    visitor_tokens_per_minute: int | None = Field(default=None, ge=1)
    visitor_tokens_per_day: int | None = Field(default=None, ge=1)


class WidgetKeyCreate(WidgetPolicy):
    """A widget key with its collections, origins, appearance, limits and visitor policy."""

    name: str = Field(default="", max_length=200)
    expires_at: datetime | None = None
    allowed_origins: list[str] = Field(min_length=1, max_length=50)
    collections: list[str] | None = Field(default=None, max_length=100)
    models: list[str] | None = Field(default=None, max_length=100)
    requests_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_minute: int | None = Field(default=None, ge=1)
    tokens_per_day: int | None = Field(default=None, ge=1)
    tokens_per_month: int | None = Field(default=None, ge=1)
    concurrent_streams: int | None = Field(default=None, ge=1)
    appearance: WidgetAppearance = Field(default_factory=WidgetAppearance)


class WidgetSettingsUpdate(BaseModel):
    """``PATCH``: what is given replaces what is stored (``appearance`` as a whole)."""

    model_config = ConfigDict(extra="forbid")

    appearance: WidgetAppearance | None = None
    policy: WidgetPolicyUpdate | None = None


class WidgetSettingsOut(BaseModel):
    key_id: str
    appearance: WidgetAppearance
    policy: WidgetPolicy


class WidgetKeyCreated(BaseModel):
    key: dict[str, Any] = Field(description="The key, as /api/keys lists it")
    secret: str = Field(description="The public widget key (obw_…), shown once")
    settings: WidgetSettingsOut
    snippet: str = Field(description="The line to paste into a page")


# --- the visitor's side ---------------------------------------------------------------


class WidgetConfigOut(WidgetAppearance):
    model_config = ConfigDict(extra="ignore")

    retain_conversations: bool
    max_visitor_messages: int


class HistoryMessage(BaseModel):
    model_config = ConfigDict(extra="ignore")

    role: Literal["user", "assistant"]
    content: str = Field(max_length=32_000)


class WidgetMessageIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    content: str = Field(min_length=1, max_length=32_000)
    conversation_id: str | None = Field(default=None, max_length=36)
    history: list[HistoryMessage] = Field(
        default_factory=list,
        max_length=MAX_HISTORY_MESSAGES,
        description="The conversation so far, when the key keeps no conversations",
    )


class VisitorSource(BaseModel):
    number: int
    title: str
    page: int | None = None
    heading: str = ""
    snippet: str = ""
    url: str | None = None
    used: bool | None = None


class VisitorMessage(BaseModel):
    id: str
    role: str
    content: str
    status: str
    sources: list[VisitorSource] = Field(default_factory=list)
    created_at: datetime


class VisitorConversation(BaseModel):
    id: str
    messages: list[VisitorMessage]


# --- the owner's side -----------------------------------------------------------------


class WidgetConversationOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    title: str
    visitor_id: str | None
    created_at: datetime
    updated_at: datetime
    message_count: int = 0


class WidgetTranscriptMessage(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    role: str
    content: str
    status: str
    model: str | None
    sources: list[dict[str, Any]] | None
    created_at: datetime


class WidgetConversationDetail(WidgetConversationOut):
    messages: list[WidgetTranscriptMessage]
