from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from onebox.core.inputs import Text


class ShareCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    message_id: Text | None = Field(
        default=None,
        max_length=64,
        description="Share the branch that ends at this message; default: the newest message",
    )


class ShareOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    conversation_id: str
    message_id: str
    prefix: str = Field(description="The link token's first characters")
    created_at: datetime


class ShareCreated(ShareOut):
    token: str = Field(description="Shown once: only its hash is stored")
    path: str = Field(description="The read-only page, /s/{token}; anyone with it can read")
