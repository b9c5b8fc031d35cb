"""The Alembic migrations build exactly the schema the models describe, on both databases."""

from __future__ import annotations

import pytest
from sqlalchemy import inspect

from onebox.core.db import create_engine
from onebox.core.migrate import upgrade
from onebox.models import import_all_models, schema_differences

pytestmark = pytest.mark.anyio


async def test_migrations_match_models_and_are_idempotent(database_url: str) -> None:
    import_all_models()
    engine = create_engine(database_url)
    try:
        await upgrade(engine)
        await upgrade(engine)  # a second run is a no-op
        async with engine.connect() as connection:
            tables = await connection.run_sync(lambda c: set(inspect(c).get_table_names()))
            differences = await connection.run_sync(schema_differences)
        assert {"users", "conversations", "messages", "alembic_version"} <= tables
        assert differences == []
    finally:
        await engine.dispose()
