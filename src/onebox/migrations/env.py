"""Alembic environment. Runs on the app's own async engine, SQLite and PostgreSQL alike."""

from __future__ import annotations

import asyncio

from alembic import context
from sqlalchemy.engine import Connection

from onebox.core.db import Base, create_engine
from onebox.models import import_all_models, modelled

import_all_models()
target_metadata = Base.metadata
config = context.config


def _run(connection: Connection) -> None:
    context.configure(
        connection=connection,
        target_metadata=target_metadata,
        render_as_batch=connection.dialect.name == "sqlite",
        compare_type=True,
        # The search tables, columns and indexes are the migrations' own (not in the models).
        include_name=modelled,
    )
    with context.begin_transaction():
        context.run_migrations()


async def _run_online() -> None:
    engine = create_engine(config.get_main_option("sqlalchemy.url") or "")
    try:
        async with engine.connect() as connection:
            await connection.run_sync(_run)
            await connection.commit()
    finally:
        await engine.dispose()


given_connection = config.attributes.get("connection")
if given_connection is not None:
    _run(given_connection)
else:
    asyncio.run(_run_online())
