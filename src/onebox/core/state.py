"""Everything the app builds in its lifespan, reachable from requests and the CLI."""

from __future__ import annotations

from dataclasses import dataclass

from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from onebox.chat.generation import GenerationManager
from onebox.core.settings import Settings
from onebox.llm.base import ChatProvider


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    provider: ChatProvider
    generations: GenerationManager
    local_user_id: str
