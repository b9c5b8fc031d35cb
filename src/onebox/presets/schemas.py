from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from onebox.chat.schemas import SYSTEM_PROMPT_MAX_CHARS
from onebox.core.inputs import Text

NAME_MAX_CHARS = 100


class PresetCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=NAME_MAX_CHARS)
    system_prompt: Text = Field(default="", max_length=SYSTEM_PROMPT_MAX_CHARS)
    model: Text | None = Field(
        default=None, max_length=200, description="Model name or alias; default model if unset"
    )
    collection_ids: list[Text] = Field(default_factory=list, max_length=50)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)


class PresetUpdate(BaseModel):
    """Fields left out stay as they are; ``model`` and ``temperature`` sent as null clear."""

    model_config = ConfigDict(extra="forbid")

    name: Text | None = Field(default=None, min_length=1, max_length=NAME_MAX_CHARS)
    system_prompt: Text | None = Field(default=None, max_length=SYSTEM_PROMPT_MAX_CHARS)
    model: Text | None = Field(default=None, max_length=200)
    collection_ids: list[Text] | None = Field(default=None, max_length=50)
    temperature: float | None = Field(default=None, ge=0.0, le=2.0)


class PresetOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    system_prompt: str
    model: str | None
    collection_ids: list[str] = Field(default_factory=list)
    temperature: float | None
    created_at: datetime
    updated_at: datetime
