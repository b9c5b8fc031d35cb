"""The message and stream-chunk types every layer speaks: what a chat turn is made of, what
a model stream yields, and the error a stream ends with. Ground floor: no imports."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

ChatRole = Literal["system", "user", "assistant"]


@dataclass(frozen=True, slots=True)
class ChatMessage:
    role: ChatRole
    content: str


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


class ProviderError(Exception):
    """A generation failed for a reason the caller should show to the user."""
