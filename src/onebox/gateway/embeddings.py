"""``POST /v1/embeddings``, OpenAI-compatible, served by the app's embedder.

Same auth, key model allow-lists, rate limits and error shape as chat completions. Bad
input is always a 4xx: token-id arrays are refused (this server embeds text), and so are
empty lists, empty strings, more than :data:`MAX_INPUTS` inputs or one longer than
:data:`MAX_INPUT_CHARS`.
"""

from __future__ import annotations

import asyncio
import base64
import logging
from typing import Any

import numpy as np
from pydantic import JsonValue, ValidationError

from onebox.core.errors import APIError
from onebox.embeddings.base import EmbeddingError, InputKind, Vectors
from onebox.gateway.auth import check_model_allowed
from onebox.gateway.schemas import MAX_INPUT_CHARS, MAX_INPUTS, EmbeddingRequest
from onebox.gateway.service import invalid_request
from onebox.llm.base import Usage
from onebox.state import AppState
from onebox.usage.service import GenerationMeter
from onebox.users.auth import Principal

logger = logging.getLogger(__name__)

_COUNT_INLINE_CHARS = 20_000  # above this, counting tokens moves off the event loop


def _invalid(message: str, param: str = "input", code: str | None = None) -> APIError:
    return APIError(400, message, "invalid_request_error", param=param, code=code)


def parse_embedding_request(body: bytes) -> EmbeddingRequest:
    try:
        return EmbeddingRequest.model_validate_json(body)
    except ValidationError as exc:
        raise invalid_request(exc) from exc


def input_texts(value: JsonValue) -> list[str]:
    """The texts to embed, or a 400 saying what is wrong with ``input``."""
    if isinstance(value, str):
        texts = [value]
    elif isinstance(value, list):
        if not value:
            raise _invalid("'input' must not be an empty array.")
        if len(value) > MAX_INPUTS:
            raise _invalid(f"'input' has {len(value)} items; at most {MAX_INPUTS} are allowed.")
        if all(isinstance(item, str) for item in value):
            texts = [item for item in value if isinstance(item, str)]
        elif all(_is_token_ids(item) for item in value):
            raise _invalid(
                "Token-id arrays are not supported on this server; send 'input' as text "
                "(a string or an array of strings).",
                code="unsupported_input",
            )
        else:
            raise _invalid("'input' must be a string or an array of strings.")
    elif value is None:
        raise _invalid("'input' is required.")
    else:
        raise _invalid("'input' must be a string or an array of strings.")
    for index, text in enumerate(texts):
        where = "'input'" if isinstance(value, str) else f"'input[{index}]'"
        if not text.strip():
            raise _invalid(f"{where} is empty.")
        if len(text) > MAX_INPUT_CHARS:
            raise _invalid(
                f"{where} has {len(text)} characters; at most {MAX_INPUT_CHARS} are allowed.",
                code="input_too_long",
            )
    return texts


def _is_token_ids(item: JsonValue) -> bool:
    def integer(value: JsonValue) -> bool:
        return isinstance(value, int) and not isinstance(value, bool)

    return integer(item) or (isinstance(item, list) and all(integer(value) for value in item))


def embedding_error(exc: EmbeddingError) -> APIError:
    """What a client sees when the embedder fails: the upstream's own 4xx where that is the
    client's fault, else 503 (unreachable, retried out) or 502 (a broken answer)."""
    status = getattr(exc, "status_code", None)
    if status in (400, 413, 422):
        return APIError(400, str(exc), "invalid_request_error", code="upstream_rejected")
    if getattr(exc, "unavailable", False):
        return APIError(503, str(exc), "service_unavailable", code="upstream_unavailable")
    return APIError(502, str(exc), "api_error", code="upstream_error")


async def _count_tokens(state: AppState, texts: list[str]) -> int:
    count = state.embedder.count_tokens
    if sum(len(text) for text in texts) <= _COUNT_INLINE_CHARS:
        return sum(count(text) for text in texts)
    return await asyncio.to_thread(lambda: sum(count(text) for text in texts))


def _payload(vectors: Vectors, encoding: str) -> list[dict[str, Any]]:
    if encoding == "base64":  # little-endian float32 bytes, as OpenAI sends them
        rows: list[Any] = [
            base64.b64encode(row.astype("<f4").tobytes()).decode("ascii") for row in vectors
        ]
    else:
        rows = vectors.tolist()
    return [
        {"object": "embedding", "index": index, "embedding": row} for index, row in enumerate(rows)
    ]


async def create_embeddings(
    state: AppState, principal: Principal, body: bytes, ip: str
) -> dict[str, Any]:
    request = parse_embedding_request(body)
    embedder = state.embedder
    model = request.model or embedder.name
    check_model_allowed(principal, model)
    if model != embedder.name:
        raise APIError(
            404,
            f"The embedding model {model!r} does not exist; this server embeds with "
            f"{embedder.name!r}.",
            "invalid_request_error",
            param="model",
            code="model_not_found",
        )
    texts = input_texts(request.input)
    if request.dimensions is not None and request.dimensions != embedder.dimension:
        raise _invalid(
            f"The model {embedder.name!r} only makes {embedder.dimension}-dimensional vectors; "
            f"'dimensions' was {request.dimensions}.",
            param="dimensions",
        )
    kind: InputKind = "query" if request.input_type == "query" else "document"
    tokens = await _count_tokens(state, texts)
    admission = await state.limits.admit(principal, ip, estimated_tokens=tokens)
    meter = GenerationMeter()
    status: str = "cancelled"
    error_type: str | None = "cancelled"
    try:
        vectors = await embedder.embed(texts, kind=kind)
        status, error_type = "complete", None
    except EmbeddingError as exc:
        status, error_type = "error", type(exc).__name__
        logger.warning("Embedding request failed: %s", exc)
        raise embedding_error(exc) from exc
    finally:
        await admission.release(tokens)
        meter.finish()
        state.usage.record(
            meter.row(
                source="api",
                user_id=principal.user_id,
                api_key_id=principal.key.id if principal.key else None,
                model=embedder.name,
                requested_model=model,
                provider=state.settings.embedding_provider,
                usage=Usage(prompt_tokens=tokens, completion_tokens=0),
                cost_per_token=(0.0, 0.0),
                status=status,
                error_type=error_type,
            )
        )
    if vectors.shape != (len(texts), embedder.dimension) or not np.all(np.isfinite(vectors)):
        raise APIError(500, "The embedder returned malformed vectors.", "api_error")
    return {
        "object": "list",
        "data": _payload(vectors, request.encoding_format),
        "model": embedder.name,
        "usage": {"prompt_tokens": tokens, "total_tokens": tokens},
    }
