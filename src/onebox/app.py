"""Application factory. Nothing is built at import time: ``create_app`` wires it all in
the lifespan, so tests and several instances can each have their own."""

from __future__ import annotations

import logging
from collections.abc import AsyncIterator
from contextlib import asynccontextmanager

from fastapi import FastAPI

from onebox import __version__
from onebox.chat.generation import GenerationManager
from onebox.chat.routes import router as chat_router
from onebox.core.db import create_engine, create_sessionmaker
from onebox.core.errors import install_error_handlers
from onebox.core.logging import configure_logging
from onebox.core.middleware import JsonBodyGuard
from onebox.core.migrate import upgrade
from onebox.core.settings import Settings
from onebox.core.state import AppState
from onebox.health.routes import router as health_router
from onebox.llm.base import ChatProvider
from onebox.llm.registry import build_provider
from onebox.users.service import ensure_local_user
from onebox.web.routes import router as web_router
from onebox.web.routes import static_files

logger = logging.getLogger(__name__)


@asynccontextmanager
async def open_state(
    settings: Settings, provider: ChatProvider | None = None
) -> AsyncIterator[AppState]:
    """Database (migrated), provider (loaded) and background machinery; torn down in
    reverse. Shared by the web app and the CLI so both run the same service layer."""
    settings.prepare_data_dir()
    settings.effective_secret_key()
    engine = create_engine(settings.resolved_database_url)
    try:
        await upgrade(engine)
        sessionmaker = create_sessionmaker(engine)
        local_user = await ensure_local_user(sessionmaker)
        provider = provider or build_provider(settings)
        await provider.start()
        generations = GenerationManager(sessionmaker, provider)
        try:
            yield AppState(
                settings=settings,
                engine=engine,
                sessionmaker=sessionmaker,
                provider=provider,
                generations=generations,
                local_user_id=local_user.id,
            )
        finally:
            await generations.shutdown()
            await provider.close()
    finally:
        await engine.dispose()


def create_app(
    settings: Settings | None = None, *, provider: ChatProvider | None = None
) -> FastAPI:
    settings = settings or Settings()

    @asynccontextmanager
    async def lifespan(app: FastAPI) -> AsyncIterator[None]:
        configure_logging(settings.log_level)
        async with open_state(settings, provider) as state:
            app.state.onebox = state
            logger.info(
                "Onebox %s ready: model %s via %s, database %s",
                __version__,
                state.provider.model_name,
                settings.llm_provider,
                state.engine.url.render_as_string(hide_password=True),
            )
            yield

    app = FastAPI(title="Onebox", version=__version__, lifespan=lifespan)
    install_error_handlers(app)
    app.add_middleware(JsonBodyGuard, max_bytes=settings.max_request_bytes, prefixes=("/api/",))
    app.include_router(health_router)
    app.include_router(chat_router)
    app.include_router(web_router)
    app.mount("/static", static_files(), name="static")
    return app
