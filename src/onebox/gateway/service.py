"""The OpenAI-compatible gateway: resolve the model, stream with fallbacks, speak the wire
format, record usage. Kept lean: it is the hot path of every API call."""

from __future__ import annotations

import contextlib
import json
import time
import uuid
from collections.abc import AsyncGenerator, AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from pydantic import ValidationError

from onebox.core.errors import APIError
from onebox.core.guarding import Guard, OutputBlockedError
from onebox.core.settings import Settings
from onebox.documents.answering import stored_sources, with_sources
from onebox.documents.retrieval import Source
from onebox.gateway.auth import check_model_allowed
from onebox.gateway.schemas import ChatCompletionRequest
from onebox.guard import GuardViolation, MessageLimits, PromptSecret, clean_messages
from onebox.llm.base import (
    ChatMessage,
    ChatRequest,
    ContextWindowExceededError,
    GenerationParams,
    ProviderError,
    ProviderOverloadedError,
    ProviderTimeoutError,
    ProviderUnavailableError,
    StreamChunk,
    TextDelta,
    Usage,
)
from onebox.llm.context import fit_to_context
from onebox.llm.registry import ModelEntry, ModelRegistry, UnknownModelError
from onebox.llm.router import Route, stream_with_fallbacks
from onebox.ratelimit import Admission
from onebox.usage.service import GenerationMeter, UsageRecorder
from onebox.users.auth import Principal

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


