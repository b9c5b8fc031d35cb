"""Response hardening for every route, CORS for widget keys on /v1, and client addresses
that only ONEBOX_TRUSTED_PROXIES can vouch for."""

from __future__ import annotations

import logging
import time
from collections.abc import Awaitable, Callable

from starlette.datastructures import MutableHeaders
from starlette.types import ASGIApp, Message, Receive, Scope, Send

logger = logging.getLogger(__name__)

BASE_HEADERS = [
    (b"x-content-type-options", b"nosniff"),
    (b"referrer-policy", b"no-referrer"),
]
API_CSP = b"default-src 'none'; frame-ancestors 'none'"
ORIGINS_CACHE_SECONDS = 5.0
WIDGET_API_PREFIX = "/widget/"
WIDGET_HEADERS = b"authorization, content-type, x-onebox-visitor"

OriginsLoader = Callable[[], Awaitable[set[str]]]


class SecurityHeaders:
    """nosniff and no-referrer everywhere; a deny-all CSP on non-HTML responses (HTML
    pages set their own, stricter-for-scripts policy)."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] != "http":
            await self.app(scope, receive, send)
            return

        async def send_with_headers(message: Message) -> None:
            if message["type"] == "http.response.start":
                headers = MutableHeaders(scope=message)
                for name, value in BASE_HEADERS:
                    if name.decode() not in headers:
                        headers.append(name.decode(), value.decode())
                if "content-security-policy" not in headers:
                    headers.append("content-security-policy", API_CSP.decode())
            await send(message)

        await self.app(scope, receive, send_with_headers)


class WidgetCors:
    """CORS for widget keys. On /v1: for the origins that some active widget key allows. On
    /widget/ (the widget's own API, which takes no cookies): for any origin, so that a page
    the key refuses can read why. Which key may be used from which origin is checked per
    request, by /v1's authentication and by the widget's."""

    def __init__(self, app: ASGIApp, *, load_origins: OriginsLoader) -> None:
        self.app = app
        self.load_origins = load_origins
        self._cached: tuple[float, set[str]] = (0.0, set())

    async def _allowed(self, origin: str) -> bool:
        checked_at, origins = self._cached
        if time.monotonic() - checked_at > ORIGINS_CACHE_SECONDS:
            origins = await self.load_origins()
            self._cached = (time.monotonic(), origins)
        return origin.lower().rstrip("/") in origins

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        path = scope["path"] if scope["type"] == "http" else ""
        widget = path.startswith(WIDGET_API_PREFIX)
        if not (widget or path.startswith("/v1/")):
            await self.app(scope, receive, send)
            return
        origin = next((v.decode("latin-1") for k, v in scope["headers"] if k == b"origin"), "")
        if not origin or not (widget or await self._allowed(origin)):
            await self.app(scope, receive, send)
            return
        cors = [
            (b"access-control-allow-origin", origin.encode("latin-1")),
            (b"vary", b"Origin"),
        ]
        if scope["method"] == "OPTIONS":
            await send(
                {
                    "type": "http.response.start",
                    "status": 204,
                    "headers": [
                        *cors,
                        (b"access-control-allow-methods", b"GET, POST, OPTIONS"),
                        (
                            b"access-control-allow-headers",
                            WIDGET_HEADERS if widget else b"authorization, content-type",
                        ),
                        (b"access-control-max-age", b"600"),
                    ],
                }
            )
            await send({"type": "http.response.body", "body": b""})
            return
        if widget:
            cors.append((b"access-control-expose-headers", b"Retry-After"))

        async def send_with_cors(message: Message) -> None:
            if message["type"] == "http.response.start":
                message["headers"] = [*message.get("headers", []), *cors]
            await send(message)

        await self.app(scope, receive, send_with_cors)
