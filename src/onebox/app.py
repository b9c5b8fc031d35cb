"""Application factory. Nothing is built at import time: ``create_app`` wires it all in
the lifespan, so tests and several instances can each have their own."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import AsyncExitStack, asynccontextmanager

import httpx
from fastapi import FastAPI

from onebox import __version__
from onebox.chat.events import MARKER_TTL, build_event_log
from onebox.chat.generation import GenerationManager
from onebox.chat.routes import router as chat_router
from onebox.chat.transfer_routes import router as chat_transfer_router
from onebox.chat.turn import Turns
from onebox.core.access import AccessLog
from onebox.core.db import create_engine, create_sessionmaker
from onebox.core.errors import install_error_handlers
from onebox.core.logging import configure_logging
from onebox.core.metrics import configure_multiprocess, metrics_directory
from onebox.core.middleware import AllowEveryMethod, JsonBodyGuard, NulInUrlGuard
from onebox.core.migrate import upgrade
from onebox.core.openapi import install_openapi
from onebox.core.security import SecurityHeaders, WidgetCors
from onebox.core.settings import Settings
from onebox.documents.ingestion.sentences import queue_missing_sentences
from onebox.documents.routes import router as documents_router
from onebox.documents.search.retrieval import Retriever
from onebox.embeddings.factory import build_embedder
from onebox.gateway.asgi import GatewayHotPath
from onebox.gateway.routes import chat_completions_route
from onebox.gateway.routes import router as gateway_router
from onebox.guard.service import Guard
from onebox.health.routes import router as health_router
from onebox.jobs.base import JobServices
from onebox.jobs.factory import build_dispatcher
from onebox.jobs.routes import router as jobs_router
from onebox.jobs.sandbox import SandboxPool
from onebox.llm.base import ChatProvider
from onebox.llm.catalog import load_catalog
from onebox.llm.registry import ModelRegistry
from onebox.llm.routes import router as models_router
from onebox.observability.routes import router as observability_router
from onebox.observability.sampler import Sampler
from onebox.presets.routes import router as presets_router
from onebox.ratelimit import RateLimiter
from onebox.ratelimit.proxy_trust import DistrustServerProxyHeaders
from onebox.ratelimit.requests import RequestLimiter, limits_config
from onebox.sharing.routes import page_router as share_page_router
from onebox.sharing.routes import router as sharing_router
from onebox.state import AppState
from onebox.usage.routes import router as usage_router
from onebox.usage.service import UsageRecorder
from onebox.users.admin_routes import router as admin_router
from onebox.users.auth import Authenticator
from onebox.users.repository import UserRepository
from onebox.users.routes import router as accounts_router
from onebox.users.service import ensure_local_user
from onebox.vectors.factory import build_index
from onebox.web.bootstrap import router as bootstrap_router
from onebox.web.docs import router as docs_router
from onebox.web.routes import router as web_router
from onebox.web.routes import static_files
from onebox.widget.owner_routes import router as widget_owner_router
from onebox.widget.routes import router as widget_router

logger = logging.getLogger(__name__)

UPLOAD_FILES_PER_REQUEST = 4
API_PREFIXES = ("/api/", "/v1/", "/widget/")


def upstream_client(settings: Settings) -> httpx.AsyncClient:
    """One pooled client shared by every upstream model (keep-alive, HTTP/1.1), over
    :class:`~onebox.llm.transport.FastTransport` (asyncio protocols and httptools instead
    of httpcore/h11/anyio: several times less CPU per streamed request)."""
    from onebox.llm.transport import FastTransport

    transport = FastTransport(
        max_connections=settings.upstream_max_connections, keepalive_expiry=30
    )
    # Providers set their own per-request timeouts; this default only guards stray calls.
    return httpx.AsyncClient(transport=transport, timeout=60.0, follow_redirects=False)


@asynccontextmanager
async def open_state(
    settings: Settings,
    provider: ChatProvider | None = None,
    models: ModelRegistry | None = None,
) -> AsyncIterator[AppState]:
    """Database (migrated), models (loaded) and background machinery; torn down in
    reverse. Shared by the web app and the CLI so both run the same service layer."""
    settings.prepare_data_dir()
    settings.effective_secret_key()
    catalog = None if provider is not None or models is not None else load_catalog(settings)
    engine = create_engine(settings.resolved_database_url)
    async with AsyncExitStack() as stack:
        stack.push_async_callback(engine.dispose)
        await upgrade(engine)
        sessionmaker = create_sessionmaker(engine)
        local_user = await ensure_local_user(sessionmaker)
        await queue_missing_sentences(sessionmaker, settings)
        http = upstream_client(settings)
        stack.push_async_callback(http.aclose)
        if catalog is not None:
            models = ModelRegistry.build(catalog, settings, http)
        elif models is None:
            assert provider is not None
            models = ModelRegistry.single(provider, settings.llm_provider)
        stack.push_async_callback(models.close)
        await models.start()
        usage = UsageRecorder(sessionmaker)
        await usage.start()
        stack.push_async_callback(usage.close)
        config = limits_config(settings)
        limiter = await RateLimiter.from_config(config)
        stack.push_async_callback(limiter.aclose)
        guard = Guard(settings)
        generations = GenerationManager(
            build_event_log(
                settings.events_url,
                max_events=settings.reply_events_max,
                keep_seconds=settings.reply_events_keep_seconds,
                running_seconds=settings.reply_max_seconds + MARKER_TTL,
            ),
            max_seconds=settings.reply_max_seconds,
        )
        await generations.open()
        stack.push_async_callback(generations.shutdown)
        embedder = build_embedder(settings, http)
        await embedder.start()
        stack.push_async_callback(embedder.close)
        index = build_index(settings)
        await index.open(embedder.dimension)
        stack.push_async_callback(index.close)
        sandbox = SandboxPool.for_ingestion(settings)  # its processes start on first use
        stack.push_async_callback(sandbox.close)
        jobs = build_dispatcher(
            settings, JobServices(settings, sessionmaker, embedder, index, http, sandbox)
        )
        await jobs.start()
        stack.push_async_callback(jobs.close)
        limits = RequestLimiter(limiter, config, settings)
        retriever = Retriever(settings, embedder, index, guard)
        yield AppState(
            settings=settings,
            engine=engine,
            sessionmaker=sessionmaker,
            http=http,
            models=models,
            usage=usage,
            generations=generations,
            turns=Turns(settings, sessionmaker, models, guard, limits, usage, retriever),
            auth=Authenticator(settings, sessionmaker),
            limits=limits,
            guard=guard,
            local_user_id=local_user.id,
            embedder=embedder,
            index=index,
            jobs=jobs,
            retriever=retriever,
        )


def create_app(
    settings: Settings | None = None,
    *,
    provider: ChatProvider | None = None,
    models: ModelRegistry | None = None,
) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level)
        # Before any metric exists: worker processes on this data dir share the files.
        configure_multiprocess(metrics_directory(settings))
        async with open_state(settings, provider, models) as state:
            state.sampler = Sampler(state.models, state.turns.running)
            await state.sampler.start()
            app.state.onebox = state
            logger.info(
                "Onebox %s ready: models %s (default %s), database %s",
                __version__,
                ", ".join(entry.name for entry in state.models.entries()),
                state.models.default,
                state.engine.url.render_as_string(hide_password=True),
            )
            try:
                yield
            finally:
                await state.sampler.close()

    # /docs is web/docs.py (served offline); ReDoc is not served.
    app = FastAPI(
        title="Onebox",
        version=__version__,
        lifespan=lifespan,
        docs_url=None,
        redoc_url=None,
        swagger_ui_oauth2_redirect_url=None,
    )
    install_error_handlers(app)
    install_openapi(app, api_prefixes=API_PREFIXES)
    hot_route = chat_completions_route()
    app.add_middleware(GatewayHotPath, route=hot_route)  # first added: the innermost
    app.add_middleware(AllowEveryMethod, routes=lambda: app.router.routes)
    app.add_middleware(
        JsonBodyGuard,
        max_bytes=settings.max_request_bytes,
        prefixes=API_PREFIXES,
        upload_suffix="/documents",
        # Several files per request, each up to the per-file limit checked in the route.
        max_upload_bytes=settings.max_upload_bytes * UPLOAD_FILES_PER_REQUEST,
    )

    async def widget_origins() -> set[str]:
        state: AppState = app.state.onebox
        async with state.sessionmaker() as session:
            return await UserRepository(session).widget_origins()

    app.add_middleware(WidgetCors, load_origins=widget_origins)
    app.add_middleware(NulInUrlGuard)
    app.add_middleware(SecurityHeaders)
    # The request id is set before the routes run and every answer counts.
    app.add_middleware(AccessLog, log=settings.access_log)
    app.add_middleware(DistrustServerProxyHeaders)  # outermost: nothing sees a forged peer
    # The gateway's hot path is matched first: route matching is per request, and the
    # routers below hold dozens of routes.
    app.router.routes.append(hot_route)
    app.include_router(health_router)
    app.include_router(chat_router)
    app.include_router(chat_transfer_router)
    app.include_router(sharing_router)
    app.include_router(presets_router)
    app.include_router(share_page_router)
    app.include_router(models_router)
    app.include_router(documents_router)
    app.include_router(jobs_router)
    app.include_router(accounts_router)
    app.include_router(bootstrap_router)
    app.include_router(admin_router)
    app.include_router(usage_router)
    app.include_router(observability_router)
    app.include_router(widget_router)
    app.include_router(widget_owner_router)
    app.include_router(gateway_router)
    app.include_router(docs_router)
    app.include_router(web_router)
    app.mount("/static", static_files(), name="static")
    return app