def _guarded_input(
    request: ChatCompletionRequest, settings: Settings, guard: Guard
) -> list[ChatMessage]:
    messages = [ChatMessage(_ROLES[m.role], m.text()) for m in request.messages]  # type: ignore[arg-type]
    try:
        messages = clean_messages(
            messages, MessageLimits(max_message_chars=settings.max_message_chars)
        )
    except GuardViolation as exc:
        raise APIError(
            400, exc.message, "invalid_request_error", param=exc.param, code=exc.code
        ) from exc
    for index in range(len(messages) - 1, -1, -1):
        if messages[index].role == "user":
            verdict = guard.check_input(messages[index].content)
            messages[index] = ChatMessage("user", verdict.text)
            break
    return messages


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
    """One /v1/chat/completions call, from validated request to recorded usage."""

    request: ChatCompletionRequest
    principal: Principal
    route: Route
    registry: ModelRegistry
    usage_recorder: UsageRecorder
    chat_request: ChatRequest
    completion_id: str = field(default_factory=lambda: f"chatcmpl-{uuid.uuid4().hex}")
    created: int = field(default_factory=lambda: int(time.time()))
    meter: GenerationMeter = field(default_factory=GenerationMeter)
    usage: Usage | None = None
    guard: Guard | None = None
    prompt_secret: PromptSecret | None = None
    admission: Admission | None = None
    sources: list[Source] | None = None
    _stream: AsyncGenerator[StreamChunk] | None = None
    _recorded: bool = False

    def prompt_tokens(self) -> int:
        provider = self.route.requested.provider
        return provider.count_tokens(self.chat_request.messages)

    @classmethod
    def prepare(
        cls,
        request: ChatCompletionRequest,
        registry: ModelRegistry,
        usage_recorder: UsageRecorder,
        settings: Settings,
        principal: Principal,
        guard: Guard,
        sources: list[Source] | None = None,
    ) -> Completion:
        check_model_allowed(principal, request.model)
        entry = resolve_model(registry, request.model)
        check_model_allowed(principal, entry.name)
        defaults = entry.spec.defaults
        params = GenerationParams(
            max_tokens=request.max_completion_tokens
            or request.max_tokens
            or defaults.max_tokens
            or settings.max_tokens,
            temperature=_first(request.temperature, defaults.temperature, settings.temperature),
            top_p=_first(request.top_p, defaults.top_p, 1.0),
            stop=request.stop_sequences(),
            seed=request.seed,
        )
        messages = _guarded_input(request, settings, guard)
        if sources is not None:
            messages = with_sources(messages, sources)
        messages, prompt_secret = guard.protect_system_prompt(messages)
        try:
            messages = fit_to_context(
                messages,
                entry.provider.count_tokens,
                entry.provider.context_size,
                params.max_tokens,
            )
        except ContextWindowExceededError as exc:
            raise APIError(
                400, str(exc), "invalid_request_error", param="messages",
                code="context_length_exceeded",
            ) from exc  # fmt: skip
        return cls(
            request=request,
            principal=principal,
            route=Route(requested=entry),
            registry=registry,
            usage_recorder=usage_recorder,
            chat_request=ChatRequest(messages=messages, params=params),
            guard=guard,
            prompt_secret=prompt_secret,
            sources=sources,
        )

    def _sources_json(self, answer: str | None) -> str:
        """``,"sources":[…]`` to splice into a chunk; ``used`` once the answer is known."""
        if self.sources is None:
            return ""
        if answer is None:
            listed: list[dict[str, Any]] = [s.public() for s in self.sources]
        else:
            listed = stored_sources(self.sources, answer)
        return f',"sources":{json.dumps(listed, separators=(",", ":"))}'

    async def first_chunk(self) -> StreamChunk:
        """Starts generation and waits for its first chunk, so failures before any output
        become proper HTTP errors (429, 503, …) instead of a broken stream."""
        stream = stream_with_fallbacks(self.registry, self.route, self.chat_request)
        self._stream = (
            self.guard.filter_output(stream, self.prompt_secret) if self.guard else stream
        )
        try:
            return await anext(self._stream)
        except ProviderError as exc:
            await self._close("error", type(exc).__name__)
            raise provider_error(exc) from exc
        except BaseException:
            await self._close("cancelled", "cancelled")
            raise

    async def chunks(self, first: StreamChunk) -> AsyncIterator[StreamChunk]:
        assert self._stream is not None
        yield first
        async for chunk in self._stream:
            yield chunk

    def observe(self, chunk: StreamChunk) -> None:
        if isinstance(chunk, TextDelta):
            self.meter.token()
        else:
            self.usage = chunk

    async def _close(self, status: str, error_type: str | None = None) -> None:
        if self._stream is not None:
            with contextlib.suppress(Exception):
                await self._stream.aclose()
        self.record(status, error_type)
        if self.admission is not None:
            used = self.usage.prompt_tokens + self.usage.completion_tokens if self.usage else 0
            await self.admission.release(used)

    def record(self, status: str, error_type: str | None = None) -> None:
        if self._recorded:
            return
        self._recorded = True
        self.meter.finish()
        served = self.route.model
        price = served.spec.price
        self.usage_recorder.record(
            self.meter.row(
                source="api",
                user_id=self.principal.user_id,
                api_key_id=self.principal.key.id if self.principal.key else None,
                model=served.name,
                requested_model=self.route.requested.name,
                provider=served.spec.provider,
                usage=self.usage,
                cost_per_token=(price.input_per_1m / 1e6, price.output_per_1m / 1e6),
                status=status,
                error_type=error_type,
            )
        )

    # --- wire format -------------------------------------------------------------------

    def _chunk_prefix(self) -> str:
        model = json.dumps(self.route.model.name)
        return (
            f'{{"id":"{self.completion_id}","object":"chat.completion.chunk",'
            f'"created":{self.created},"model":{model},"system_fingerprint":null,"choices":'
        )

    async def sse(self, first: StreamChunk) -> AsyncIterator[bytes]:
        prefix = self._chunk_prefix()
        include_usage = bool(
            self.request.stream_options and self.request.stream_options.include_usage
        )
        status: str = "cancelled"
        error_type: str | None = "cancelled"
        answer: list[str] = []
        try:
            yield (
                f'data: {prefix}[{{"index":0,"delta":{{"role":"assistant","content":""}},'
                f'"logprobs":null,"finish_reason":null}}]{self._sources_json(None)}}}\n\n'
            ).encode()
            async for chunk in self.chunks(first):
                self.observe(chunk)
                if isinstance(chunk, TextDelta):
                    if self.sources is not None:
                        answer.append(chunk.text)
                    yield (
                        f'data: {prefix}[{{"index":0,"delta":{{"content":{json.dumps(chunk.text)}}},'
                        f'"logprobs":null,"finish_reason":null}}]}}\n\n'
                    ).encode()
            finish = _finish_reason(self.usage)
            used = self._sources_json("".join(answer)) if self.sources is not None else ""
            yield (
                f'data: {prefix}[{{"index":0,"delta":{{}},"logprobs":null,'
                f'"finish_reason":"{finish}"}}]{used}}}\n\n'
            ).encode()
            if include_usage:
                yield f"data: {prefix}[],{_usage_json(self.usage)[1:]}\n\n".encode()
            yield b"data: [DONE]\n\n"
            status, error_type = "complete", None
        except ProviderError as exc:
            status, error_type = ("partial" if self.meter.chunks else "error"), type(exc).__name__
            error = provider_error(exc)
            body = {"error": {"message": error.message, "type": error.error_type,
                              "param": None, "code": error.code}}  # fmt: skip
            yield f"data: {json.dumps(body)}\n\n".encode()
        finally:
            await self._close(status, error_type)

    async def collect(self, first: StreamChunk) -> dict[str, Any]:
        parts: list[str] = []
        status: str = "cancelled"
        error_type: str | None = "cancelled"
        try:
            async for chunk in self.chunks(first):
                self.observe(chunk)
                if isinstance(chunk, TextDelta):
                    parts.append(chunk.text)
            status, error_type = "complete", None
        except ProviderError as exc:
            status, error_type = ("partial" if parts else "error"), type(exc).__name__
            raise provider_error(exc) from exc
        finally:
            await self._close(status, error_type)
        result: dict[str, Any] = {
            "id": self.completion_id,
            "object": "chat.completion",
            "created": self.created,
            "model": self.route.model.name,
            "system_fingerprint": None,
            "choices": [
                {
                    "index": 0,
                    "message": {"role": "assistant", "content": "".join(parts)},
                    "logprobs": None,
                    "finish_reason": _finish_reason(self.usage),
                }
            ],
            "usage": json.loads(_usage_json(self.usage))["usage"],
        }
        if self.sources is not None:
            result["sources"] = stored_sources(self.sources, "".join(parts))
        return result


def _first(*values: float | None) -> float:
    return next(value for value in values if value is not None)


def _finish_reason(usage: Usage | None) -> str:
    return "length" if usage is not None and usage.finish_reason == "length" else "stop"


def _usage_json(usage: Usage | None) -> str:
    prompt = usage.prompt_tokens if usage else 0
    completion = usage.completion_tokens if usage else 0
    return (
        f'{{"usage":{{"prompt_tokens":{prompt},"completion_tokens":{completion},'
        f'"total_tokens":{prompt + completion}}}}}'
    )
