"""Any OpenAI-compatible ``/v1/chat/completions`` server as a provider: vLLM, SGLang, Ollama,
TGI, the llama.cpp server, OpenAI itself.

Failure model, in one place:

* Before the first token is yielded, connect errors, timeouts, dropped connections and
  HTTP 408/429/5xx are retried (``max_retries``, exponential backoff with jitter, honouring
  ``Retry-After`` up to ``retry_after_max``). When they run out the call raises
  :class:`UpstreamUnavailableError` (a :class:`ProviderUnavailableError`: nothing was
  streamed, so the router may fall back to another model).
* Any other 4xx raises :class:`UpstreamRequestError` at once, carrying the upstream's status
  and message so the gateway can answer its own client the same way.
* After the first token nothing is retried: a stall longer than ``read_timeout`` (or the
  ``total_timeout`` passing) raises :class:`ProviderTimeoutError`; a dropped connection or a
  broken stream raises :class:`ProviderError`. ``total_timeout`` bounds retries and backoff
  too; while streaming it is checked after each read, so a silent upstream can overrun it
  by at most ``read_timeout``.
* ``failure_threshold`` consecutive failed calls open a circuit: for ``cooldown_seconds``
  every call fails fast with :class:`UpstreamUnavailableError` without touching the network,
  then one trial call goes through and its answer closes or reopens the circuit.

The API key is sent as a Bearer token and never appears in reprs, logs or exception text
(upstream error messages are scrubbed of it too).

The ``httpx.AsyncClient`` is shared and owned by the caller; this provider never closes it.
Leaving the stream early (``aclose()`` or cancelling the task) closes the upstream response,
and with it the connection, at once, so the upstream stops generating.
"""

from __future__ import annotations

import asyncio
import contextlib
import email.utils
import json
import logging
import random
import time
from collections.abc import AsyncGenerator, AsyncIterator, Mapping
from dataclasses import dataclass, field
from typing import Any, Literal, cast
from urllib.parse import urlsplit, urlunsplit

import httpx
import orjson

from onebox.core.metrics import metrics
from onebox.core.requestid import HEADER as REQUEST_ID_HEADER
from onebox.core.requestid import request_id, traced_headers
from onebox.llm.base import (
    ChatProvider,
    ChatRequest,
    FinishReason,
    ProviderError,
    ProviderTimeoutError,
    StreamChunk,
    TextDelta,
    Usage,
)
from onebox.llm.openai_sse import (
    _error_fields,
    _SseParser,
    _StreamBroken,
)
from onebox.llm.transport import FastTransport
from onebox.llm.upstream_health import (
    UnavailableReason,
    UpstreamHealth,
    UpstreamUnavailableError,
    _Failure,
)

logger = logging.getLogger(__name__)

RETRYABLE_STATUS = frozenset({408, 429, 500, 502, 503, 504})
_MAX_ERROR_BODY = 64 * 1024


