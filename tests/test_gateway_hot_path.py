"""What the gateway's hot path skips must not change what it does: every streamed reply is
still recorded as complete (the response now ends with its last frames, before the turn
finishes), key lookups are shared by the requests that miss the cache together, an
admission without limits touches no storage, and a serving process freezes its start-up
heap."""

from __future__ import annotations

import asyncio
import sqlite3
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from sqlalchemy import event

from onebox.core.db import create_engine, create_sessionmaker
from onebox.core.migrate import upgrade
from onebox.core.settings import Settings
from onebox.llm.fake import FakeProvider
from onebox.ratelimit import RateLimiter
from onebox.users.auth import Authenticator
from onebox.users.keys import KeyService
from onebox.users.service import AccountService
from tests.conftest import LiveServer, run_live_server

TOKEN = "test-token-" + "x" * 24
SRC = str(Path(__file__).resolve().parents[1] / "src")


@pytest.fixture
def server(tmp_path: Path) -> Iterator[LiveServer]:
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "data",
        llm_provider="fake",
        model_name="fake-echo",
        api_token=TOKEN,
        embedding_provider="openai",
        embedding_base_url="http://127.0.0.1:9/v1",
        embedding_dimension=8,
    )
    yield from run_live_server(settings, FakeProvider(model_name="fake-echo", context_size=4096))


def _usage(server: LiveServer, expected: int) -> list[tuple[str, int]]:
    database = Path(server.settings.data_dir) / "onebox.db"
    deadline = time.monotonic() + 15
    rows: list[tuple[str, int]] = []
    while time.monotonic() < deadline:
        with sqlite3.connect(database) as connection:
            rows = connection.execute(
                "SELECT status, completion_tokens FROM usage_records WHERE source = 'api'"
            ).fetchall()
        if len(rows) >= expected:
            break
        time.sleep(0.1)
    return rows


def test_every_streamed_reply_ends_the_response_and_is_recorded_complete(
    server: LiveServer,
) -> None:
    async def stream_all() -> list[str]:
        async with httpx.AsyncClient(
            base_url=server.url, headers={"authorization": f"Bearer {TOKEN}"}, timeout=30
        ) as client:

            async def one(index: int) -> str:
                body = {
                    "model": "fake-echo",
                    "messages": [{"role": "user", "content": f"reply {index}"}],
                    "stream": True,
                    "stream_options": {"include_usage": True},
                }
                response = await client.post("/v1/chat/completions", json=body)
                assert response.status_code == 200
                return response.text

            return await asyncio.gather(*(one(i) for i in range(24)))

    for text in asyncio.run(stream_all()):
        events = [line for line in text.splitlines() if line.startswith("data: ")]
        assert events[-1] == "data: [DONE]"
        assert '"role":"assistant"' in events[0]
        assert '"finish_reason":"stop"' in events[-3]
        assert '"usage":' in events[-2]
    rows = _usage(server, 24)
    assert len(rows) == 24
    assert {status for status, _ in rows} == {"complete"}
    assert all(tokens > 0 for _, tokens in rows)


@pytest.mark.anyio
async def test_requests_missing_the_key_cache_together_share_one_lookup(tmp_path: Path) -> None:
    settings = Settings(_env_file=None, data_dir=tmp_path)  # type: ignore[call-arg]
    engine = create_engine(f"sqlite+aiosqlite:///{tmp_path / 'auth.db'}")
    try:
        await upgrade(engine)
        sessionmaker = create_sessionmaker(engine)
        async with sessionmaker() as session:
            user = await AccountService(session).create_account(
                "keys@example.com", "a long password 123 !"
            )
            _, secret = await KeyService(session).create(user, name="bench")
            await session.commit()
        statements: list[str] = []
        event.listen(
            engine.sync_engine,
            "before_cursor_execute",
            lambda *args: statements.append(args[2]),
        )
        auth = Authenticator(settings, sessionmaker)
        principals = await asyncio.gather(*(auth.from_bearer(secret) for _ in range(20)))
        assert {p.user_id for p in principals} == {user.id}
        key_lookups = [s for s in statements if "FROM api_keys" in s and "key_hash" in s]
        assert len(key_lookups) == 1
    finally:
        await engine.dispose()


@pytest.mark.anyio
async def test_an_admission_without_limits_touches_no_storage() -> None:
    limiter = await RateLimiter.from_url("memory://")
    admission = await limiter.admit([], estimated_tokens=100)
    await admission.release(500)
    assert admission.released
    assert admission.checks == ()


def test_a_serving_process_freezes_its_start_up_heap(tmp_path: Path) -> None:
    script = f"""
import asyncio, gc
from onebox.core.settings import Settings
from onebox.serving import serving_app

app = serving_app(Settings(_env_file=None, data_dir={str(tmp_path)!r}, llm_provider="fake",
                           model_name="fake-echo", embedding_provider="openai",
                           embedding_base_url="http://127.0.0.1:9/v1", embedding_dimension=8))

async def main():
    async with app.router.lifespan_context(app):
        print(gc.get_freeze_count())

asyncio.run(main())
"""
    result = subprocess.run(
        [sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
        env={"PYTHONPATH": SRC, "PATH": "/usr/bin:/bin"}, check=False,
    )  # fmt: skip
    assert result.returncode == 0, result.stderr
    assert int(result.stdout.strip().splitlines()[-1]) > 10_000
