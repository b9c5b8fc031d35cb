"""Migration 0009 (conversation tools) goes down and up again on both databases, keeping
every conversation and message."""

from __future__ import annotations

import pytest
from alembic import command
from alembic.script import ScriptDirectory
from sqlalchemy import insert, inspect, text
from sqlalchemy.engine import Connection

from onebox.chat.models import Conversation, Message
from onebox.core.db import create_engine
from onebox.core.migrate import alembic_config, upgrade
from onebox.models import import_all_models, schema_differences
from onebox.sharing.models import ConversationShare
from onebox.users.models import User

pytestmark = pytest.mark.anyio


def _below_0009(url: str) -> str:
    script = ScriptDirectory.from_config(alembic_config(url))
    down = script.get_revision("0009").down_revision
    assert isinstance(down, str)
    return down


def _downgrade(connection: Connection, url: str, revision: str) -> None:
    config = alembic_config(url)
    config.attributes["connection"] = connection
    command.downgrade(config, revision)


def _shape(connection: Connection) -> tuple[set[str], set[str]]:
    inspector = inspect(connection)
    columns = {c["name"] for c in inspector.get_columns("conversations")}
    return set(inspector.get_table_names()), columns


async def test_0009_downgrades_and_upgrades(database_url: str) -> None:
    import_all_models()
    engine = create_engine(database_url)
    url = engine.url.render_as_string(hide_password=False)
    try:
        await upgrade(engine)
        async with engine.begin() as connection:
            rows = [
                (User, {"id": "u1", "email": "a@example.com"}),
                (Conversation, {"id": "c1", "owner_id": "u1", "title": "kept",
                                "system_prompt": "be brief", "temperature": 0.5}),
                (Message, {"id": "m1", "conversation_id": "c1", "role": "user",
                           "content": "hello"}),
                (ConversationShare, {"id": "s1", "token_hash": "h", "prefix": "p",
                                     "conversation_id": "c1", "owner_id": "u1",
                                     "message_id": "m1"}),
            ]  # fmt: skip
            for model, values in rows:
                await connection.execute(insert(model.__table__).values(**values))  # type: ignore[attr-defined]
        async with engine.begin() as connection:
            await connection.run_sync(_downgrade, url, _below_0009(url))
        async with engine.connect() as connection:
            tables, columns = await connection.run_sync(_shape)
            assert "presets" not in tables
            assert "conversation_shares" not in tables
            assert not {"system_prompt", "temperature"} & columns
            kept = await connection.execute(
                text("SELECT c.title, m.content FROM conversations c JOIN messages m "
                     "ON m.conversation_id = c.id")
            )  # fmt: skip
            assert kept.all() == [("kept", "hello")]

        await upgrade(engine)
        async with engine.connect() as connection:
            tables, columns = await connection.run_sync(_shape)
            assert {"presets", "conversation_shares"} <= tables
            assert {"system_prompt", "temperature"} <= columns
            differences = await connection.run_sync(schema_differences)
            assert differences == []
            row = await connection.execute(text("SELECT system_prompt FROM conversations"))
            assert row.all() == [(None,)]
    finally:
        await engine.dispose()
