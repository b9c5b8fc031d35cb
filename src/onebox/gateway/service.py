"""The OpenAI-compatible gateway: parse the request, resolve the model, hand the turn to
:mod:`onebox.chat.turn`, speak the wire format. Kept lean: it is the hot path of every API
call."""

from __future__ import annotations

import json
import os
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from onebox.chat.turn import ParamOverrides, Turn, TurnStatus
from onebox.core.errors import APIError
from onebox.gateway.schemas import ChatCompletionRequest
from onebox.guard.service import OutputBlockedError
from onebox.llm.base import (
    ChatMessage,
    ProviderError,
    ProviderOverloadedError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    StreamChunk,
    TextDelta,
    Usage,
)
from onebox.llm.registry import ModelEntry, ModelRegistry, UnknownModelError

_ROLES = {"system": "system", "developer": "system", "user": "user", "assistant": "assistant"}


def parse_request(body: bytes) -> ChatCompletionRequest:
    try:
        return ChatCompletionRequest.model_validate_json(body)
    except ValidationError as exc:
        raise invalid_request(exc) from exc


def invalid_request(exc: ValidationError) -> APIError:
    error = exc.errors()[0]
    if error["type"] == "json_invalid":
        return APIError(400, "The request body is not valid JSON.", "invalid_request_error")
    param = ".".join(str(part) for part in error["loc"]) or None
    message = f"Invalid value for '{param}': {error['msg']}" if param else error["msg"]
    return APIError(400, message, "invalid_request_error", param=param)


def resolve_model(registry: ModelRegistry, name: str) -> ModelEntry:
    try:
        return registry.resolve(name)
    except UnknownModelError as exc:
        raise APIError(
            404, f"{exc}.", "invalid_request_error", param="model", code="model_not_found"
        ) from exc


def turn_messages(request: ChatCompletionRequest) -> list[ChatMessage]:
    return [ChatMessage(_ROLES[m.role], m.text()) for m in request.messages]  # type: ignore[arg-type]


def param_overrides(request: ChatCompletionRequest) -> ParamOverrides:
    return ParamOverrides(
        max_tokens=request.max_completion_tokens or request.max_tokens,
        temperature=request.temperature,
        top_p=request.top_p,
        stop=request.stop_sequences(),
        seed=request.seed,
    )


def provider_error(exc: ProviderError) -> APIError:
    """What a client sees for a failure before the first token."""
    status = getattr(exc, "status_code", None)
    if isinstance(status, int) and 400 <= status < 500 and status != 429:
        return APIError(status, str(exc), "invalid_request_error", code="upstream_rejected")
    if isinstance(exc, OutputBlockedError):
        return APIError(400, str(exc), "invalid_request_error", code="output_blocked")
    if isinstance(exc, ProviderOverloadedError):
        retry_after = max(1, round(exc.retry_after))
        return APIError(
            429, str(exc), "rate_limit_error", code="engine_overloaded",
            headers={"Retry-After": str(retry_after)},
        )  # fmt: skip
    if isinstance(exc, ProviderTimeoutError):
        return APIError(504, str(exc), "timeout_error", code="upstream_timeout")
    if isinstance(exc, ProviderUnavailableError):
        return APIError(503, str(exc), "service_unavailable", code="upstream_unavailable")
    return APIError(502, str(exc), "api_error", code="upstream_error")


