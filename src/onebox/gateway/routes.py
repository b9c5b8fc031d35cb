"""OpenAI-compatible HTTP API under /v1."""

from __future__ import annotations

from typing import Annotated, Any

from fastapi import APIRouter, Depends, Request
from fastapi.responses import JSONResponse

from onebox.core.openapi import DocumentedRoute, json_body
from onebox.deps import StateDep
from onebox.gateway.asgi import ChatCompletionsEndpoint
from onebox.gateway.auth import authenticate_v1
from onebox.gateway.embeddings import create_embeddings
from onebox.gateway.openapi import UPSTREAM_ERRORS, EmbeddingList, chat_completions_operation
from onebox.gateway.schemas import EmbeddingRequest
from onebox.gateway.service import resolve_model
from onebox.users.auth import Principal


async def require_api_key(request: Request, state: StateDep) -> Principal:
    return await authenticate_v1(
        state, request.headers.get("authorization", ""), request.headers.get("origin", ""),
        request.client.host if request.client else None, request.headers,
    )  # fmt: skip


ApiAuth = Annotated[Principal, Depends(require_api_key)]
router = APIRouter(prefix="/v1", tags=["openai"])


# POST /v1/chat/completions is the bare ASGI endpoint in gateway/asgi.py (the hot path).
def chat_completions_route() -> DocumentedRoute:
    return DocumentedRoute(
        "/v1/chat/completions",
        endpoint=ChatCompletionsEndpoint(),
        methods=["POST"],
        operations={"post": chat_completions_operation()},
    )


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


@router.post(
    "/embeddings",
    response_model=None,
    responses={200: {"model": EmbeddingList}, **UPSTREAM_ERRORS},
    openapi_extra=json_body(EmbeddingRequest),
)
async def embeddings(request: Request, state: StateDep, principal: ApiAuth) -> JSONResponse:
    ip = state.limits.client_ip(request.client.host if request.client else None, request.headers)
    return JSONResponse(await create_embeddings(state, principal, await request.body(), ip))
