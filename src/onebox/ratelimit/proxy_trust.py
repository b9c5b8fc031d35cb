"""The ASGI middleware that keeps ONEBOX_TRUSTED_PROXIES the only source of trust for client
addresses, whichever server runs the app."""

from __future__ import annotations

import logging

from starlette.types import ASGIApp, Receive, Scope, Send

from onebox.ratelimit.client_ip import UNVERIFIED_CLIENT, server_rewritten_client

logger = logging.getLogger(__name__)


class DistrustServerProxyHeaders:
    """ONEBOX_TRUSTED_PROXIES is the only source of trust for client addresses, whichever
    server runs the app: a peer the server took from a forwarding header is replaced before
    anything reads it (see :func:`~onebox.ratelimit.client_ip.server_rewritten_client`).
    ``onebox serve`` turns the server's rewriting off; this covers a bare uvicorn or gunicorn."""

    def __init__(self, app: ASGIApp) -> None:
        self.app = app
        self._warned = False

    async def __call__(self, scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] in {"http", "websocket"}:
            peer = server_rewritten_client(
                scope.get("client"), scope.get("server"), scope["headers"]
            )
            if peer is not None:
                scope["client"] = (peer, 0)
                if peer == UNVERIFIED_CLIENT:
                    self._warn_once()
        await self.app(scope, receive, send)

    def _warn_once(self) -> None:
        if not self._warned:
            self._warned = True
            logger.warning(
                "The server took the client address from X-Forwarded-For (uvicorn's "
                "--forwarded-allow-ips); Onebox cannot tell who connected and counts such "
                "requests as one unverified client. Run `onebox serve`, or uvicorn with "
                "--no-proxy-headers, and list your proxies in ONEBOX_TRUSTED_PROXIES."
            )
