"""``POST /v1/chat/completions`` as a bare ASGI endpoint.

This is the gateway's hot path, so it skips the framework's per-request machinery
(dependency solving, response classes, a task group per streaming response) and speaks
ASGI directly. Behaviour matches the rest of the API: same auth, errors and usage records.
"""

from __future__ import annotations

import asyncio
import json
import logging
from typing import Any

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from onebox.chat.turn import TurnRequest
from onebox.core.errors import APIError, database_busy, error_body
from onebox.gateway.auth import authenticate_v1, check_model_allowed
from onebox.gateway.service import (
    Completion,
    param_overrides,
    parse_request,
    resolve_model,
    turn_messages,
)
from onebox.state import AppState

logger = logging.getLogger(__name__)

_JSON_HEADERS = [(b"content-type", b"application/json")]
_SSE_HEADERS = [
    (b"content-type", b"text/event-stream; charset=utf-8"),
    (b"cache-control", b"no-cache"),
    (b"x-accel-buffering", b"no"),
]


async def _read_body(receive: Receive) -> bytes:
    chunks: list[bytes] = []
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            raise asyncio.CancelledError
        chunks.append(message.get("body", b""))
        if not message.get("more_body", False):
            return b"".join(chunks)


async def _send_json(
    send: Send, status: int, payload: Any, headers: list[Any] | None = None
) -> None:
    body = json.dumps(payload, separators=(",", ":")).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [*_JSON_HEADERS, *(headers or [])],
        }
    )
    await send({"type": "http.response.body", "body": body})


async def _send_error(send: Send, error: APIError) -> None:
    headers = [(k.lower().encode(), v.encode()) for k, v in (error.headers or {}).items()]
    payload = error_body(error.message, error.error_type, error.param, error.code)
    await _send_json(send, error.status_code, payload, headers)


async def _wait_for_disconnect(receive: Receive) -> Message:
    while True:
        message = await receive()
        if message["type"] == "http.disconnect":
            return message


async def chat_completions(scope: Scope, receive: Receive, send: Send) -> None:
    state: AppState = scope["app"].state.onebox
    try:
        principal = await authenticate_v1(
            state, _header(scope, b"authorization"), _header(scope, b"origin"), _peer(scope),
            scope["headers"],
        )  # fmt: skip
        request = parse_request(await _read_body(receive))
        check_model_allowed(principal, request.model)
        turn = await state.turns.prepare(
            None,
            TurnRequest(
                caller=principal,
                model=resolve_model(state.models, request.model),
                messages=turn_messages(request),
                door="widget" if principal.key and principal.key.kind == "widget" else "api",
                ip=state.limits.client_ip(_peer(scope), scope["headers"]),
                overrides=param_overrides(request),
                collections=request.collections,
                audit_target="/v1/chat/completions",
            ),
        )
        completion = Completion(request, turn)
        first = await completion.first_chunk()
        if not request.stream:
            await _send_json(send, 200, await completion.collect(first))
            return
    except APIError as error:
        await _send_error(send, error)
        return

    await send({"type": "http.response.start", "status": 200, "headers": _SSE_HEADERS})
    # The client leaving is only visible on receive(); a watcher cancels this task then,
    # which closes the provider stream and with it the upstream request or engine slot.
    task = asyncio.current_task()
    assert task is not None
    watcher = asyncio.ensure_future(_wait_for_disconnect(receive))
    watcher.add_done_callback(lambda done: None if done.cancelled() else task.cancel())
    try:
        async for piece in completion.sse(first):
            if completion.ending:
                # The last piece ends the response (one write with the chunked terminator),
                # after which the server reports a disconnect that is no client leaving:
                # the watcher stops first, so the turn's finish() is not cancelled by it.
                watcher.cancel()
            more = not completion.ending
            await send({"type": "http.response.body", "body": piece, "more_body": more})
        if not completion.ending:
            await send({"type": "http.response.body", "body": b"", "more_body": False})
    except asyncio.CancelledError:
        if watcher.cancelled() or not watcher.done():
            raise  # cancelled by the server (shutdown), not by the client
        task.uncancel()
    finally:
        watcher.cancel()


def _peer(scope: Scope) -> str | None:
    client = scope.get("client")
    return str(client[0]) if client else None


def _header(scope: Scope, name: bytes) -> str:
    for key, value in scope["headers"]:
        if key == name:
            return str(value.decode("latin-1"))
    return ""


class ChatCompletionsEndpoint:
    """ASGI callable for starlette's Route (a class instance is mounted as raw ASGI)."""

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        try:
            await chat_completions(scope, receive, send)
        except asyncio.CancelledError:
            raise
        except Exception as exc:
            busy = database_busy(exc)
            if busy is None:
                logger.exception("Unhandled error in /v1/chat/completions")
            await _send_error(send, busy or APIError(500, "Internal server error", "api_error"))


CHAT_COMPLETIONS_PATH = "/v1/chat/completions"


class GatewayHotPath:
    """Middleware that serves ``POST /v1/chat/completions`` itself, as the innermost of the
    app's middleware (so body limits, security headers, CORS and anything added later still
    apply): the framework's exception and exit-stack layers and its router, which this
    endpoint does not use, cost about a fifth of the gateway's CPU per request. Anything
    else goes on to the app."""

    def __init__(self, app: ASGIApp, route: object = None) -> None:
        self.app = app
        self.endpoint = ChatCompletionsEndpoint()
        self.route = route  # marked in the scope, as the router would (access log, metrics)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and scope["method"] == "POST":
            path: str = scope["path"]
            root = scope.get("root_path", "")
            if root and path.startswith(root):
                path = path[len(root) :]
            if path == CHAT_COMPLETIONS_PATH:
                if self.route is not None:
                    scope["route"] = self.route
                await self.endpoint(scope, receive, send)
                return
        await self.app(scope, receive, send)
