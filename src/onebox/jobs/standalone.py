"""Builds the machinery job handlers use, for processes other than the app (Celery workers,
tools); the app builds the same pieces in its lifespan and shares them."""

from __future__ import annotations

from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx

from onebox.core.db import create_engine, create_sessionmaker
from onebox.core.metrics import configure_multiprocess, metrics_directory
from onebox.core.migrate import upgrade
from onebox.core.settings import Settings
from onebox.jobs.base import JobServices
from onebox.jobs.sandbox import SandboxPool


@asynccontextmanager
async def open_job_services(settings: Settings) -> AsyncIterator[JobServices]:
    """Database (migrated), HTTP client, parsing sandbox, embedder (loaded) and vector
    index (opened); closed in reverse order. Bound to the running event loop."""
    # Imported here: they pull in torch and vector engines, which a process that never
    # runs a job (or only test kinds) should not pay for at import time.
    from onebox.embeddings.factory import build_embedder
    from onebox.vectors.factory import build_index

    settings.prepare_data_dir()
    # Job metrics land beside the app's when this worker shares its host and data dir.
    configure_multiprocess(metrics_directory(settings))
    async with AsyncExitStack() as stack:
        engine = create_engine(settings.resolved_database_url)
        stack.push_async_callback(engine.dispose)
        await upgrade(engine)
        http = httpx.AsyncClient(timeout=settings.fetch_timeout_seconds, follow_redirects=False)
        stack.push_async_callback(http.aclose)
        sandbox = SandboxPool.for_ingestion(settings)  # its processes start on first use
        stack.push_async_callback(sandbox.close)
        embedder = build_embedder(settings, http)
        stack.push_async_callback(embedder.close)
        await embedder.start()
        index = build_index(settings)
        stack.push_async_callback(index.close)
        await index.open(embedder.dimension)
        yield JobServices(
            settings=settings,
            sessionmaker=create_sessionmaker(engine),
            embedder=embedder,
            index=index,
            http=http,
            sandbox=sandbox,
        )
