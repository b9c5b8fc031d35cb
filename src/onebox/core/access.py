"""The outermost ASGI layer: every HTTP request gets a request id (the client's
``X-Request-ID`` when well-formed, else a new one, echoed in the response), is counted in the
HTTP metrics by route template and status, and gets one access log line.

Cheap by design, since ``/v1/chat/completions`` runs through it: no label formatting (series
are cached per method, route and status), one log record, JSON encoded by orjson.
"""

from __future__ import annotations

import asyncio
import logging
import time

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from onebox.core.metrics import metrics
from onebox.core.requestid import accept_request_id, request_id

_ACCESS = "onebox.access"
access_logger = logging.getLogger(_ACCESS)

UNMATCHED_ROUTE = "unmatched"
CLIENT_CLOSED_REQUEST = 499  # nginx's status for a client that left before the answer
MAX_LOGGED_PATH = 512


def _sent_request_id(scope: Scope) -> bytes | None:
    for key, value in scope["headers"]:
        if key == b"x-request-id":
            return bytes(value)
    return None


class AccessLog:
    def __init__(self, app: ASGIApp, *, log: bool = True) -> None:
        self.app = app
        self.log = log
        self._paths: dict[int, str] | None = None  # plain routes' and mounts' paths

    def _template(self, scope: Scope) -> str:
        """The matched route's path template; FastAPI marks its own routes in the scope,
        plain routes (the bare /v1/chat/completions) and mounts by their endpoint."""
        route = scope.get("route")
        if route is not None:
            return str(getattr(route, "path", UNMATCHED_ROUTE))
        endpoint = scope.get("endpoint")
        if endpoint is None:
            return UNMATCHED_ROUTE
        if self._paths is None:
            routes = getattr(scope.get("app"), "routes", ())
            self._paths = {
                id(getattr(r, "endpoint", None) or getattr(r, "app", None)): r.path
                for r in routes
                if isinstance(getattr(r, "path", None), str)
            }
        return self._paths.get(id(endpoint), UNMATCHED_ROUTE)

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return
        current = accept_request_id(_sent_request_id(scope))
        token = request_id.set(current)
        echoed = (b"x-request-id", current.encode("ascii"))
        started = time.perf_counter()
        status = 0

        async def send_with_id(message: Message) -> None:
            nonlocal status
            if message["type"] == "http.response.start":
                status = message["status"]
                message["headers"] = [*message.get("headers", ()), echoed]
            await send(message)

        try:
            await self.app(scope, receive, send_with_id)
        except asyncio.CancelledError:
            if status == 0:
                status = CLIENT_CLOSED_REQUEST
            raise
        finally:
            seconds = time.perf_counter() - started
            status = status or 500
            template = self._template(scope)
            method = scope["method"]
            metrics().http(method, template, status, seconds)
            if self.log and access_logger.isEnabledFor(logging.INFO):
                path = scope["path"][:MAX_LOGGED_PATH]
                client = scope.get("client")
                fields = {
                    "method": method,
                    "route": template,
                    "path": path,
                    "status": status,
                    "duration_ms": round(seconds * 1000, 3),
                    "client": client[0] if client else None,
                }
                # The record built directly: Logger.info() would walk the stack for the
                # caller's file and line, which no access line shows.
                access_logger.handle(
                    access_logger.makeRecord(
                        _ACCESS, logging.INFO, __file__, 0, "%s %s %d", (method, path, status),
                        None, extra={"fields": fields},
                    )
                )  # fmt: skip
            request_id.reset(token)
