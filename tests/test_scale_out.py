"""The scale-out topology, natively: the app and a separate `onebox worker` process share
PostgreSQL 18 (data and pgvector index) and a Redis Celery broker; a document uploaded to
the app is ingested by the worker and answered from by the app."""

from __future__ import annotations

import asyncio
import os
import signal
import subprocess
import sys
import uuid
from collections.abc import AsyncIterator
from pathlib import Path

import httpx
import pytest

from onebox.app import create_app
from onebox.core.settings import Settings
from onebox.llm.fake import FakeProvider
from tests.documents_helpers import create_collection, upload, wait_for_documents
from tests.pg18 import pg18_url  # noqa: F401 - a fixture
from tests.test_celery_worker import broker_url  # noqa: F401 - a fixture

pytestmark = [pytest.mark.anyio, pytest.mark.timeout(240)]

MANUAL = b"""# Pump manual

## Priming

Before the first start, open the bleed screw and fill the housing with water until it
overflows. The Vardo pump must never run dry for more than ten seconds.
"""


@pytest.fixture
async def database(pg18_url: str) -> AsyncIterator[str]:  # noqa: F811
    import asyncpg

    name = f"onebox_scale_{uuid.uuid4().hex[:8]}"
    admin = await asyncpg.connect(pg18_url)
    try:
        await admin.execute(f'CREATE DATABASE "{name}"')
    finally:
        await admin.close()
    base, _, query = pg18_url.partition("?")
    url = base.rsplit("/", 1)[0] + f"/{name}?{query}"
    yield url.replace("postgresql://", "postgresql+asyncpg://", 1)
    admin = await asyncpg.connect(pg18_url)
    try:
        await admin.execute(f'DROP DATABASE IF EXISTS "{name}" WITH (FORCE)')
    finally:
        await admin.close()


def start_worker(env: dict[str, str], data_dir: Path, log_path: Path) -> subprocess.Popen[bytes]:
    """`onebox worker`, the real CLI, in its own process group (the pool children too)."""
    with log_path.open("wb") as log:
        return subprocess.Popen(
            [sys.executable, "-m", "onebox", "worker", "--data-dir", str(data_dir)],
            env={**os.environ, **env},
            stdout=log,
            stderr=subprocess.STDOUT,
            start_new_session=True,
        )


async def test_worker_process_ingests_and_the_app_answers(
    database: str,
    broker_url: str,  # noqa: F811
    tmp_path: Path,
) -> None:
    env = {
        "ONEBOX_DATABASE_URL": database,
        "ONEBOX_JOBS_BACKEND": "celery",
        "ONEBOX_CELERY_BROKER_URL": broker_url,
        "ONEBOX_VECTOR_BACKEND": "pgvector",
        "ONEBOX_LLM_PROVIDER": "fake",
    }
    settings = Settings(
        _env_file=None,  # type: ignore[call-arg]
        data_dir=tmp_path / "app",
        database_url=database,
        jobs_backend="celery",
        celery_broker_url=broker_url,
        vector_backend="pgvector",
        llm_provider="fake",
        model_name="fake-cite",
    )
    app = create_app(
        settings, provider=FakeProvider(model_name="fake-cite", context_size=4096, cite=True)
    )
    worker = start_worker(env, tmp_path / "worker", tmp_path / "worker.log")
    try:
        async with app.router.lifespan_context(app):
            transport = httpx.ASGITransport(app=app)
            async with httpx.AsyncClient(transport=transport, base_url="http://t") as client:
                collection = await create_collection(client, "pumps")
                response = await upload(client, collection["id"], [("manual.md", MANUAL)])
                assert response.status_code == 202, response.text
                try:
                    items = await wait_for_documents(
                        client, collection["id"], expected=1, max_wait=150
                    )
                except AssertionError:
                    raise AssertionError((tmp_path / "worker.log").read_text()[-4000:]) from None
                assert items[0]["status"] == "ready", items
                assert items[0]["job"]["status"] == "done"
                conversation = (
                    await client.post(
                        "/api/conversations", json={"collection_ids": [collection["id"]]}
                    )
                ).json()
                reply = await client.post(
                    f"/api/conversations/{conversation['id']}/messages",
                    json={"content": "How long may the Vardo pump run dry?"},
                )
                assert "event: sources" in reply.text
                assert "manual.md" in reply.text
                assert "ten seconds" in reply.text
        log_text = (tmp_path / "worker.log").read_text()
        assert "onebox.run_job" in log_text or "succeeded" in log_text, log_text[-2000:]
    finally:
        if worker.poll() is None:
            os.killpg(worker.pid, signal.SIGTERM)
        try:
            worker.wait(timeout=30)
        except subprocess.TimeoutExpired:
            os.killpg(worker.pid, signal.SIGKILL)
        await asyncio.sleep(0)
