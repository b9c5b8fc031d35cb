"""The provider interface every LLM engine implements.

A provider has one required method, :meth:`ChatProvider.stream_chat`, which yields
:class:`TextDelta` chunks and finishes with exactly one :class:`Usage`. Everything else
(token counting, readiness, closing) has a sensible default.
"""

from __future__ import annotations

import abc
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Literal

from onebox.core.messages import ChatMessage as ChatMessage
from onebox.core.messages import ChatRole as ChatRole
from onebox.core.messages import FinishReason as FinishReason
from onebox.core.messages import ProviderError as ProviderError
from onebox.core.messages import StreamChunk as StreamChunk
from onebox.core.messages import TextDelta as TextDelta
from onebox.core.messages import Usage as Usage


@dataclass(frozen=True, slots=True)
class GenerationParams:
    max_tokens: int
    temperature: float = 0.7
    top_p: float = 0.95
    stop: tuple[str, ...] = ()
    seed: int | None = None


@dataclass(frozen=True, slots=True)
class ChatRequest:
    messages: Sequence[ChatMessage]
    params: GenerationParams
    # "title": a conversation's title is being asked for (chat/titles.py), not a reply.
    purpose: Literal["chat", "title"] = "chat"


@dataclass(frozen=True, slots=True)
class Capabilities:
    streaming: bool = True
    exact_token_count: bool = False
    local: bool = False


class ContextWindowExceededError(ProviderError):
    """The newest message alone does not fit the model's context window."""


class ProviderUnavailableError(ProviderError):
    """The provider could not start this request (connection refused, 5xx or 429 before the
    first token, in cooldown after repeated failures). Nothing was streamed, so the caller
    may fall back to another model."""


class ProviderTimeoutError(ProviderError):
    """The provider stopped answering within the configured time."""


class ProviderOverloadedError(ProviderError):
    """The engine's waiting queue is full; the client should retry after ``retry_after``."""

    def __init__(self, message: str, retry_after: float = 1.0) -> None:
        super().__init__(message)
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class EngineLoad:
    """How busy an engine that runs in this process is (for the metrics)."""

    running: int
    waiting: int
    batch_size: float  # sequences per decode step, averaged since the previous reading
    kv_cache_usage: float  # share of the KV cache in use, 0..1


@dataclass
class ChatProvider(abc.ABC):
    model_name: str
    context_size: int
    capabilities: Capabilities = field(default_factory=Capabilities)

    @abc.abstractmethod
    def stream_chat(self, request: ChatRequest) -> AsyncGenerator[StreamChunk]:
        """Yield text deltas, then one final Usage. Stops promptly when the consumer
        stops iterating (``aclose``) or the task running it is cancelled."""

    async def start(self) -> None:
        """Load weights or open connections. Called once from the app lifespan."""

    async def close(self) -> None:
        """Release what :meth:`start` acquired."""

    def is_ready(self) -> bool:
        return True

    def engine_load(self) -> EngineLoad | None:
        """Only for engines running in this process; upstreams report their own."""
        return None

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """Prompt tokens for these messages. Providers without a tokenizer estimate
        conservatively (about 3 characters a token plus per-message overhead)."""
        return sum(len(message.content) // 3 + 8 for message in messages) + 3
