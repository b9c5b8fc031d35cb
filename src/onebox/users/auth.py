"""Who is calling: a session cookie, an API key, the admin token, or nobody.

Single-user mode (no sign-in) holds only while no account exists, Onebox is configured for
loopback, and the request itself comes straight from a loopback peer -- whatever address the
server was actually told to bind. After that every request needs a session or a key.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import time
from collections.abc import Mapping
from dataclasses import dataclass
from datetime import datetime
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from onebox.core.db import utcnow
from onebox.core.settings import Settings
from onebox.core.ttl_cache import TTLCache
from onebox.ratelimit.client_ip import Headers, parse_ip
from onebox.users.keys import SECRET_PREFIX, WIDGET_PREFIX, KeyLimits
from onebox.users.models import ApiKey, User
from onebox.users.repository import UserRepository
from onebox.users.service import token_hash

SESSION_COOKIE = "onebox_session"
CSRF_COOKIE = "onebox_csrf"
CSRF_HEADER = "x-csrf-token"
KEY_CACHE_SECONDS = 5.0  # revocation reaches other processes within this time
KEY_CACHE_ENTRIES = 10_000  # valid keys kept resolved
MISS_CACHE_ENTRIES = 1_000  # unknown or dead keys remembered (a flood cannot grow memory)
ACCOUNTS_CACHE_SECONDS = 2.0
TOUCH_EVERY_SECONDS = 60.0

Method = Literal["anonymous", "session", "api_key", "admin_token", "cli"]
# A request relayed by a proxy is not a local user, even when the proxy runs on loopback.
FORWARDING_HEADERS = frozenset({"forwarded", "x-forwarded-for", "x-real-ip"})


@dataclass(frozen=True)
class KeySnapshot:
    id: str
    kind: str
    models: tuple[str, ...] | None
    collections: tuple[str, ...] | None
    allowed_origins: tuple[str, ...] | None
    limits: KeyLimits
    expires_at: datetime | None = None

    def allows_model(self, name: str) -> bool:
        return self.models is None or name in self.models

    def expired(self, now: datetime) -> bool:
        return self.expires_at is not None and self.expires_at <= now


@dataclass(frozen=True)
class Principal:
    user_id: str
    email: str
    is_admin: bool
    method: Method
    csrf_token: str | None = None
    session_token: str | None = None
    key: KeySnapshot | None = None


class InvalidCredentialsError(Exception):
    """A credential was presented and is wrong, expired or revoked."""


def is_loopback(host: str) -> bool:
    if host == "localhost":
        return True
    address = parse_ip(host)  # also unwraps ::ffff:127.0.0.1
    return address is not None and address.is_loopback


def is_forwarded(headers: Headers) -> bool:
    items = headers.items() if isinstance(headers, Mapping) else headers
    for name, _ in items:
        text = name.decode("latin-1") if isinstance(name, bytes) else name
        if text.lower() in FORWARDING_HEADERS:
            return True
    return False


class Authenticator:
    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        *,
        key_cache_seconds: float = KEY_CACHE_SECONDS,
        key_cache_entries: int = KEY_CACHE_ENTRIES,
        miss_cache_entries: int = MISS_CACHE_ENTRIES,
    ):
        self.settings = settings
        self.sessionmaker = sessionmaker
        self._secret = hashlib.sha256(
            b"onebox-session-cookie:" + settings.effective_secret_key().encode()
        ).digest()
        self._accounts: tuple[float, bool] = (0.0, False)
        self._keys: TTLCache[str, Principal] = TTLCache(key_cache_entries, key_cache_seconds)
        self._misses: TTLCache[str, bool] = TTLCache(miss_cache_entries, key_cache_seconds)
        self._pending: dict[str, asyncio.Future[Principal | None]] = {}
        self._touched: dict[str, float] = {}

    # --- cookies ----------------------------------------------------------------------

    def sign(self, token: str) -> str:
        mac = hmac.new(self._secret, token.encode(), hashlib.sha256).hexdigest()[:32]
        return f"{token}.{mac}"

    def unsign(self, cookie: str) -> str | None:
        token, _, mac = cookie.rpartition(".")
        expected = hmac.new(self._secret, token.encode(), hashlib.sha256).hexdigest()[:32]
        return token if token and hmac.compare_digest(mac, expected) else None

    # --- modes ------------------------------------------------------------------------

    async def accounts_exist(self) -> bool:
        checked_at, exists = self._accounts
        if exists or time.monotonic() - checked_at < ACCOUNTS_CACHE_SECONDS:
            return exists
        async with self.sessionmaker() as session:
            exists = await UserRepository(session).count_accounts() > 0
        self._accounts = (time.monotonic(), exists)
        return exists

    def forget_accounts_state(self) -> None:
        self._accounts = (0.0, False)

    async def anonymous_allowed(self, peer: str | None, headers: Headers) -> bool:
        """Single-user mode for this request. ``peer`` is the connection's address as the
        app received it (``request.client.host``); the configured host alone proves nothing,
        as the server may have been started on 0.0.0.0 whatever the settings say."""
        if not (is_loopback(self.settings.host) and peer and is_loopback(peer)):
            return False
        return not is_forwarded(headers) and not await self.accounts_exist()

    # --- resolution -------------------------------------------------------------------

    async def from_bearer(self, credential: str) -> Principal:
        token = self.settings.api_token
        is_admin_token = token is not None and hmac.compare_digest(
            credential.encode(), token.get_secret_value().encode()
        )
        if not is_admin_token and not credential.startswith((SECRET_PREFIX, WIDGET_PREFIX)):
            raise InvalidCredentialsError("Invalid API key")
        digest = token_hash(credential)
        principal = self._keys.get(digest)
        if principal is None and self._misses.get(digest) is None:
            principal = await self._lookup_once(digest, is_admin_token)
        if is_admin_token and principal is not None:
            return principal
        # Expiry is checked on every request: the cache only saves the lookup.
        if principal is None or principal.key is None or principal.key.expired(utcnow()):
            raise InvalidCredentialsError("Invalid, expired or revoked API key")
        return principal

    async def _lookup_once(self, digest: str, is_admin_token: bool) -> Principal | None:
        """One database lookup however many requests miss the cache for the same key at
        once (a burst on a new or just-expired key would otherwise make one each)."""
        pending = self._pending.get(digest)
        if pending is not None:
            try:
                return await asyncio.shield(pending)
            except asyncio.CancelledError:
                if not pending.cancelled():
                    raise  # this request was cancelled
                return await self._lookup_once(digest, is_admin_token)  # the leader was cancelled
        future: asyncio.Future[Principal | None] = asyncio.get_running_loop().create_future()
        self._pending[digest] = future
        try:
            principal: Principal | None = (
                await self._admin_token_principal()
                if is_admin_token
                else await self._load_key(digest)
            )
            if principal is None:
                self._misses.put(digest, True)
            else:
                self._keys.put(digest, principal)
            future.set_result(principal)
            return principal
        except asyncio.CancelledError:
            future.cancel()
            raise
        except Exception as exc:
            future.set_exception(exc)
            future.exception()  # retrieved: waiters re-raise it, nobody else must log it
            raise
        finally:
            self._pending.pop(digest, None)

    def forget_key(self, key_hash: str) -> None:
        self._keys.pop(key_hash)
        self._pending.pop(key_hash, None)

    def forget_user(self, user_id: str) -> None:
        """Drop cached keys of a user who was just disabled or changed role."""
        for digest, principal in self._keys.items():
            if principal.user_id == user_id:
                self._keys.pop(digest)

    def cached_key_count(self) -> int:
        """Entries held for bearer credentials, valid and not (bounded by the caps)."""
        return len(self._keys) + len(self._misses)

    async def _load_key(self, digest: str) -> Principal | None:
        async with self.sessionmaker() as session:
            repository = UserRepository(session)
            key = await repository.get_key_by_hash(digest)
            if key is None or key.revoked_at is not None:
                return None
            now = utcnow()
            if key.expires_at is not None and key.expires_at <= now:
                return None
            user = await repository.get(key.user_id)
            if user is None or not user.is_active:
                return None
            if time.monotonic() - self._touched.get(key.id, 0.0) > TOUCH_EVERY_SECONDS:
                self._touched[key.id] = time.monotonic()
                await repository.touch_key(key.id, now)
                await session.commit()
            return _key_principal(user, key)

    async def _admin_token_principal(self) -> Principal:
        async with self.sessionmaker() as session:
            admin = await UserRepository(session).first_admin()
        if admin is None:
            raise InvalidCredentialsError("No admin account to act as")
        return Principal(admin.id, admin.email, True, "admin_token")

    async def from_session_cookie(self, cookie: str) -> Principal | None:
        token = self.unsign(cookie)
        if token is None:
            return None
        async with self.sessionmaker() as session:
            repository = UserRepository(session)
            stored = await repository.get_session(token_hash(token))
            if stored is None or stored.expires_at <= utcnow():
                return None
            user = await repository.get(stored.user_id)
            if user is None or not user.is_active or not user.is_account:
                return None
            return Principal(
                user.id,
                user.email,
                user.is_admin,
                "session",
                csrf_token=stored.csrf_token,
                session_token=token,
            )

    async def anonymous(self, local_user_id: str) -> Principal:
        return Principal(local_user_id, "", True, "anonymous")


def _key_principal(user: User, key: ApiKey) -> Principal:
    snapshot = KeySnapshot(
        id=key.id,
        kind=key.kind,
        models=tuple(key.models) if key.models else None,
        collections=tuple(key.collections) if key.collections else None,
        allowed_origins=tuple(key.allowed_origins) if key.allowed_origins else None,
        limits=KeyLimits(
            requests_per_minute=key.requests_per_minute,
            tokens_per_minute=key.tokens_per_minute,
            tokens_per_day=key.tokens_per_day,
            tokens_per_month=key.tokens_per_month,
            concurrent_streams=key.concurrent_streams,
        ),
        expires_at=key.expires_at,
    )
    return Principal(user.id, user.email, user.is_admin, "api_key", key=snapshot)


async def cli_principal(sessionmaker: async_sessionmaker[AsyncSession], user_id: str) -> Principal:
    """Whoever runs a CLI command on this machine acts as the user it names: they hold the
    data dir (and so the database) already."""
    async with sessionmaker() as session:
        user = await UserRepository(session).get(user_id)
    if user is None:
        raise InvalidCredentialsError(f"No user {user_id!r}")
    return Principal(user.id, user.email or "", user.is_admin, "cli")
