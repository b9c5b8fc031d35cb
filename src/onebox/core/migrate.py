"""Applies Alembic migrations shipped inside the package (no alembic.ini needed)."""

from __future__ import annotations

from alembic import command
from alembic.config import Config
from sqlalchemy import text
from sqlalchemy.engine import Connection
from sqlalchemy.ext.asyncio import AsyncEngine


def alembic_config(database_url: str) -> Config:
    config = Config()
    config.set_main_option("script_location", "onebox:migrations")
    # configparser interpolates "%": escape it (URL-encoded passwords and socket paths).
    config.set_main_option("sqlalchemy.url", database_url.replace("%", "%%"))
    return config


def _upgrade(connection: Connection, database_url: str, revision: str) -> None:
    config = alembic_config(database_url)
    config.attributes["connection"] = connection
    command.upgrade(config, revision)


# Any constant shared by every Onebox process: app replicas and workers starting together
# on one PostgreSQL database migrate one at a time instead of racing.
_MIGRATION_LOCK = 0x0B0C_5EED


async def upgrade(engine: AsyncEngine, revision: str = "head") -> None:
    url = engine.url.render_as_string(hide_password=False)
    async with engine.begin() as connection:
        if connection.dialect.name == "postgresql":
            await connection.execute(
                text("SELECT pg_advisory_xact_lock(:key)"), {"key": _MIGRATION_LOCK}
            )
        await connection.run_sync(_upgrade, url, revision)
