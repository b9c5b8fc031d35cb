"""Who is calling: a session cookie, an API key, the admin token, or nobody.

Single-user mode (no sign-in) holds only while no account exists and the server listens
on loopback; after that every request needs a session or a key.
"""

from __future__ import annotations

import asyncio
import hashlib
import hmac
import ipaddress
import time
from dataclasses import dataclass
from typing import Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from onebox.core.db import utcnow
from onebox.core.settings import Settings
from onebox.users.keys import SECRET_PREFIX, WIDGET_PREFIX, KeyLimits
from onebox.users.models import ApiKey, User
from onebox.users.repository import UserRepository
from onebox.users.service import token_hash

SESSION_COOKIE = "onebox_session"
CSRF_COOKIE = "onebox_csrf"
CSRF_HEADER = "x-csrf-token"
KEY_CACHE_SECONDS = 5.0  # revocation reaches other processes within this time
ACCOUNTS_CACHE_SECONDS = 2.0
TOUCH_EVERY_SECONDS = 60.0

Method = Literal["anonymous", "session", "api_key", "admin_token", "cli"]


@dataclass(frozen=True)
class KeySnapshot:
    id: str
    kind: str
    models: tuple[str, ...] | None
    collections: tuple[str, ...] | None
    allowed_origins: tuple[str, ...] | None
    limits: KeyLimits

    def allows_model(self, name: str) -> bool:
        return self.models is None or name in self.models


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
    if host in {"localhost", ""}:
        return host == "localhost"
    try:
        return ipaddress.ip_address(host).is_loopback
    except ValueError:
        return False


class Authenticator:
    def __init__(self, settings: Settings, sessionmaker: async_sessionmaker[AsyncSession]):
        self.settings = settings
        self.sessionmaker = sessionmaker
        self._secret = hashlib.sha256(
            b"onebox-session-cookie:" + settings.effective_secret_key().encode()
        ).digest()
        self._accounts: tuple[float, bool] = (0.0, False)
        self._keys: dict[str, tuple[float, Principal | None]] = {}
        self._touched: dict[str, float] = {}
        self._pending: dict[str, asyncio.Future[Principal | None]] = {}

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

    async def anonymous_allowed(self) -> bool:
        return is_loopback(self.settings.host) and not await self.accounts_exist()

    # --- resolution -------------------------------------------------------------------

    async def from_bearer(self, credential: str) -> Principal:
        token = self.settings.api_token
        is_admin_token = token is not None and hmac.compare_digest(
            credential.encode(), token.get_secret_value().encode()
        )
        if not is_admin_token and not credential.startswith((SECRET_PREFIX, WIDGET_PREFIX)):
            raise InvalidCredentialsError("Invalid API key")
        digest = token_hash(credential)
        cached = self._keys.get(digest)
        if cached is not None and time.monotonic() - cached[0] < KEY_CACHE_SECONDS:
            principal = cached[1]
        else:
            principal = await self._lookup(digest, is_admin_token)
        if is_admin_token and principal is not None:
            return principal
        if principal is None or principal.key is None:
            raise InvalidCredentialsError("Invalid, expired or revoked API key")
        return principal

    async def _lookup(self, digest: str, is_admin_token: bool) -> Principal | None:
        """One database lookup per credential at a time: under load the cache entry expires
        with many requests in flight, and they all wait for the same answer."""
        pending = self._pending.get(digest)
        if pending is None:
            pending = asyncio.ensure_future(self._load_and_cache(digest, is_admin_token))
            self._pending[digest] = pending
            pending.add_done_callback(lambda done: self._forget_pending(digest, done))
        return await asyncio.shield(pending)

    def _forget_pending(self, digest: str, done: asyncio.Future[Principal | None]) -> None:
        if self._pending.get(digest) is done:
            del self._pending[digest]

    async def _load_and_cache(self, digest: str, is_admin_token: bool) -> Principal | None:
        now = time.monotonic()
        if is_admin_token:
            principal: Principal | None = await self._admin_token_principal()
        else:
            principal = await self._load_key(digest)
        if self._pending.get(digest) is asyncio.current_task():  # not forgotten meanwhile
            self._keys[digest] = (now, principal)
        return principal

    def forget_key(self, key_hash: str) -> None:
        self._keys.pop(key_hash, None)
        self._pending.pop(key_hash, None)

    def forget_user(self, user_id: str) -> None:
        """Drop cached keys of a user who was just disabled or changed role."""
        for digest, (_, principal) in list(self._keys.items()):
            if principal is not None and principal.user_id == user_id:
                self._keys.pop(digest, None)
        self._pending.clear()

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
