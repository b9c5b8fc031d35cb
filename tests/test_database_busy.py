"""A database that stays locked past its wait is a 503 the client may retry, not a 500.

An overloaded SQLite (found by the soak benchmark on a busy machine) gives up on the write
lock after its busy timeout; the request was fine, so it must not look like a server bug,
and nothing of it may be stored."""

from __future__ import annotations

import asyncio
import sqlite3
import threading
from pathlib import Path

import httpx
import pytest

from onebox.app import create_app
from onebox.llm.fake import FakeProvider
from tests.conftest import api_settings

pytestmark = pytest.mark.anyio

BUSY_TIMEOUT_SECONDS = 10  # core/db.py: PRAGMA busy_timeout


async def test_write_lock_held_past_the_busy_timeout_is_a_retryable_503(tmp_path: Path) -> None:
    database = tmp_path / "onebox.db"
    settings = api_settings(tmp_path, f"sqlite+aiosqlite:///{database}")
    app = create_app(settings, provider=FakeProvider(model_name="fake-echo", context_size=4096))
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app, client=("127.0.0.1", 50000))
        async with httpx.AsyncClient(transport=transport, base_url="http://onebox.test") as client:
            conversation = (await client.post("/api/conversations", json={})).json()["id"]
            locked = threading.Event()
            release = threading.Event()

            def hold_the_write_lock() -> None:
                connection = sqlite3.connect(database)
                connection.execute("BEGIN IMMEDIATE")
                locked.set()
                release.wait(BUSY_TIMEOUT_SECONDS * 3)
                connection.rollback()
                connection.close()

            holder = threading.Thread(target=hold_the_write_lock)
            holder.start()
            try:
                await asyncio.to_thread(locked.wait, 10)
                response = await client.post(
                    f"/api/conversations/{conversation}/messages", json={"content": "hello"}
                )
            finally:
                release.set()
                await asyncio.to_thread(holder.join)
            assert response.status_code == 503, response.text
            assert response.headers["retry-after"] == "1"
            assert response.json()["error"]["code"] == "database_busy"
            stored = await client.get(f"/api/conversations/{conversation}")
            assert stored.json()["messages"] == []