@dataclass
class Completion:
    """One /v1/chat/completions call in the OpenAI wire format, around a prepared turn."""

    request: ChatCompletionRequest
    turn: Turn
    completion_id: str = field(default_factory=lambda: f"chatcmpl-{os.urandom(16).hex()}")
    created: int = field(default_factory=lambda: int(time.time()))
    ending: bool = False  # sse() is handing out its last piece

    async def first_chunk(self) -> StreamChunk:
        """Failures before any output become proper HTTP errors (429, 503, …) instead of a
        broken stream."""
        try:
            return await self.turn.first_chunk()
        except ProviderError as exc:
            raise provider_error(exc) from exc

    def _sources_json(self, answered: bool) -> str:
        """``,"sources":[…]`` to splice into a chunk; ``used`` once the answer is known."""
        if not self.turn.retrieval_used:
            return ""
        listed = self.turn.sources_out(answered)
        sources = f',"sources":{json.dumps(listed, separators=(",", ":"))}'
        if answered:
            return sources
        support = json.dumps(self.turn.support_event(), separators=(",", ":"))
        return f'{sources},"onebox_support":{support}'

    # --- wire format -------------------------------------------------------------------

    def _chunk_prefix(self) -> str:
        model = json.dumps(self.turn.route.model.name)
        return (
            f'{{"id":"{self.completion_id}","object":"chat.completion.chunk",'
            f'"created":{self.created},"model":{model},"system_fingerprint":null,"choices":'
        )

    async def sse(self, first: StreamChunk) -> AsyncIterator[bytes]:
        """The stream's frames. Frames ready at the same moment travel as one piece (the
        opening with the first text, the finish with ``[DONE]``): each piece is a socket
        write and a trip through every ASGI layer. :attr:`ending` is set while the last
        piece is handed out, so the server can end the response with it."""
        prefix = self._chunk_prefix()
        include_usage = bool(
            self.request.stream_options and self.request.stream_options.include_usage
        )
        status: TurnStatus = "cancelled"
        error_type: str | None = "cancelled"
        error_message: str | None = None
        opening = (
            f'data: {prefix}[{{"index":0,"delta":{{"role":"assistant","content":""}},'
            f'"logprobs":null,"finish_reason":null}}]{self._sources_json(answered=False)}}}\n\n'
        ).encode()
        try:
            async for chunk in self.turn.chunks(first):
                if isinstance(chunk, TextDelta):
                    frame = (
                        f'data: {prefix}[{{"index":0,"delta":{{"content":{json.dumps(chunk.text)}}},'
                        f'"logprobs":null,"finish_reason":null}}]}}\n\n'
                    ).encode()
                    if opening:
                        frame, opening = opening + frame, b""
                    yield frame
            finish = _finish_reason(self.turn.usage)
            used = self._sources_json(answered=True)
            closing = [
                opening,
                f'data: {prefix}[{{"index":0,"delta":{{}},"logprobs":null,'
                f'"finish_reason":"{finish}"}}]{used}}}\n\n'.encode(),
            ]
            if include_usage:
                closing.append(f"data: {prefix}[],{_usage_json(self.turn.usage)[1:]}\n\n".encode())
            closing.append(b"data: [DONE]\n\n")
            self.ending = True
            yield b"".join(closing)
            status, error_type = "complete", None
        except ProviderError as exc:
            status, error_type = "error", type(exc).__name__
            error_message = str(exc)
            error = provider_error(exc)
            body = {"error": {"message": error.message, "type": error.error_type,
                              "param": None, "code": error.code}}  # fmt: skip
            self.ending = True
            yield opening + f"data: {json.dumps(body)}\n\n".encode()
        finally:
            await self.turn.finish(status, error_type, error_message)

    async def collect(self, first: StreamChunk) -> dict[str, Any]:
        status: TurnStatus = "cancelled"
        error_type: str | None = "cancelled"
        error_message: str | None = None
        try:
            async for _chunk in self.turn.chunks(first):
                pass
            status, error_type = "complete", None
        except ProviderError as exc:
            status, error_type, error_message = "error", type(exc).__name__, str(exc)
            raise provider_error(exc) from exc
        finally:
            await self.turn.finish(status, error_type, error_message)
        result: dict[str, Any] = {
            "id": self.completion_id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.turn.route.model.name,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(self.turn.text)},
                    "logprobs": None,
                    "finish_reason": _finish_reason(self.turn.usage),
                }
            ],
            "usage": json.loads(_usage_json(self.turn.usage))["usage"],
        }
        if self.turn.retrieval_used:
            result["sources"] = self.turn.sources_out(answered=True)
            result["onebox_support"] = self.turn.support_event()
        return result


def _finish_reason(usage: Usage | None) -> str:
    return "length" if usage is not None and usage.finish_reason == "length" else "stop"


def _usage_json(usage: Usage | None) -> str:
    prompt = usage.prompt_tokens if usage else 0
    completion = usage.completion_tokens if usage else 0
    return (
        f'{{"usage":{{"prompt_tokens":{prompt},"completion_tokens":{completion},'
        f'"total_tokens":{prompt + completion}}}}}'
    )
