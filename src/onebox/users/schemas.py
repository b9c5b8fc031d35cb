from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from onebox.core.inputs import MAX_STORED_INT, Moment, Text


class UserOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    email: str
    display_name: str
    role: str
    is_active: bool
    created_at: datetime
    last_login_at: datetime | None


class LoginIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Text = Field(max_length=320)
    password: Text = Field(max_length=1024)


class SignupIn(LoginIn):
    display_name: Text = Field(default="", max_length=200)


class PasswordChangeIn(BaseModel):
    model_config = ConfigDict(extra="forbid")

    current_password: Text = Field(max_length=1024)
    new_password: Text = Field(max_length=1024)


class MeOut(BaseModel):
    mode: str
    user: UserOut | None
    csrf_token: str | None


class AuthConfigOut(BaseModel):
    signup_open: bool
    anonymous: bool


class KeyCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(default="", max_length=200)
    kind: Text = Field(default="secret", pattern="^(secret|widget)$")
    expires_at: Moment | None = None
    requests_per_minute: int | None = Field(default=None, ge=1, le=MAX_STORED_INT)
    tokens_per_minute: int | None = Field(default=None, ge=1, le=MAX_STORED_INT)
    tokens_per_day: int | None = Field(default=None, ge=1, le=MAX_STORED_INT)
    tokens_per_month: int | None = Field(default=None, ge=1, le=MAX_STORED_INT)
    concurrent_streams: int | None = Field(default=None, ge=1, le=MAX_STORED_INT)
    models: list[Text] | None = Field(default=None, max_length=100)
    collections: list[Text] | None = Field(default=None, max_length=100)
    allowed_origins: list[Text] | None = Field(default=None, max_length=50)


class KeyOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    kind: str
    prefix: str
    created_at: datetime
    expires_at: datetime | None
    revoked_at: datetime | None
    last_used_at: datetime | None
    requests_per_minute: int | None
    tokens_per_minute: int | None
    tokens_per_day: int | None
    tokens_per_month: int | None
    concurrent_streams: int | None
    models: list[str] | None
    collections: list[str] | None
    allowed_origins: list[str] | None


class KeyCreated(BaseModel):
    key: KeyOut
    secret: str = Field(description="Shown once; store it now")


class AdminUserCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    email: Text = Field(max_length=320)
    password: Text = Field(max_length=1024)
    role: Text = Field(default="user", pattern="^(admin|user)$")
    display_name: Text = Field(default="", max_length=200)


class AdminUserUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    role: Text | None = Field(default=None, pattern="^(admin|user)$")
    is_active: bool | None = None


class AdminKeyOut(KeyOut):
    user_email: str


class AuditOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    created_at: datetime
    actor_email: str
    action: str
    outcome: str
    target: str
    ip: str
    details: str
