"""ASGI guards that run before routing: body size (chunked bodies included) and content
type on the JSON API, and NUL characters in any URL; and the full ``Allow`` list on 405."""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence

from starlette.datastructures import MutableHeaders
from starlette.routing import BaseRoute, Match, Mount
from starlette.types import ASGIApp, Message, Receive, Scope, Send

from onebox.core.errors import APIError, error_body

_BODY_METHODS = {b"POST", b"PUT", b"PATCH"}


async def _send_error(send: Send, status: int, message: str, error_type: str) -> None:
    body = json.dumps(error_body(message, error_type)).encode()
    await send(
        {
            "type": "http.response.start",
            "status": status,
            "headers": [
                (b"content-type", b"application/json"),
                (b"content-length", str(len(body)).encode()),
            ],
        }
    )
    await send({"type": "http.response.body", "body": body})


class RequestBodyTooLargeError(APIError):
    """Raised from ``receive`` once a body passes its limit. An ``APIError``, so endpoints
    that speak ASGI themselves answer it as they answer any other bad request."""

    def __init__(self, limit: int) -> None:
        super().__init__(
            413,
            f"The request body is larger than the limit of {limit} bytes",
            "payload_too_large",
        )


class JsonBodyGuard:
    """Refuses oversized bodies (413) and non-JSON bodies (415) on ``prefixes``. Upload
    endpoints (paths ending in ``upload_suffix``) take multipart bodies up to
    ``max_upload_bytes`` instead."""

    def __init__(
        self,
        app: ASGIApp,
        *,
        max_bytes: int,
        prefixes: tuple[str, ...],
        upload_suffix: str | None = None,
        max_upload_bytes: int = 0,
    ) -> None:
        self.app = app
        self.max_bytes = max_bytes
        self.prefixes = prefixes
        self.upload_suffix = upload_suffix
        self.max_upload_bytes = max_upload_bytes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if (
            scope["type"] != "http"
            or scope["method"].encode() not in _BODY_METHODS
            or not scope["path"].startswith(self.prefixes)
        ):
            await self.app(scope, receive, send)
            return

        is_upload = self.upload_suffix is not None and scope["path"].endswith(self.upload_suffix)
        limit = self.max_upload_bytes if is_upload else self.max_bytes
        expected_type = b"multipart/form-data" if is_upload else b"application/json"
        headers = dict(scope["headers"])
        length_header = headers.get(b"content-length")
        has_body = b"transfer-encoding" in headers or (
            length_header is not None and length_header != b"0"
        )
        if length_header is not None:
            try:
                declared = int(length_header)
            except ValueError:
                await _send_error(
                    send, 400, "Invalid Content-Length header", "invalid_request_error"
                )
                return
            if declared > limit:
                await self._too_large(send, limit)
                return
        content_type = headers.get(b"content-type", b"").split(b";")[0].strip().lower()
        if has_body and content_type != expected_type:
            await _send_error(
                send,
                415,
                "Upload files as multipart/form-data (field 'files')"
                if is_upload
                else "Send the request body as JSON with Content-Type: application/json",
                "unsupported_media_type",
            )
            return

        # A body without Content-Length (chunked) is only found too large while the app
        # reads it, and apps wrap read errors in their own answers (FastAPI's 400 "error
        # parsing the body", an endpoint's 500). Whatever the app then sends or raises,
        # the client gets the 413.
        received = 0
        over_limit = False
        started = False
        replaced = False

        async def limited_receive() -> Message:
            nonlocal received, over_limit
            if over_limit:
                raise RequestBodyTooLargeError(limit)
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    over_limit = True
                    raise RequestBodyTooLargeError(limit)
            return message

        async def guarded_send(message: Message) -> None:
            nonlocal started, replaced
            if replaced:
                return  # the rest of the app's own answer to the oversized body
            if message["type"] == "http.response.start":
                if over_limit:
                    replaced = True
                    await self._too_large(send, limit)
                    return
                started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, guarded_send)
        except Exception:
            if not over_limit or started:
                raise
        if over_limit and not started and not replaced:
            await self._too_large(send, limit)

    async def _too_large(self, send: Send, limit: int) -> None:
        error = RequestBodyTooLargeError(limit)
        await _send_error(send, error.status_code, error.message, error.error_type)


class NulInUrlGuard:
    """Refuses URLs whose path or query holds NUL (``%00``) with a 400. Ids in the path
    reach database lookups as they are, and PostgreSQL text cannot hold NUL (a 500);
    request bodies have the same rule in their schemas (``onebox.core.inputs.Text``)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "http" and ("\x00" in scope["path"] or b"%00" in scope["query_string"]):
            await _send_error(
                send, 400, "The URL must not contain NUL (%00) characters", "invalid_request_error"
            )
            return
        await self.app(scope, receive, send)


_PROBED_METHODS = ("GET", "HEAD", "POST", "PUT", "PATCH", "DELETE", "OPTIONS")


class AllowEveryMethod:
    """A 405 names every method the path takes in its ``Allow`` header. The router answers
    with the methods of the first route that matched the path only, so ``PUT`` on a path
    with separate GET, PATCH and DELETE routes was told ``Allow: GET, HEAD``. Mounted apps
    (static files) keep their own answer."""

    def __init__(self, app: ASGIApp, *, routes: Callable[[], Sequence[BaseRoute]]) -> None:
        self.app = app
        self.routes = routes

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_allow(message: Message) -> None:
            if message["type"] == "http.response.start" and message["status"] == 405:
                methods = self.allowed_methods(scope)
                if methods:
                    headers = MutableHeaders(scope=message)
                    headers["allow"] = ", ".join(methods)
            await send(message)

        await self.app(scope, receive, send_with_allow)

    def allowed_methods(self, scope: Scope) -> list[str]:
        allowed = []
        for method in _PROBED_METHODS:
            probe = {
                "type": "http",
                "method": method,
                "path": scope["path"],
                "root_path": scope.get("root_path", ""),
                "headers": [],
                "query_string": b"",
            }
            for route in self.routes():
                if isinstance(route, Mount):
                    continue
                match, _ = route.matches(probe)
                if match is Match.FULL:
                    allowed.append(method)
                    break
        return allowed
