"""``onebox serve``: one process, or several worker processes sharing the port.

With ``--workers N`` uvicorn's supervisor starts N processes that accept on one listening
socket (and restarts any that dies). Each builds its own app from the environment, so the
command line's settings travel as ``ONEBOX_*`` variables. What one process can hold alone
decides what is allowed:

* the embedded Qdrant Edge index is a folder only one process may open, so several
  workers need a shared vector backend (a Qdrant server, or pgvector);
* ``memory://`` rate-limit counters live inside one process, so N workers would each
  grant the whole limit: several workers need Redis (``ONEBOX_RATE_LIMIT_STORAGE``);
* the in-process job worker runs in every process, which is safe: a job is claimed by one
  conditional UPDATE, and notifications only wake the local loop sooner (the others poll);
* the database is migrated, the secret key created and the local user added once, by the
  parent, before any worker starts;
* a web UI reply runs in the process that started it: closing its stream stops it there
  (the UI's stop button does so), while the "already generating" check and
  ``POST …/stop`` only see their own process's replies;
* the embedded model and the local embedding model are loaded once per worker (memory and
  threads times N): several workers pay off in front of remote engines.

Every process moves what start-up built (models, the app, imported libraries) out of the
garbage collector's sight once it is ready (``gc.freeze``): a full collection would
otherwise walk those hundreds of thousands of objects, a pause of a few hundred
milliseconds on a loaded event loop.
"""

from __future__ import annotations

import asyncio
import gc
import os
from collections.abc import AsyncIterator, Callable
from contextlib import AbstractAsyncContextManager, asynccontextmanager
from typing import TYPE_CHECKING, Any

from onebox.core.settings import Settings

if TYPE_CHECKING:
    from fastapi import FastAPI

MAX_WORKERS = 64


def workers_problems(settings: Settings, workers: int) -> list[str]:
    """Why ``settings`` cannot run as ``workers`` processes (empty when they can)."""
    if workers <= 1:
        return []
    problems = []
    if settings.vector_backend == "edge":
        problems.append(
            "the Qdrant Edge index (ONEBOX_VECTOR_BACKEND=edge) lives inside one process; "
            "set ONEBOX_VECTOR_BACKEND=qdrant with ONEBOX_QDRANT_URL=http(s)://… or "
            "ONEBOX_VECTOR_BACKEND=pgvector"
        )
    elif settings.vector_backend == "qdrant" and not (settings.qdrant_url or "").startswith(
        ("http://", "https://")
    ):
        problems.append(
            f"ONEBOX_QDRANT_URL={settings.qdrant_url!r} is qdrant-client's local mode, inside "
            "one process; point it at a Qdrant server (http(s)://host:6333)"
        )
    if settings.rate_limit_storage.startswith(("memory:", "async+memory:")):
        problems.append(
            "ONEBOX_RATE_LIMIT_STORAGE=memory:// counts inside one process, so every worker "
            "would grant the whole limit; set it to redis://host:6379/0"
        )
    return problems


def workers_warnings(settings: Settings, workers: int) -> list[str]:
    """What works with several workers but costs memory or CPU per process."""
    if workers <= 1:
        return []
    notes = []
    if settings.models_file is None and settings.llm_provider == "llamacpp":
        notes.append(
            f"every worker loads its own copy of the embedded model ({settings.threads} "
            "threads each); several workers pay off in front of remote inference engines"
        )
    if settings.events_url.startswith("memory:"):
        notes.append(
            "ONEBOX_EVENTS_URL=memory:// keeps running replies inside one worker: a page "
            "that reattaches, a Stop or a second message may reach another; set it to "
            "redis://host:6379/0"
        )
    if settings.embedding_provider == "local":
        notes.append("every worker loads its own copy of the local embedding model")
    return notes


async def prepare_shared(settings: Settings) -> None:
    """What every worker would otherwise race to do at start: the data dir and secret key,
    the migrations and the single-user-mode owner."""
    from onebox.core.db import create_engine, create_sessionmaker
    from onebox.core.migrate import upgrade
    from onebox.users.service import ensure_local_user

    settings.prepare_data_dir()
    settings.effective_secret_key()
    engine = create_engine(settings.resolved_database_url)
    try:
        await upgrade(engine)
        await ensure_local_user(create_sessionmaker(engine))
    finally:
        await engine.dispose()


def freeze_after_startup(app: FastAPI) -> FastAPI:
    """Once the app's lifespan has built everything, collect start-up garbage and freeze
    the survivors (see the module doc). Only for serving processes: a test run that builds
    many apps would keep their cycles forever."""
    lifespan: Callable[[Any], AbstractAsyncContextManager[Any]] = app.router.lifespan_context

    @asynccontextmanager
    async def frozen(app: Any) -> AsyncIterator[Any]:
        async with lifespan(app) as state:
            gc.collect()
            gc.freeze()
            yield state

    app.router.lifespan_context = frozen
    return app


def serving_app(settings: Settings) -> FastAPI:
    from onebox.app import create_app

    return freeze_after_startup(create_app(settings))


def worker_app() -> FastAPI:
    """uvicorn's factory in each worker process: the settings come from the environment
    the parent exported (see :func:`run`)."""
    return serving_app(Settings())


def export_settings(settings: Settings) -> None:
    """What the command line set, for the worker processes (they read only the
    environment and the ``.env`` file)."""
    os.environ["ONEBOX_DATA_DIR"] = str(settings.data_dir.resolve())
    os.environ["ONEBOX_HOST"] = settings.host
    os.environ["ONEBOX_PORT"] = str(settings.port)


def _http_protocol() -> type[asyncio.Protocol] | None:
    """uvicorn's httptools protocol, sending each response's head with its body (see
    :mod:`onebox.serving_protocol`); None without httptools (uvicorn picks h11)."""
    try:
        from onebox.serving_protocol import http_protocol
    except ImportError:
        return None
    return http_protocol()


def run(settings: Settings, workers: int = 1) -> None:
    """Serve until interrupted. Raises ``ValueError`` listing what stops ``workers``
    processes from sharing this configuration."""
    import uvicorn

    if not 1 <= workers <= MAX_WORKERS:
        raise ValueError(f"--workers must be between 1 and {MAX_WORKERS}")
    problems = workers_problems(settings, workers)
    if problems:
        raise ValueError(
            f"{workers} workers cannot share this configuration: " + "; ".join(problems)
        )
    from onebox.core.logging import configure_logging

    configure_logging(settings.log_level)
    options: dict[str, Any] = {
        "host": settings.host,
        "port": settings.port,
        "log_level": settings.log_level.lower(),
        # uvicorn's loggers go through ours (JSON); the app writes its own access lines.
        "log_config": None,
        "access_log": False,
        "timeout_graceful_shutdown": 10,
        # The client address is Onebox's to work out, from ONEBOX_TRUSTED_PROXIES alone.
        "proxy_headers": False,
    }
    protocol = _http_protocol()
    if protocol is not None:
        options["http"] = protocol
    if workers == 1:
        uvicorn.run(serving_app(settings), **options)
        return
    asyncio.run(prepare_shared(settings))
    export_settings(settings)
    uvicorn.run("onebox.serving:worker_app", factory=True, workers=workers, **options)
