"""API keys: created once, shown once, stored as a SHA-256 hash with a visible prefix.

Keys carry 240 bits of randomness, so a fast hash is the right tool (a slow password hash
would only make every API call slower without making a random key harder to guess).
"""

from __future__ import annotations

import ipaddress
import re
import secrets
from dataclasses import dataclass
from datetime import datetime
from urllib.parse import urlsplit

from sqlalchemy.ext.asyncio import AsyncSession

from onebox.core.db import utcnow
from onebox.core.errors import BadRequestError, NotFoundError
from onebox.users.models import ApiKey, User
from onebox.users.repository import UserRepository
from onebox.users.service import token_hash

SECRET_PREFIX = "obx_"  # noqa: S105 (a public prefix, not a secret)
WIDGET_PREFIX = "obw_"


@dataclass
class KeyLimits:
    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    tokens_per_day: int | None = None
    tokens_per_month: int | None = None
    concurrent_streams: int | None = None


_HOST = re.compile(
    r"^(?:[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)(?:\.[a-z0-9](?:[a-z0-9-]{0,61}[a-z0-9])?)*$"
)


def _valid_origin(origin: str) -> str:
    """``scheme://host[:port]`` exactly, as browsers send it in the Origin header."""
    problem = BadRequestError(
        f"Origins look like https://example.com or http://localhost:3000 (got {origin!r})",
        param="allowed_origins",
    )
    cleaned = origin.strip().rstrip("/").lower()
    try:
        parts = urlsplit(cleaned)
        port = parts.port
    except ValueError as exc:
        raise problem from exc
    host = parts.hostname or ""
    if (
        parts.scheme not in {"http", "https"}
        or parts.path or parts.query or parts.fragment or parts.username or parts.password
        or not (_HOST.fullmatch(host) or _is_ip(host))
    ):  # fmt: skip
        raise problem
    return f"{parts.scheme}://{host}" + (f":{port}" if port is not None else "")


def _is_ip(host: str) -> bool:
    try:
        ipaddress.ip_address(host)
    except ValueError:
        return False
    return True


class KeyService:
    def __init__(self, session: AsyncSession) -> None:
        self.repository = UserRepository(session)

    async def create(
        self,
        user: User,
        *,
        name: str,
        kind: str = "secret",
        expires_at: datetime | None = None,
        limits: KeyLimits | None = None,
        models: list[str] | None = None,
        collections: list[str] | None = None,
        allowed_origins: list[str] | None = None,
    ) -> tuple[ApiKey, str]:
        """The stored key and the raw secret, which is never retrievable again."""
        if kind not in {"secret", "widget"}:
            raise BadRequestError("kind must be 'secret' or 'widget'", param="kind")
        if expires_at is not None and expires_at <= utcnow():
            raise BadRequestError("expires_at must be in the future", param="expires_at")
        origins = [_valid_origin(origin) for origin in allowed_origins or []]
        if kind == "widget" and not origins:
            raise BadRequestError(
                "Widget keys need at least one allowed origin", param="allowed_origins"
            )
        raw = (WIDGET_PREFIX if kind == "widget" else SECRET_PREFIX) + secrets.token_urlsafe(30)
        limits = limits or KeyLimits()
        key = ApiKey(
            user_id=user.id,
            name=name.strip()[:200],
            kind=kind,
            prefix=raw[:12],
            key_hash=token_hash(raw),
            expires_at=expires_at,
            requests_per_minute=limits.requests_per_minute,
            tokens_per_minute=limits.tokens_per_minute,
            tokens_per_day=limits.tokens_per_day,
            tokens_per_month=limits.tokens_per_month,
            concurrent_streams=limits.concurrent_streams,
            models=models or None,
            collections=collections or None,
            allowed_origins=origins or None,
        )
        await self.repository.add(key)
        return key, raw

    async def revoke(self, key_id: str, *, user_id: str | None) -> ApiKey:
        key = await self.repository.get_key(key_id, user_id=user_id)
        if key is None:
            raise NotFoundError(f"API key {key_id!r} not found")
        if key.revoked_at is None:
            key.revoked_at = utcnow()
            await self.repository.session.flush()
        return key
