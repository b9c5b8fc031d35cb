"""Everything the app builds in its lifespan, reachable from requests and the CLI. This is
the app's wiring, above every business area; no area imports it."""

from __future__ import annotations

import time
from dataclasses import dataclass, field

import httpx
from sqlalchemy.ext.asyncio import AsyncEngine, AsyncSession, async_sessionmaker

from onebox.chat.generation import GenerationManager
from onebox.chat.turn import Turns
from onebox.core.settings import Settings
from onebox.documents.search.retrieval import Retriever
from onebox.embeddings.base import Embedder
from onebox.guard.service import Guard
from onebox.jobs.dispatch import JobDispatcher
from onebox.llm.registry import ModelRegistry
from onebox.observability.sampler import Sampler
from onebox.ratelimit.requests import RequestLimiter
from onebox.usage.service import UsageRecorder
from onebox.users.auth import Authenticator
from onebox.vectors.base import VectorIndex


@dataclass
class AppState:
    settings: Settings
    engine: AsyncEngine
    sessionmaker: async_sessionmaker[AsyncSession]
    http: httpx.AsyncClient
    models: ModelRegistry
    usage: UsageRecorder
    generations: GenerationManager
    turns: Turns
    auth: Authenticator
    limits: RequestLimiter
    guard: Guard
    local_user_id: str
    embedder: Embedder
    index: VectorIndex
    jobs: JobDispatcher
    retriever: Retriever
    started_at: float = field(default_factory=time.time)
    sampler: Sampler | None = None  # the metrics' clock; servers only, not the CLI
