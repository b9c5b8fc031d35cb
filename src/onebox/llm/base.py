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

ChatRole = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: ChatRole
    content: str


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


@dataclass(frozen=True, slots=True)
class TextDelta:
    text: str


FinishReason = Literal["stop", "length", "cancelled"]


@dataclass(frozen=True, slots=True)
class Usage:
    prompt_tokens: int
    completion_tokens: int
    finish_reason: FinishReason = "stop"
    queue_ms: float | None = None  # time spent waiting for the engine before decoding began


StreamChunk = TextDelta | Usage


@dataclass(frozen=True, slots=True)
class Capabilities:
    streaming: bool = True
    exact_token_count: bool = False
    local: bool = False


class ProviderError(Exception):
    """A generation failed for a reason the caller should show to the user."""


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

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        """Prompt tokens for these messages. Providers without a tokenizer estimate
        conservatively (about 3 characters a token plus per-message overhead)."""
        return sum(len(message.content) // 3 + 8 for message in messages) + 3
