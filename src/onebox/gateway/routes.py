"""OpenAI-compatible HTTP API under /v1."""

from __future__ import annotations

import hmac
from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse, StreamingResponse
from pydantic import ValidationError

from onebox.core.deps import StateDep
from onebox.core.errors import APIError
from onebox.core.sse import SSE_HEADERS
from onebox.gateway.schemas import EmbeddingRequest
from onebox.gateway.service import Completion, invalid_request, parse_request, resolve_model


def require_api_token(request: Request, state: StateDep) -> None:
    token = state.settings.api_token
    if token is None:
        return
    scheme, _, given = request.headers.get("authorization", "").partition(" ")
    if scheme.lower() != "bearer" or not hmac.compare_digest(
        given.strip().encode(), token.get_secret_value().encode()
    ):
        raise APIError(
            401,
            "Invalid or missing API key. Send it as 'Authorization: Bearer <key>'.",
            "invalid_request_error",
            code="invalid_api_key",
            headers={"WWW-Authenticate": "Bearer"},
        )


ApiAuth = Annotated[None, Depends(require_api_token)]
router = APIRouter(prefix="/v1", tags=["openai"])


@router.post("/chat/completions", response_model=None)
async def chat_completions(
    request: Request, state: StateDep, _auth: ApiAuth
) -> StreamingResponse | JSONResponse:
    body = parse_request(await request.body())
    completion = Completion.prepare(body, state.models, state.usage, state.settings)
    first = await completion.first_chunk()
    if body.stream:
        return StreamingResponse(
            completion.sse(first), media_type="text/event-stream", headers=SSE_HEADERS
        )
    return JSONResponse(await completion.collect(first))


@router.get("/models")
async def list_models(state: StateDep, _auth: ApiAuth) -> dict[str, Any]:
    created = int(state.started_at)
    data = [
        {"id": public, "object": "model", "created": created, "owned_by": entry.spec.provider}
        for entry in state.models.entries()
        for public in (entry.name, *entry.spec.aliases)
    ]
    return {"object": "list", "data": data}


@router.get("/models/{model_id:path}")
async def get_model(model_id: str, state: StateDep, _auth: ApiAuth) -> dict[str, Any]:
    entry = resolve_model(state.models, model_id)
    return {
        "id": model_id,
        "object": "model",
        "created": int(state.started_at),
        "owned_by": entry.spec.provider,
    }


@router.post("/embeddings")
async def embeddings(request: Request, state: StateDep, _auth: ApiAuth) -> JSONResponse:
    try:
        body = EmbeddingRequest.model_validate_json(await request.body())
    except ValidationError as exc:
        raise invalid_request(exc) from exc
    raise APIError(
        404,
        f"The embedding model {body.model!r} does not exist: no embedding model is configured "
        "on this server yet.",
        "invalid_request_error",
        param="model",
        code="model_not_found",
    )
