"""Shared fixtures: real SQLite and PostgreSQL databases, the real app, real servers."""

from __future__ import annotations

import asyncio
import os
import socket
import threading
import uuid
from collections.abc import AsyncIterator, Callable, Iterator
from dataclasses import dataclass
from pathlib import Path

import httpx
import pytest
import uvicorn
from fastapi import FastAPI

from onebox.app import create_app
from onebox.core.settings import Settings
from onebox.llm.base import ChatProvider
from onebox.llm.fake import FakeProvider
from onebox.testing.ready import wait_until_ready

POSTGRES_ADMIN_URL = os.environ.get(
    "ONEBOX_TEST_POSTGRES_URL", "postgresql+asyncpg://postgres@127.0.0.1:5432/postgres"
)


@pytest.fixture
def anyio_backend() -> str:
    return "asyncio"


def _asyncpg_dsn(url: str) -> str:
    return url.replace("postgresql+asyncpg://", "postgresql://", 1)


async def _admin(statement: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(_asyncpg_dsn(POSTGRES_ADMIN_URL), timeout=5)
    try:
        await connection.execute(statement)
    finally:
        await connection.close()


@pytest.fixture(scope="session")
def postgres_url() -> Iterator[str]:
    """A fresh PostgreSQL database for this test run, dropped at the end."""
    name = f"onebox_test_{uuid.uuid4().hex[:12]}"
    try:
        asyncio.run(_admin(f'CREATE DATABASE "{name}"'))
    except (OSError, ImportError) as exc:
        if os.environ.get("CI"):
            raise
        pytest.skip(f"PostgreSQL not reachable at {POSTGRES_ADMIN_URL}: {exc}")
    base, _, _ = POSTGRES_ADMIN_URL.rpartition("/")
    yield f"{base}/{name}"
    asyncio.run(_admin(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)'))


async def _truncate_postgres(url: str) -> None:
    import asyncpg

    connection = await asyncpg.connect(_asyncpg_dsn(url), timeout=5)
    try:
        tables = await connection.fetch(
            "SELECT tablename FROM pg_tables WHERE schemaname = 'public' "
            "AND tablename <> 'alembic_version'"
        )
        if tables:
            names = ", ".join(f'"{row["tablename"]}"' for row in tables)
            await connection.execute(f"TRUNCATE {names} CASCADE")
    finally:
        await connection.close()


@pytest.fixture(params=["sqlite", "postgres"])
def database_url(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[str]:
    """Each test runs once on SQLite and once on PostgreSQL, each time on empty tables."""
    if request.param == "sqlite":
        yield f"sqlite+aiosqlite:///{tmp_path / 'onebox.db'}"
        return
    url = request.getfixturevalue("postgres_url")
    asyncio.run(_truncate_postgres(url))
    yield url


def api_settings(tmp_path: Path, database_url: str, **overrides: object) -> Settings:
    """The settings every API test starts from: the fake model, small limits."""
    values: dict[str, object] = {
        "data_dir": tmp_path / "data",
        "database_url": database_url,
        "llm_provider": "fake",
        "model_name": "fake-echo",
        "max_tokens": 256,
        "max_message_chars": 2000,
        "max_request_bytes": 64 * 1024,
        **overrides,
    }
    return Settings(_env_file=None, **values)  # type: ignore[call-arg, arg-type]


@pytest.fixture
def settings(tmp_path: Path, database_url: str) -> Settings:
    return api_settings(tmp_path, database_url)


@pytest.fixture
def provider() -> FakeProvider:
    return FakeProvider(model_name="fake-echo", context_size=4096)


@dataclass
class AppUnderTest:
    app: FastAPI
    client: httpx.AsyncClient
    provider: ChatProvider


@pytest.fixture
async def api(settings: Settings, provider: FakeProvider) -> AsyncIterator[AppUnderTest]:
    """The real app with its lifespan run, reached through ASGI (no network)."""
    app = create_app(settings, provider=provider)
    async with app.router.lifespan_context(app):
        transport = httpx.ASGITransport(app=app)
        async with httpx.AsyncClient(transport=transport, base_url="http://onebox.test") as client:
            yield AppUnderTest(app=app, client=client, provider=provider)


def free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@dataclass
class LiveServer:
    url: str
    app: FastAPI
    settings: Settings
    provider: ChatProvider


@pytest.fixture
def live_server(tmp_path: Path) -> Iterator[LiveServer]:
    """A real uvicorn server on loopback with a slow, deterministic fake model."""
    yield from run_live_server(
        Settings(
            _env_file=None,  # type: ignore[call-arg]
            data_dir=tmp_path / "live",
            llm_provider="fake",
            model_name="fake-echo",
        ),
        FakeProvider(model_name="fake-echo", context_size=4096, token_delay=0.02),
    )


def run_live_server(
    settings: Settings,
    provider: ChatProvider,
    app_factory: Callable[[Settings], FastAPI] | None = None,
    *,
    bind: str = "127.0.0.1",
) -> Iterator[LiveServer]:
    """uvicorn as a user would start it (its defaults, proxy headers included) on ``bind``;
    the URL always points at loopback."""
    port = free_port()
    app = app_factory(settings) if app_factory else create_app(settings, provider=provider)
    server = uvicorn.Server(
        uvicorn.Config(app, host=bind, port=port, log_level="warning", lifespan="on")
    )
    thread = threading.Thread(target=server.run, name="live-server", daemon=True)
    thread.start()
    url = f"http://127.0.0.1:{port}"
    if not wait_until_ready(url, alive=thread.is_alive):
        server.should_exit = True
        raise RuntimeError("live server did not become ready")
    try:
        yield LiveServer(url=url, app=app, settings=settings, provider=provider)
    finally:
        server.should_exit = True
        thread.join(timeout=30)
