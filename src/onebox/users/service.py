"""Who is calling. Until accounts exist, a laptop install has one implicit local user."""

from __future__ import annotations

from sqlalchemy.exc import IntegrityError
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from onebox.users.models import LOCAL_USER_EMAIL, User
from onebox.users.repository import UserRepository


async def ensure_local_user(sessionmaker: async_sessionmaker[AsyncSession]) -> User:
    """Return the single-user-mode owner, creating it once (safe under concurrent starts)."""
    async with sessionmaker() as session:
        repository = UserRepository(session)
        user = await repository.get_by_email(LOCAL_USER_EMAIL)
        if user is not None:
            return user
        try:
            user = await repository.add(
                User(email=LOCAL_USER_EMAIL, display_name="Local user", is_admin=True)
            )
            await session.commit()
            return user
        except IntegrityError:
            await session.rollback()
            existing = await repository.get_by_email(LOCAL_USER_EMAIL)
            if existing is None:
                raise
            return existing
