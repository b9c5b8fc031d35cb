"""A lean HTTP/1.1 transport for ``httpx.AsyncClient``, for streaming from upstreams.

``httpx.AsyncClient(transport=FastTransport(...))`` keeps the whole httpx API for callers
(``client.stream(...)``, ``aiter_bytes()``, timeouts, exceptions) while replacing
httpcore/h11/anyio underneath with an asyncio :class:`asyncio.Protocol` per connection and
the C ``httptools`` (llhttp) response parser. The gateway spends most of its time relaying
SSE tokens, so the per-request and per-chunk paths are kept short:

* **Connections** are protocols: bytes are parsed in ``data_received`` as they arrive and
  body pieces are appended to the current response's buffer, waking its reader (one future
  per wait, one timer per wait when a read timeout is set). No task per connection, no
  stream objects, no anyio.
* **Pool**: per origin ``(scheme, host, port)`` a LIFO deque of idle connections; acquiring
  pops the most recently used one, releasing pushes it, both O(1). ``max_connections``
  caps all connections together (those opening included); when it is reached, requests
  queue FIFO for ``timeout["pool"]`` (``httpx.PoolTimeout``), and a connection that is
  released or closed goes straight to the oldest waiter (a released connection of another
  origin is closed to free its slot for the waiter). A request for an origin with no idle
  connection while the cap is reached closes an idle connection of another origin (a loop
  over origins, never over connections). ``keepalive_expiry`` is checked lazily: on
  acquire (idle connections are stacked in release order, so if the newest is too old all
  of them are) and at the old end of the deque on release. Connections the server closes
  while idle are marked dead at once and skipped when popped. A connection is returned
  to the pool as soon as its response has been received in full and the server allowed
  keep-alive; it is closed when the response said ``Connection: close`` (or was
  HTTP/1.0 without keep-alive, or delimited by the end of the connection), when the
  response body was not received in full (``aclose()`` before the end, a timeout,
  cancellation) and after any error or unexpected byte.
* **Stale keep-alive connections**: a *reused* connection that ends (EOF or reset) before
  a single byte of the response arrived was most likely closed by the server while idle
  (e.g. uvicorn's 5 s keep-alive timeout) just as we picked it. The request is then sent
  once more on a new connection, provided its body is buffered (``request.content``,
  which is what httpx builds for ``json=``/``content=`` bytes) and so can be replayed. Like
  most HTTP clients this may repeat a non-idempotent request in the rare case where the
  server did process it and then closed without answering; Onebox only sends POSTs whose
  effect is a generation it did not receive, so that is acceptable here. Fresh
  connections and streamed bodies are never retried; the caller's own retry logic (in
  :mod:`onebox.llm.openai_compat`) decides.
* **Responses** are framed by ``Content-Length``, chunked transfer coding or the end of
  the connection. The body is an :class:`httpx.AsyncByteStream` that yields every network
  read as soon as it is parsed (token-by-token SSE); ``aclose()`` before the end closes the
  TCP connection at once so the upstream sees the disconnect and stops generating. The
  socket stops being read while more than 1 MiB of body waits for the reader.
* **Timeouts** come from ``request.extensions["timeout"]`` (``None`` = no limit): connect
  (TCP and TLS handshake) → :class:`httpx.ConnectTimeout`, read (each wait for bytes,
  the response head included) → :class:`httpx.ReadTimeout`, write (waits for the socket
  to drain) → :class:`httpx.WriteTimeout`, pool → :class:`httpx.PoolTimeout`.
* **Errors**: refused/unreachable/DNS/TLS handshake → :class:`httpx.ConnectError` (the
  ``OSError`` kept as ``__cause__``); connection dropped → :class:`httpx.ReadError` (reset)
  or :class:`httpx.RemoteProtocolError` (closed before a response or mid-body, malformed
  response); dropped while streaming a request body → :class:`httpx.WriteError`. All are
  ``httpx.TransportError``, which the provider retries before the first token.

Not supported (not needed for upstreams): HTTP/2, proxies, ``Expect: 100-continue``
(interim 1xx responses are skipped), protocol upgrades, trio. ``HEAD`` responses work
but their connection is not reused. Requests must be made from the event loop the
transport first connected on (httpx clients are per loop anyway).
"""

from __future__ import annotations

from onebox.llm.transport_pool import FastTransport

__all__ = ["FastTransport"]