class UpstreamRequestError(ProviderError):
    """The upstream rejected the request itself (a 4xx other than 408/429): retrying or
    falling back would not help. ``status_code`` and ``upstream_message`` are what the
    gateway should pass on to its own client."""

    def __init__(
        self,
        message: str,
        *,
        status_code: int,
        upstream_message: str,
        error_type: str | None = None,
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.upstream_message = upstream_message
        self.error_type = error_type
        self.code = code
        self.param = param


class _TotalTimeout(Exception):
    """``total_timeout`` passed while streaming."""


def _redact_url(url: str) -> str:
    """The URL without credentials or query string, for messages and logs."""
    parts = urlsplit(url)
    host = parts.hostname or ""
    if ":" in host:
        host = f"[{host}]"
    netloc = f"{host}:{parts.port}" if parts.port else host
    return urlunsplit((parts.scheme, netloc, parts.path, "", ""))


def _retry_after(headers: httpx.Headers) -> float | None:
    milliseconds = headers.get("retry-after-ms")
    if milliseconds:
        try:
            return max(float(milliseconds) / 1000, 0.0)
        except ValueError:
            pass
    value = headers.get("retry-after")
    if not value:
        return None
    try:
        return max(float(value), 0.0)
    except ValueError:
        pass
    try:
        when = email.utils.parsedate_to_datetime(value)
    except (TypeError, ValueError, IndexError):
        return None
    return max(when.timestamp() - time.time(), 0.0)


def _describe_transport_error(exc: httpx.TransportError) -> tuple[UnavailableReason, str]:
    if isinstance(exc, httpx.ConnectError):
        cause: BaseException | None = exc
        for _ in range(8):  # httpx -> httpcore -> anyio -> the socket's OSError
            if cause is None:
                break
            if isinstance(cause, ConnectionRefusedError):
                return "connect", "connection refused"
            if isinstance(cause, OSError) and cause.strerror:
                return "connect", f"cannot connect ({cause.strerror})"
            cause = cause.__cause__ or cause.__context__
        return "connect", f"cannot connect ({exc or type(exc).__name__})"
    return "protocol", f"connection dropped ({exc or type(exc).__name__})"


_UNKNOWN = object()


_TRACE = REQUEST_ID_HEADER.encode("ascii")
# Headers the direct path writes per request (or never: the host comes from the URL).
_SET_PER_REQUEST = frozenset(
    {b"host", b"content-length", b"content-type", b"transfer-encoding", b"x-request-id"}
)


def _fast_transport_for(client: httpx.AsyncClient, url: httpx.URL) -> FastTransport | None:
    """The :class:`FastTransport` ``client`` would send ``url`` through (proxies and mounts
    considered), provided sending to it directly skips nothing the client was set up to do."""
    pick = getattr(client, "_transport_for_url", None)  # httpx's own choice, if it has one
    if pick is None or client.auth is not None or any(client.event_hooks.values()):
        return None
    transport = pick(url)
    return transport if isinstance(transport, FastTransport) else None


def _map_finish(reason: object) -> FinishReason:
    return "length" if reason == "length" else "stop"


@dataclass(kw_only=True, repr=False)
class OpenAICompatProvider(ChatProvider):
    """Streams chat completions from an OpenAI-compatible server at ``base_url`` (``.../v1``)."""

    base_url: str
    client: httpx.AsyncClient = field(repr=False)
    upstream_model: str | None = None  # the name sent upstream; defaults to model_name
    api_key: str | None = field(default=None, repr=False)
    connect_timeout: float = 5.0
    read_timeout: float = 60.0  # longest silence allowed, time to first byte included
    total_timeout: float = 600.0
    pool_timeout: float | None = None  # waiting for a pooled connection; None: total
    max_retries: int = 2
    retry_backoff: float = 0.2  # first retry waits about this long, then doubling
    retry_backoff_max: float = 8.0
    retry_after_max: float = 10.0  # cap on an upstream's Retry-After
    failure_threshold: int = 3  # consecutive failed calls that open the circuit; 0: never
    cooldown_seconds: float = 30.0
    include_usage: bool = True  # ask for stream_options.include_usage
    max_tokens_field: str = "max_tokens"  # "max_completion_tokens" for OpenAI o-series
    extra_body: Mapping[str, Any] = field(default_factory=dict)  # merged into every request
    extra_headers: Mapping[str, str] = field(default_factory=dict, repr=False)

    _url: str = field(init=False, repr=False)
    _display: str = field(init=False, repr=False)
    _headers: dict[str, str] = field(init=False, repr=False)
    _failures: int = field(default=0, init=False, repr=False)
    _open_until: float = field(default=0.0, init=False, repr=False)
    _trial: object | None = field(default=None, init=False, repr=False)
    _last_error: str | None = field(default=None, init=False, repr=False)
    _parsed_url: httpx.URL = field(init=False, repr=False)
    _direct: object = field(default=None, init=False, repr=False)
    _direct_head: bytes = field(default=b"", init=False, repr=False)

    def __post_init__(self) -> None:
        self.base_url = self.base_url.rstrip("/")
        if not self.base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        if self.upstream_model is None:
            self.upstream_model = self.model_name
        for name in ("connect_timeout", "read_timeout", "total_timeout"):
            if getattr(self, name) <= 0:
                raise ValueError(f"{name} must be positive")
        if self.max_retries < 0 or self.retry_backoff < 0:
            raise ValueError("max_retries and retry_backoff must not be negative")
        self._url = f"{self.base_url}/chat/completions"
        self._parsed_url = httpx.URL(self._url)
        self._direct = _UNKNOWN
        self._display = _redact_url(self.base_url)
        headers = {"Accept": "text/event-stream", **self.extra_headers}
        if self.api_key:
            headers["Authorization"] = f"Bearer {self.api_key}"
        self._headers = headers

    def __repr__(self) -> str:
        # Never the key, nor credentials or query strings in the URL.
        return (
            f"{type(self).__name__}(model_name={self.model_name!r}, "
            f"base_url={self._display!r}, upstream_model={self.upstream_model!r}, "
            f"api_key={'set' if self.api_key else None!r}, "
            f"circuit={self.health.state!r})"
        )

    # ChatProvider ------------------------------------------------------------------------

    async def stream_chat(self, request: ChatRequest) -> AsyncGenerator[StreamChunk]:
        trial = self._admit()
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.total_timeout
        payload = self._payload(request)
        display = self._display
        attempt = 0
        streamed = 0  # content deltas yielded
        try:
            while True:
                attempt += 1
                failure: _Failure | None = None
                parser = _SseParser()
                try:
                    async with self._send(payload, deadline - loop.time()) as response:
                        if response.status_code != 200:
                            failure = await self._status_failure(response)
                        elif response.headers.get("content-type", "").startswith(
                            "application/json"
                        ):  # a server that ignored stream=true
                            self._record_success()
                            for content in parser.whole(await response.aread()):
                                streamed += 1
                                yield TextDelta(content)
                        else:
                            self._record_success()
                            chunks = self._body(response)
                            try:
                                async for raw in chunks:
                                    # Deltas that arrived in one read travel as one chunk:
                                    # every later step (guards, framing, the socket write)
                                    # costs per chunk, not per token.
                                    if contents := parser.feed(raw):
                                        streamed += len(contents)
                                        yield TextDelta("".join(contents))
                                    if loop.time() > deadline:
                                        raise _TotalTimeout
                            finally:
                                await chunks.aclose()
                            for content in parser.end():
                                streamed += 1
                                yield TextDelta(content)
                except httpx.TimeoutException as exc:
                    if not parser.done:  # else: only the drain after [DONE] timed out
                        failure = self._timeout_failure(exc, streamed)
                except httpx.TransportError as exc:
                    if not parser.done:
                        reason, description = _describe_transport_error(exc)
                        if streamed:
                            self._record_failure(description)
                            raise ProviderError(
                                f"upstream {display} failed mid-stream after {streamed} "
                                f"tokens: {description}"
                            ) from exc
                        failure = _Failure(reason, description)
                except _StreamBroken as exc:
                    description = self._scrub(str(exc))
                    if streamed:
                        self._record_failure(description)
                        raise ProviderError(
                            f"upstream {display} failed mid-stream after {streamed} tokens: "
                            f"{description}"
                        ) from exc
                    failure = _Failure("protocol", description, retryable=False)
                except _TotalTimeout:
                    description = f"did not finish within {self.total_timeout:g}s"
                    self._record_failure(description)
                    raise ProviderTimeoutError(f"upstream {display} {description}") from None

                if failure is None:
                    break
                delay = self._retry_delay(attempt, failure, deadline - loop.time())
                if delay is None:
                    if failure.reason != "pool":
                        self._record_failure(failure.description)
                    metrics().upstream_errors.labels(self.model_name, failure.reason).inc()
                    raise UpstreamUnavailableError(
                        f"upstream {display}: {failure.description} after {attempt} "
                        f"attempt{'s' if attempt != 1 else ''}",
                        reason=failure.reason,
                        attempts=attempt,
                        status_code=failure.status_code,
                        retry_after=failure.retry_after,
                    )
                logger.info(
                    "Upstream %s: %s (attempt %d of %d); retrying in %.2fs",
                    display,
                    failure.description,
                    attempt,
                    self.max_retries + 1,
                    delay,
                )
                await asyncio.sleep(delay)
        finally:
            if trial is not None and self._trial is trial:
                self._trial = None  # ended before an outcome: let another trial through

        yield self._usage(request, parser, streamed)

    # Health ------------------------------------------------------------------------------

    @property
    def health(self) -> UpstreamHealth:
        remaining = max(self._open_until - time.monotonic(), 0.0)
        tripped = 0 < self.failure_threshold <= self._failures
        if not tripped:
            state: Literal["closed", "open", "half_open"] = "closed"
        elif remaining > 0:
            state = "open"
        else:
            state = "half_open"
        return UpstreamHealth(
            state=state,
            consecutive_failures=self._failures,
            cooling_down_until=time.time() + remaining if state == "open" else None,
            cooldown_remaining=remaining if state == "open" else 0.0,
            trial_in_flight=self._trial is not None,
            last_error=self._last_error,
        )

    def _admit(self) -> object | None:
        """Fail fast while the circuit is open; returns a token when this call is the trial."""
        if self.failure_threshold <= 0 or self._failures < self.failure_threshold:
            return None
        remaining = self._open_until - time.monotonic()
        if remaining > 0 or self._trial is not None:
            wait = f"{remaining:.1f}s left" if remaining > 0 else "a trial request is in flight"
            metrics().upstream_errors.labels(self.model_name, "cooldown").inc()
            raise UpstreamUnavailableError(
                f"upstream {self._display} is cooling down after {self._failures} consecutive "
                f"failures ({wait}; last error: {self._last_error})",
                reason="cooldown",
                attempts=0,
                retry_after=max(remaining, 0.0) or None,
            )
        token = object()
        self._trial = token
        return token

    def _record_success(self) -> None:
        if self._failures >= self.failure_threshold > 0:
            logger.warning("Upstream %s answered again; circuit closed", self._display)
        self._failures = 0
        self._open_until = 0.0
        self._trial = None

    def _record_failure(self, description: str) -> None:
        self._failures += 1
        self._last_error = self._scrub(description)
        self._trial = None
        if 0 < self.failure_threshold <= self._failures:
            if self._open_until <= time.monotonic():
                metrics().upstream_cooldowns.labels(self.model_name).inc()
            self._open_until = time.monotonic() + self.cooldown_seconds
            logger.warning(
                "Upstream %s failed %d times in a row (%s); failing fast for %gs",
                self._display,
                self._failures,
                self._last_error,
                self.cooldown_seconds,
            )

    # Helpers -----------------------------------------------------------------------------

    def _payload(self, request: ChatRequest) -> dict[str, Any]:
        params = request.params
        payload: dict[str, Any] = {
            "model": self.upstream_model,
            "messages": [
                {"role": message.role, "content": message.content} for message in request.messages
            ],
            "stream": True,
            self.max_tokens_field: params.max_tokens,
            "temperature": params.temperature,
            "top_p": params.top_p,
        }
        if self.include_usage:
            payload["stream_options"] = {"include_usage": True}
        if params.stop:
            payload["stop"] = list(params.stop)
        if params.seed is not None:
            payload["seed"] = params.seed
        if self.extra_body:
            payload.update(self.extra_body)
        return payload

    def _usage(self, request: ChatRequest, parser: _SseParser, streamed: int) -> Usage:
        """The upstream's own counts when it sent them, else estimates."""
        prompt: int | None = None
        completion = streamed
        reported = parser.usage
        if isinstance(reported, dict):
            with contextlib.suppress(TypeError, ValueError, KeyError):
                prompt = int(reported["prompt_tokens"])
            with contextlib.suppress(TypeError, ValueError, KeyError):
                completion = int(reported["completion_tokens"])
        return Usage(
            prompt_tokens=prompt if prompt is not None else self.count_tokens(request.messages),
            completion_tokens=completion,
            finish_reason=_map_finish(parser.finish),
        )

    @contextlib.asynccontextmanager
    async def _send(
        self, payload: dict[str, Any], remaining: float
    ) -> AsyncIterator[httpx.Response]:
        """POSTs ``payload`` and yields the streaming response, closed on exit.

        When the shared client hands this URL to Onebox's own :class:`FastTransport` and has
        no hooks or auth of its own, the request goes straight to the transport, already in
        bytes: the client's cookie, auth and redirect layers and building an
        :class:`httpx.Request` (none of which an upstream call needs) cost about as much CPU
        as the rest of the exchange, and the client's response wrapper is a reference
        cycle, i.e. garbage-collector work on every request."""
        timeouts = self._timeouts(remaining)
        transport = self._direct_transport()
        if transport is None:
            async with self.client.stream(
                "POST", self._url, json=payload, headers=traced_headers(self._headers),
                timeout=httpx.Timeout(**timeouts),
            ) as response:  # fmt: skip
                yield response
            return
        response = await transport.send_prepared(
            self._parsed_url, self._direct_message(payload), timeouts
        )
        try:
            yield response
        finally:
            await response.aclose()

    def _body(self, response: httpx.Response) -> AsyncGenerator[bytes]:
        """The body as it arrives: from the transport itself when it came the direct way
        and has no content coding to undo (httpx's decoding and byte-counting layers cost
        per read)."""
        stream = response.stream
        if (
            self._direct is not None
            and isinstance(stream, httpx.AsyncByteStream)
            and "content-encoding" not in response.headers
        ):
            return cast("AsyncGenerator[bytes]", stream.__aiter__())
        return cast("AsyncGenerator[bytes]", response.aiter_bytes())

    def _direct_message(self, payload: dict[str, Any]) -> bytes:
        """The whole request as the client would have sent it: its headers and ours, the
        request id, the JSON body (httpx's encoding: compact, UTF-8, no NaN)."""
        try:
            body = orjson.dumps(payload)
        except TypeError:  # what orjson does not encode (non-str keys in extra_body)
            body = json.dumps(
                payload, ensure_ascii=False, separators=(",", ":"), allow_nan=False
            ).encode()
        current = request_id.get()
        traced = b"" if current is None else b"%b: %b\r\n" % (_TRACE, current.encode("latin-1"))
        return b"%b%bContent-Length: %d\r\n\r\n%b" % (
            self._direct_head, traced, len(body), body,
        )  # fmt: skip

    def _direct_transport(self) -> FastTransport | None:
        if self._direct is _UNKNOWN:
            self._direct = _fast_transport_for(self.client, self._parsed_url)
            # What the client would have sent: its defaults, then ours.
            headers = httpx.Headers(self.client.headers)
            headers.update(self._headers)
            url = self._parsed_url
            lines = [b"POST %b HTTP/1.1\r\nHost: %b\r\n" % (url.raw_path, url.netloc)]
            lines += [
                b"%b: %b\r\n" % (name, value)
                for name, value in headers.raw
                if name.lower() not in _SET_PER_REQUEST
            ]
            lines.append(b"Content-Type: application/json\r\n")
            self._direct_head = b"".join(lines)
        return cast("FastTransport | None", self._direct)

    def _timeouts(self, remaining: float) -> dict[str, float | None]:
        remaining = max(remaining, 0.001)
        pool = self.pool_timeout if self.pool_timeout is not None else remaining
        return {
            "connect": min(self.connect_timeout, remaining),
            "read": min(self.read_timeout, remaining),
            "write": min(self.read_timeout, remaining),
            "pool": min(pool, remaining),
        }

    def _scrub(self, text: str) -> str:
        if self.api_key and self.api_key in text:
            text = text.replace(self.api_key, "***")
        return text

    async def _status_failure(self, response: httpx.Response) -> _Failure:
        """A non-200 answer: a retryable failure, or UpstreamRequestError raised at once."""
        body = await response.aread()
        message, error_type, code, param = _error_fields(body[:_MAX_ERROR_BODY])
        message = self._scrub(message)
        status = response.status_code
        if status in RETRYABLE_STATUS:
            return _Failure(
                "status",
                f"HTTP {status} ({message})",
                status_code=status,
                retry_after=_retry_after(response.headers),
            )
        self._record_success()  # it answered: the upstream is up, the request is wrong
        raise UpstreamRequestError(
            f"upstream {self._display} rejected the request: HTTP {status}: {message}",
            status_code=status,
            upstream_message=message,
            error_type=error_type,
            code=code,
            param=param,
        )

    def _timeout_failure(self, exc: httpx.TimeoutException, streamed: int) -> _Failure:
        if isinstance(exc, httpx.PoolTimeout):
            return _Failure("pool", "no free connection in the pool in time", retryable=False)
        if isinstance(exc, httpx.ConnectTimeout):
            return _Failure("timeout", f"connect timed out after {self.connect_timeout:g}s")
        if streamed:
            description = f"no data for {self.read_timeout:g}s after {streamed} tokens"
            self._record_failure(description)
            raise ProviderTimeoutError(
                f"upstream {self._display} stalled mid-stream: {description}"
            ) from exc
        return _Failure("timeout", f"no response within {self.read_timeout:g}s")

    def _retry_delay(self, attempt: int, failure: _Failure, remaining: float) -> float | None:
        """Seconds to wait before the next attempt, or None to give up."""
        if not failure.retryable or attempt > self.max_retries:
            return None
        backoff = min(self.retry_backoff * 2.0 ** (attempt - 1), self.retry_backoff_max)
        delay = backoff * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not crypto
        if failure.retry_after is not None:
            delay = max(delay, min(failure.retry_after, self.retry_after_max))
        if delay >= remaining:
            return None
        return delay
