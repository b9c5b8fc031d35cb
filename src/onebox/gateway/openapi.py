"""What ``/v1`` answers, for the OpenAPI document. The routes build these bodies by hand
(the hot path streams pre-serialised JSON), so the models here only describe them;
tests/test_openapi_conformance.py checks real answers against them."""

from __future__ import annotations

from typing import Any, Literal

from pydantic import BaseModel, Field

from onebox.core.openapi import ErrorResponse, documented_error, model_schema
from onebox.documents.schemas import SourceOut
from onebox.gateway.schemas import ChatCompletionRequest

SOURCES_DESCRIPTION = (
    "Onebox extension, present when the request named `collections`: the retrieved "
    "passages, each with `used` set when the answer cites it"
)


class AssistantMessage(BaseModel):
    role: Literal["assistant"]
    content: str


class CompletionChoice(BaseModel):
    index: int
    message: AssistantMessage
    logprobs: None
    finish_reason: Literal["stop", "length"]


class CompletionUsage(BaseModel):
    prompt_tokens: int
    completion_tokens: int
    total_tokens: int


class ChatCompletion(BaseModel):
    id: str
    object: Literal["chat.completion"]
    created: int
    model: str
    system_fingerprint: str | None
    choices: list[CompletionChoice]
    usage: CompletionUsage
    sources: list[SourceOut] | None = Field(default=None, description=SOURCES_DESCRIPTION)


class ChunkDelta(BaseModel):
    role: Literal["assistant"] | None = None
    content: str | None = None


class ChunkChoice(BaseModel):
    index: int
    delta: ChunkDelta
    logprobs: None
    finish_reason: Literal["stop", "length"] | None


class ChatCompletionChunk(BaseModel):
    id: str
    object: Literal["chat.completion.chunk"]
    created: int
    model: str
    system_fingerprint: str | None
    choices: list[ChunkChoice]
    usage: CompletionUsage | None = Field(
        default=None, description="In the last chunk, with `stream_options.include_usage`"
    )
    sources: list[SourceOut] | None = Field(default=None, description=SOURCES_DESCRIPTION)


class Embedding(BaseModel):
    object: Literal["embedding"]
    index: int
    embedding: list[float] | str = Field(
        description="The vector, or its little-endian float32 bytes in base64 when "
        "`encoding_format` is `base64`"
    )


class EmbeddingUsage(BaseModel):
    prompt_tokens: int
    total_tokens: int


class EmbeddingList(BaseModel):
    object: Literal["list"]
    data: list[Embedding]
    model: str
    usage: EmbeddingUsage


STREAM_DESCRIPTION = (
    "With `stream: true`: server-sent events, each `data:` line one "
    "`chat.completion.chunk` object (the first carries `sources` when the request named "
    "`collections`, the last before `[DONE]` the usage when "
    "`stream_options.include_usage` is set), then `data: [DONE]`. A failure after the "
    "first event arrives as one `data:` line holding an error object."
)


def stream_event_schema() -> dict[str, Any]:
    """One server-sent event (``schema`` of an event stream describes each event): its
    ``data`` is JSON, a chunk or an error, or the closing ``[DONE]``."""
    return {
        "type": "object",
        "description": STREAM_DESCRIPTION,
        "required": ["data"],
        "properties": {
            "event": {"type": "string"},
            "data": {
                "anyOf": [
                    {"const": "[DONE]"},
                    {
                        "type": "string",
                        "contentMediaType": "application/json",
                        "contentSchema": {
                            "anyOf": [
                                model_schema(ChatCompletionChunk, "serialization"),
                                model_schema(ErrorResponse, "serialization"),
                            ]
                        },
                    },
                ]
            },
        },
    }


UPSTREAM_ERRORS: dict[int | str, dict[str, Any]] = {
    status: documented_error(status) for status in (502, 503, 504)
}


def chat_completions_operation() -> dict[str, Any]:
    """The OpenAPI operation of ``POST /v1/chat/completions`` (gateway/asgi.py)."""
    responses: dict[str, Any] = {
        "200": {
            "description": "The completion: one JSON object, or a stream of events",
            "content": {
                "application/json": {"schema": model_schema(ChatCompletion, "serialization")},
                "text/event-stream": {"schema": stream_event_schema()},
            },
        },
        # An upstream model's own refusal (4xx) is passed on with its status.
        "422": documented_error(422, "The upstream model refused the request"),
    }
    responses.update({str(status): body for status, body in UPSTREAM_ERRORS.items()})
    return {
        "tags": ["openai"],
        "summary": "Chat completion (OpenAI-compatible)",
        "operationId": "chat_completions_v1_chat_completions_post",
        "description": "OpenAI's chat completions, with Onebox's `collections` extension "
        "for answers grounded in your documents. Authenticate with "
        "`Authorization: Bearer <key>`.",
        "requestBody": {
            "required": True,
            "content": {"application/json": {"schema": model_schema(ChatCompletionRequest)}},
        },
        "responses": responses,
    }
