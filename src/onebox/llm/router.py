"""Streams from a model, falling back in order to its configured fallbacks while nothing
has been streamed yet."""

from __future__ import annotations

import contextlib
import logging
from collections.abc import AsyncGenerator
from dataclasses import dataclass, field

from onebox.llm.base import (
    ChatRequest,
    ProviderError,
    ProviderOverloadedError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    StreamChunk,
)
from onebox.llm.registry import ModelEntry, ModelRegistry

logger = logging.getLogger(__name__)

# Failures that happen before the first token and say nothing about the request itself.
_RETRYABLE_ELSEWHERE = (ProviderUnavailableError, ProviderTimeoutError, ProviderOverloadedError)


@dataclass
class Route:
    requested: ModelEntry
    served_by: ModelEntry | None = None
    failures: list[tuple[str, str]] = field(default_factory=list)

    @property
    def model(self) -> ModelEntry:
        return self.served_by or self.requested


async def stream_with_fallbacks(
    registry: ModelRegistry, route: Route, request: ChatRequest
) -> AsyncGenerator[StreamChunk]:
    candidates = [route.requested, *registry.fallbacks_for(route.requested)]
    last_error: ProviderError | None = None
    for candidate in candidates:
        started = False
        try:
            async with contextlib.aclosing(candidate.provider.stream_chat(request)) as stream:
                async for chunk in stream:
                    if not started:
                        route.served_by = candidate
                        started = True
                    yield chunk
            return
        except _RETRYABLE_ELSEWHERE as exc:
            if started:
                raise
            route.failures.append((candidate.name, str(exc)))
            last_error = exc
            if candidate is not candidates[-1]:
                logger.warning("Model %s failed (%s); falling back", candidate.name, exc)
    assert last_error is not None
    raise last_error
