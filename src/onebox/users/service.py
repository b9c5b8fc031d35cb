"""Accounts, logins and sessions. Services flush; the request (or CLI command) commits."""

from __future__ import annotations

import hashlib
import re
import secrets
from dataclasses import dataclass
from datetime import datetime, timedelta

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from onebox.core.db import utcnow
from onebox.core.errors import AppError, BadRequestError, ConflictError
from onebox.users.models import LOCAL_USER_EMAIL, AuditEvent, AuthSession, User
from onebox.users.passwords import hash_password, password_problem, verify_password
from onebox.users.repository import UserRepository

SESSION_LIFETIME = timedelta(days=14)
LOCKOUT_AFTER = 5  # consecutive failures, per email and client, before sign-in is locked
LOCKOUT_MAX = timedelta(hours=1)
LOGIN_FAILURES_KEPT = timedelta(days=1)  # failures older than this are forgotten
_EMAIL = re.compile(r"^[^@\s]{1,64}@[^@\s]{1,255}\.[^@\s]{2,63}$")


class AuthenticationFailedError(AppError):
    status_code = 401
    error_type = "authentication_error"


def token_hash(token: str) -> str:
    return hashlib.sha256(token.encode()).hexdigest()


def normalize_email(email: str) -> str:
    cleaned = email.strip().lower()
    if not _EMAIL.fullmatch(cleaned) or cleaned == LOCAL_USER_EMAIL:
        raise BadRequestError("Enter a valid email address", param="email")
    return cleaned


async def ensure_local_user(sessionmaker: async_sessionmaker[AsyncSession]) -> User:
    """Return the single-user-mode owner, creating it once (safe under concurrent starts).
    Once the first account exists this row *is* that account (see create_account)."""
    async with sessionmaker() as session:
        repository = UserRepository(session)
        user = await repository.get_by_email(LOCAL_USER_EMAIL) or await repository.first_admin()
        if user is not None:
            return user
        try:
            user = User(email=LOCAL_USER_EMAIL, display_name="Local user", is_admin=True)
            await repository.add(user)
            await session.commit()
            return user
        except IntegrityError:
            await session.rollback()
            existing = await repository.get_by_email(LOCAL_USER_EMAIL)
            if existing is None:
                raise
            return existing


@dataclass
class NewSession:
    token: str
    csrf_token: str
    expires_at: datetime


class AccountService:
    def __init__(self, session: AsyncSession) -> None:
        self.repository = UserRepository(session)

    async def create_account(
        self, email: str, password: str, *, is_admin: bool = False, display_name: str = ""
    ) -> User:
        email = normalize_email(email)
        if problem := password_problem(password):
            raise BadRequestError(problem, param="password")
        if await self.repository.get_by_email(email) is not None:
            raise ConflictError("An account with this email already exists", param="email")
        local = await self.repository.get_by_email(LOCAL_USER_EMAIL)
        if local is not None and await self.repository.count_accounts() == 0:
            # The first account takes over what was written in single-user mode.
            local.email = email
            local.password_hash = hash_password(password)
            local.is_admin = True
            local.display_name = display_name or email.split("@")[0]
            await self.repository.session.flush()
            return local
        user = User(
            email=email,
            password_hash=hash_password(password),
            is_admin=is_admin,
            display_name=display_name or email.split("@")[0],
        )
        await self.repository.add(user)
        return user

    async def authenticate(self, email: str, password: str, *, source: str) -> User:
        """The user for these credentials, or AuthenticationFailedError: the same message for
        a wrong password, an unknown email or a disabled account, and the same lockout for
        all of them after LOCKOUT_AFTER failures. Failures count per email *and* ``source``
        (the client address), so a stranger cannot lock the owner out of an account."""
        cleaned = email.strip().lower()
        attempt = token_hash(f"{cleaned}\n{source}")
        now = utcnow()
        locked_until = await self.repository.login_locked_until(attempt)
        if locked_until is not None and locked_until > now:
            raise AuthenticationFailedError(
                "Too many failed attempts; try again later", code="account_locked"
            )
        user = await self.repository.get_by_email(cleaned)
        matches = verify_password(user.password_hash if user else None, password)
        if user is None or not user.is_active or not matches:
            failures = await self.repository.count_login_failure(attempt, now)
            if failures >= LOCKOUT_AFTER:
                backoff = timedelta(seconds=30 * 2 ** min(failures - LOCKOUT_AFTER, 7))
                await self.repository.lock_login(attempt, now + min(backoff, LOCKOUT_MAX))
            await self.repository.forget_login_failures_before(now - LOGIN_FAILURES_KEPT)
            raise AuthenticationFailedError("Incorrect email or password")
        await self.repository.clear_login_failures(attempt)
        user.last_login_at = now
        await self.repository.session.flush()
        return user

    async def start_session(self, user: User, *, user_agent: str, ip: str) -> NewSession:
        token = secrets.token_urlsafe(32)
        csrf = secrets.token_urlsafe(24)
        expires = utcnow() + SESSION_LIFETIME
        await self.repository.add(
            AuthSession(
                token_hash=token_hash(token),
                user_id=user.id,
                csrf_token=csrf,
                expires_at=expires,
                user_agent=user_agent[:400],
                ip=ip[:64],
            )
        )
        return NewSession(token=token, csrf_token=csrf, expires_at=expires)

    async def end_session(self, token: str) -> None:
        await self.repository.delete_session(token_hash(token))

    async def change_password(
        self, user_id: str, current: str, new: str, *, keep_session: str | None
    ) -> User:
        user = await self.repository.get(user_id)
        if user is None or not verify_password(user.password_hash, current):
            raise BadRequestError(
                "The current password is not correct", param="current_password",
                code="wrong_password",
            )  # fmt: skip
        if problem := password_problem(new):
            raise BadRequestError(problem, param="new_password")
        user.password_hash = hash_password(new)
        # Every other login of this account ends: a changed password must lock others out.
        await self.repository.delete_sessions_of(
            user.id, keep=token_hash(keep_session) if keep_session else None
        )
        await self.repository.session.flush()
        return user

    async def audit(
        self,
        action: str,
        *,
        actor: User | None = None,
        actor_email: str = "",
        outcome: str = "ok",
        target: str = "",
        ip: str = "",
        details: str = "",
    ) -> None:
        await self.repository.add(
            AuditEvent(
                actor_id=actor.id if actor else None,
                actor_email=actor.email if actor else actor_email[:320],
                action=action,
                outcome=outcome,
                target=target[:320],
                ip=ip[:64],
                details=details[:4000],
            )
        )


async def record_audit(
    sessionmaker: async_sessionmaker[AsyncSession],
    action: str,
    *,
    actor_id: str | None = None,
    actor_email: str = "",
    outcome: str = "ok",
    target: str = "",
    ip: str = "",
    details: str = "",
) -> None:
    """An audit entry in its own transaction: it must stick even when the request fails."""
    async with sessionmaker() as session:
        session.add(
            AuditEvent(
                actor_id=actor_id, actor_email=actor_email[:320], action=action,
                outcome=outcome, target=target[:320], ip=ip[:64], details=details[:4000],
            )
        )  # fmt: skip
        await session.commit()
