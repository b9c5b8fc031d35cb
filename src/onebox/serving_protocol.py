"""uvicorn's HTTP/1.1 protocol (httptools), writing a response's head together with the
first bytes of its body.

uvicorn writes the status line and headers to the socket as soon as the application sends
``http.response.start``, then each body message on its own: two writes at least for every
response, when the body almost always follows at once (a JSON answer, the gateway's first
stream frame). On loopback or a LAN a small write costs about as much CPU as handling the
request's smallest steps, and each wakes the client once more. Here the head waits for the
next write of the same response, or for the end of the current turn of the event loop,
whichever comes first, so it is never held back while the application awaits anything.
"""

from __future__ import annotations

import asyncio
from typing import Any

from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol, RequestResponseCycle

_INTERIM = b"HTTP/1.1 100 "  # 100 Continue goes out at once: the client waits for it


class HeadWithBody:
    """One response's view of its connection's transport: the first write (the head) is
    held until the next write or until the loop's current callbacks have run."""

    __slots__ = ("_held", "_loop", "_started", "_transport")

    def __init__(self, transport: asyncio.Transport, loop: asyncio.AbstractEventLoop) -> None:
        self._transport = transport
        self._loop = loop
        self._held: bytes | None = None
        self._started = False

    def write(self, data: bytes) -> None:
        held = self._held
        if held is not None:
            self._held = None
            self._transport.write(held + data)
        elif self._started or data.startswith(_INTERIM):
            self._transport.write(data)
        else:
            self._started = True
            self._held = data
            self._loop.call_soon(self.flush)

    def flush(self) -> None:
        held = self._held
        if held is not None:
            self._held = None
            if not self._transport.is_closing():
                self._transport.write(held)

    def close(self) -> None:
        self.flush()
        self._transport.close()

    def is_closing(self) -> bool:
        return self._transport.is_closing()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._transport, name)


class CoalescingHttpToolsProtocol(HttpToolsProtocol):
    """uvicorn's protocol; each request's cycle writes through a :class:`HeadWithBody`."""

    def _start_asgi_task(self, cycle: RequestResponseCycle, app: Any) -> None:
        cycle.transport = HeadWithBody(cycle.transport, self.loop)  # type: ignore[assignment]
        super()._start_asgi_task(cycle, app)


def http_protocol() -> type[asyncio.Protocol] | None:
    """The protocol class for uvicorn's ``http`` option, or None (uvicorn's own choice)
    where this uvicorn does not start requests the way this class expects."""
    if not callable(getattr(HttpToolsProtocol, "_start_asgi_task", None)):
        return None
    return CoalescingHttpToolsProtocol
