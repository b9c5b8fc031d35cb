"""ASGI guards that run before routing: body size and content type on the JSON API."""

from __future__ import annotations

import json

from starlette.types import ASGIApp, Message, Receive, Scope, Send

from onebox.core.errors import error_body

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


class _BodyTooLargeError(Exception):
    pass


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

        received = 0
        response_started = False

        async def limited_receive() -> Message:
            nonlocal received
            message = await receive()
            if message["type"] == "http.request":
                received += len(message.get("body", b""))
                if received > limit:
                    raise _BodyTooLargeError
            return message

        async def tracking_send(message: Message) -> None:
            nonlocal response_started
            if message["type"] == "http.response.start":
                response_started = True
            await send(message)

        try:
            await self.app(scope, limited_receive, tracking_send)
        except _BodyTooLargeError:
            if not response_started:
                await self._too_large(send, limit)

    async def _too_large(self, send: Send, limit: int) -> None:
        await _send_error(
            send,
            413,
            f"The request body is larger than the limit of {limit} bytes",
            "payload_too_large",
        )
