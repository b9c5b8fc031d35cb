"""All SQL for users, sessions, API keys and audit events."""

from __future__ import annotations

from collections.abc import Sequence
from datetime import datetime

from sqlalchemy import delete, func, select, update
from sqlalchemy.dialects import postgresql, sqlite
from sqlalchemy.ext.asyncio import AsyncSession

from onebox.users.models import ApiKey, AuditEvent, AuthSession, LoginFailures, User


class UserRepository:
    def __init__(self, session: AsyncSession) -> None:
        self.session = session

    async def get(self, user_id: str) -> User | None:
        return await self.session.get(User, user_id)

    async def get_by_email(self, email: str) -> User | None:
        result = await self.session.execute(select(User).where(User.email == email))
        return result.scalar_one_or_none()

    async def add(self, row: User | AuthSession | ApiKey | AuditEvent) -> None:
        self.session.add(row)
        await self.session.flush()

    async def count_accounts(self) -> int:
        result = await self.session.execute(
            select(func.count()).select_from(User).where(User.password_hash.is_not(None))
        )
        return int(result.scalar_one())

    async def first_admin(self) -> User | None:
        result = await self.session.execute(
            select(User)
            .where(User.is_admin.is_(True), User.is_active.is_(True))
            .order_by(User.password_hash.is_(None), User.created_at)
            .limit(1)
        )
        return result.scalar_one_or_none()

    async def list_users(self, *, limit: int, offset: int) -> Sequence[User]:
        result = await self.session.execute(
            select(User)
            .where(User.password_hash.is_not(None))
            .order_by(User.created_at)
            .limit(limit)
            .offset(offset)
        )
        return result.scalars().all()

    # Sign-in failures --------------------------------------------------------------------

    async def login_locked_until(self, key_hash: str) -> datetime | None:
        result = await self.session.execute(
            select(LoginFailures.locked_until).where(LoginFailures.key_hash == key_hash)
        )
        return result.scalar_one_or_none()

    async def count_login_failure(self, key_hash: str, when: datetime) -> int:
        """One more failure for ``key_hash`` (atomic under concurrent attempts): the total."""
        dialect = self.session.get_bind().dialect.name
        insert = postgresql.insert if dialect == "postgresql" else sqlite.insert
        statement = (
            insert(LoginFailures)
            .values(key_hash=key_hash, failures=1, updated_at=when)
            .on_conflict_do_update(
                index_elements=[LoginFailures.key_hash],
                set_={"failures": LoginFailures.failures + 1, "updated_at": when},
            )
            .returning(LoginFailures.failures)
        )
        return int((await self.session.execute(statement)).scalar_one())

    async def lock_login(self, key_hash: str, until: datetime) -> None:
        await self.session.execute(
            update(LoginFailures)
            .where(LoginFailures.key_hash == key_hash)
            .values(locked_until=until)
        )

    async def clear_login_failures(self, key_hash: str) -> None:
        await self.session.execute(delete(LoginFailures).where(LoginFailures.key_hash == key_hash))

    async def forget_login_failures_before(self, cutoff: datetime) -> None:
        await self.session.execute(delete(LoginFailures).where(LoginFailures.updated_at < cutoff))

    # Sessions ---------------------------------------------------------------------------

    async def get_session(self, token_hash: str) -> AuthSession | None:
        return await self.session.get(AuthSession, token_hash)

    async def delete_session(self, token_hash: str) -> None:
        await self.session.execute(delete(AuthSession).where(AuthSession.token_hash == token_hash))

    async def delete_sessions_of(self, user_id: str, *, keep: str | None = None) -> None:
        query = delete(AuthSession).where(AuthSession.user_id == user_id)
        if keep is not None:
            query = query.where(AuthSession.token_hash != keep)
        await self.session.execute(query)

    # API keys ---------------------------------------------------------------------------

    async def get_key_by_hash(self, key_hash: str) -> ApiKey | None:
        result = await self.session.execute(select(ApiKey).where(ApiKey.key_hash == key_hash))
        return result.scalar_one_or_none()

    async def get_key(self, key_id: str, *, user_id: str | None) -> ApiKey | None:
        query = select(ApiKey).where(ApiKey.id == key_id)
        if user_id is not None:
            query = query.where(ApiKey.user_id == user_id)
        result = await self.session.execute(query)
        return result.scalar_one_or_none()

    async def list_keys(self, *, user_id: str | None) -> Sequence[ApiKey]:
        query = select(ApiKey).order_by(ApiKey.created_at.desc())
        if user_id is not None:
            query = query.where(ApiKey.user_id == user_id)
        result = await self.session.execute(query)
        return result.scalars().all()

    async def touch_key(self, key_id: str, when: datetime) -> None:
        await self.session.execute(
            update(ApiKey).where(ApiKey.id == key_id).values(last_used_at=when)
        )

    async def widget_origins(self) -> set[str]:
        result = await self.session.execute(
            select(ApiKey.allowed_origins).where(
                ApiKey.kind == "widget", ApiKey.revoked_at.is_(None)
            )
        )
        return {origin for (origins,) in result for origin in (origins or [])}

    # Audit ------------------------------------------------------------------------------

    async def recent_audit(self, *, limit: int) -> Sequence[AuditEvent]:
        result = await self.session.execute(
            select(AuditEvent).order_by(AuditEvent.created_at.desc()).limit(limit)
        )
        return result.scalars().all()
