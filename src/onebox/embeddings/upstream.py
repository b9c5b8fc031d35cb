"""Any OpenAI-compatible ``/v1/embeddings`` server as the embedder: vLLM, TEI, Ollama,
llama.cpp, OpenAI itself.

Failure model, as for chat (:mod:`onebox.llm.openai_compat`): connect errors, timeouts,
dropped connections and HTTP 408/429/5xx are retried ``max_retries`` times with exponential
backoff and jitter, honouring ``Retry-After`` up to ``retry_after_max``, all within
``total_timeout`` per batch; any other 4xx fails at once. Every failure is an
:class:`UpstreamEmbeddingError` whose text names the upstream by its redacted URL. Answers
are checked before use: one vector per input, placed by ``index``, all of one size (the
configured or probed ``dimension``), finite and non-zero; rows are L2-normalised here since
not every server does.

The API key is sent as a Bearer token and never appears in reprs, logs or exception text.
The ``httpx.AsyncClient`` is shared and owned by the caller.
"""

from __future__ import annotations

import asyncio
import base64
import binascii
import json
import logging
import random
from collections.abc import Sequence
from typing import Any

import httpx
import numpy as np

from onebox.core.requestid import traced_headers
from onebox.core.settings import Settings
from onebox.embeddings.base import Embedder, EmbeddingError, InputKind, Vectors
from onebox.llm.openai_compat import (
    RETRYABLE_STATUS,
    _describe_transport_error,
    _redact_url,
    _retry_after,
)
from onebox.llm.openai_sse import _error_fields

logger = logging.getLogger(__name__)

PROBE_TEXT = "dimension probe"
_MAX_ERROR_BODY = 64 * 1024


class UpstreamEmbeddingError(EmbeddingError):
    """``status_code``: the upstream's HTTP status when it answered with one.
    ``unavailable``: it could not be reached or kept failing (worth retrying later)."""

    def __init__(
        self, message: str, *, status_code: int | None = None, unavailable: bool = False
    ) -> None:
        super().__init__(message)
        self.status_code = status_code
        self.unavailable = unavailable


class _Retryable(Exception):
    def __init__(
        self, description: str, retry_after: float | None = None, status_code: int | None = None
    ) -> None:
        super().__init__(description)
        self.description = description
        self.retry_after = retry_after
        self.status_code = status_code


class OpenAICompatibleEmbedder(Embedder):
    """Embeds through ``POST {base_url}/embeddings`` (``base_url`` ends in ``/v1``)."""

    def __init__(
        self,
        *,
        name: str,
        base_url: str,
        client: httpx.AsyncClient,
        upstream_model: str | None = None,
        api_key: str | None = None,
        dimension: int | None = None,
        max_batch: int = 64,
        connect_timeout: float = 5.0,
        read_timeout: float = 60.0,
        total_timeout: float = 120.0,
        max_retries: int = 2,
        retry_backoff: float = 0.2,
        retry_backoff_max: float = 8.0,
        retry_after_max: float = 10.0,
    ) -> None:
        base_url = base_url.rstrip("/")
        if not base_url.startswith(("http://", "https://")):
            raise ValueError("base_url must start with http:// or https://")
        if min(connect_timeout, read_timeout, total_timeout) <= 0:
            raise ValueError("timeouts must be positive")
        if max_retries < 0 or retry_backoff < 0 or max_batch < 1:
            raise ValueError("max_retries and retry_backoff must not be negative, max_batch >= 1")
        self.name = name
        self.upstream_model = upstream_model or name
        self.client = client
        self.dimension = dimension or 0
        self.max_batch = max_batch
        self.connect_timeout = connect_timeout
        self.read_timeout = read_timeout
        self.total_timeout = total_timeout
        self.max_retries = max_retries
        self.retry_backoff = retry_backoff
        self.retry_backoff_max = retry_backoff_max
        self.retry_after_max = retry_after_max
        self._url = f"{base_url}/embeddings"
        self._display = _redact_url(base_url)
        self._api_key = api_key or None
        self._headers = {"Accept": "application/json"}
        if self._api_key:
            self._headers["Authorization"] = f"Bearer {self._api_key}"

    @classmethod
    def from_settings(
        cls, settings: Settings, client: httpx.AsyncClient
    ) -> OpenAICompatibleEmbedder:
        if not settings.embedding_base_url:
            raise ValueError("ONEBOX_EMBEDDING_PROVIDER=openai needs ONEBOX_EMBEDDING_BASE_URL")
        key = settings.embedding_api_key
        return cls(
            name=settings.embedding_model,
            base_url=settings.embedding_base_url,
            client=client,
            api_key=key.get_secret_value() if key is not None else None,
            dimension=settings.embedding_dimension,
            max_batch=settings.embedding_batch_size,
        )

    def __repr__(self) -> str:
        return (
            f"{type(self).__name__}(name={self.name!r}, base_url={self._display!r}, "
            f"api_key={'set' if self._api_key else None!r}, dimension={self.dimension})"
        )

    async def start(self) -> None:
        if self.dimension:
            return
        try:
            vectors = await self._embed_batch([PROBE_TEXT])
        except UpstreamEmbeddingError as exc:
            raise UpstreamEmbeddingError(
                f"{exc} (while asking for the vector size; set ONEBOX_EMBEDDING_DIMENSION "
                "to start without asking)",
                status_code=exc.status_code,
                unavailable=exc.unavailable,
            ) from exc
        self.dimension = int(vectors.shape[1])
        logger.info("Embedding upstream %s: %d dimensions", self._display, self.dimension)

    async def embed(self, texts: Sequence[str], *, kind: InputKind = "document") -> Vectors:
        # OpenAI's wire format has no query/document distinction, so ``kind`` is unused.
        if not texts:
            return np.empty((0, self.dimension), dtype=np.float32)
        parts = [
            await self._embed_batch(list(texts[start : start + self.max_batch]))
            for start in range(0, len(texts), self.max_batch)
        ]
        return parts[0] if len(parts) == 1 else np.concatenate(parts)

    # One request, with retries -------------------------------------------------------------

    async def _embed_batch(self, texts: list[str]) -> Vectors:
        loop = asyncio.get_running_loop()
        deadline = loop.time() + self.total_timeout
        payload = {"model": self.upstream_model, "input": texts}
        attempt = 0
        while True:
            attempt += 1
            try:
                response = await self._post(payload, deadline - loop.time())
            except _Retryable as failure:
                delay = self._retry_delay(attempt, failure, deadline - loop.time())
                if delay is None:
                    plural = "s" if attempt != 1 else ""
                    raise UpstreamEmbeddingError(
                        f"Embedding upstream {self._display}: {failure.description} after "
                        f"{attempt} attempt{plural}",
                        status_code=failure.status_code,
                        unavailable=True,
                    ) from None
                logger.info(
                    "Embedding upstream %s: %s (attempt %d of %d); retrying in %.2fs",
                    self._display, failure.description, attempt, self.max_retries + 1, delay,
                )  # fmt: skip
                await asyncio.sleep(delay)
                continue
            return self._vectors(response, len(texts))

    async def _post(self, payload: dict[str, Any], remaining: float) -> httpx.Response:
        """The 200 response; raises :class:`_Retryable` or, for a 4xx, the final error."""
        try:
            response = await self.client.post(
                self._url,
                json=payload,
                headers=traced_headers(self._headers),
                timeout=self._timeout(remaining),
            )
        except httpx.TimeoutException as exc:
            if isinstance(exc, httpx.PoolTimeout):  # our own pool is full: retrying adds load
                raise UpstreamEmbeddingError(
                    f"Embedding upstream {self._display}: no free connection in the pool in time",
                    unavailable=True,
                ) from None
            if isinstance(exc, httpx.ConnectTimeout):
                raise _Retryable(f"connect timed out after {self.connect_timeout:g}s") from None
            raise _Retryable(f"no response within {min(self.read_timeout, remaining):g}s") from None
        except httpx.TransportError as exc:
            raise _Retryable(_describe_transport_error(exc)[1]) from None
        status = response.status_code
        if status == 200:
            return response
        message = self._scrub(_error_fields(response.content[:_MAX_ERROR_BODY])[0])
        if status in RETRYABLE_STATUS:
            raise _Retryable(f"HTTP {status} ({message})", _retry_after(response.headers), status)
        raise UpstreamEmbeddingError(
            f"Embedding upstream {self._display} rejected the request: HTTP {status}: {message}",
            status_code=status,
        )

    def _vectors(self, response: httpx.Response, expected: int) -> Vectors:
        """The response's vectors in input order, unit length, or an error saying what is
        wrong with it."""
        try:
            body = json.loads(response.content)
        except ValueError:
            raise self._bad("the body is not valid JSON") from None
        data = body.get("data") if isinstance(body, dict) else None
        if not isinstance(data, list):
            raise self._bad("no 'data' array")
        if len(data) != expected:
            raise self._bad(f"{len(data)} embeddings for {expected} inputs")
        rows: list[Any] = [None] * expected
        for position, item in enumerate(data):
            if not isinstance(item, dict):
                raise self._bad(f"data[{position}] is not an object")
            index = item.get("index", position)
            if not isinstance(index, int) or isinstance(index, bool) or not 0 <= index < expected:
                raise self._bad(f"data[{position}] has an invalid index {str(index)[:40]!r}")
            if rows[index] is not None:
                raise self._bad(f"index {index} appears twice")
            rows[index] = self._row(item.get("embedding"), position)
        sizes = {len(row) for row in rows}
        if len(sizes) != 1:
            raise self._bad(f"vectors of different sizes {sorted(sizes)}")
        size = sizes.pop()
        if self.dimension and size != self.dimension:
            raise UpstreamEmbeddingError(
                f"Embedding upstream {self._display} returned {size}-dimensional vectors, "
                f"but {self.dimension} were expected (ONEBOX_EMBEDDING_DIMENSION or the size "
                "it reported at startup)"
            )
        vectors = np.asarray(rows, dtype=np.float32)
        norms = np.linalg.norm(vectors, axis=1, keepdims=True)
        if not np.all(np.isfinite(norms)) or np.any(norms == 0):
            raise self._bad("a vector is zero or not finite")
        vectors /= norms
        return vectors

    def _row(self, embedding: object, position: int) -> Any:
        if isinstance(embedding, str):  # encoding_format=base64, should a server insist
            try:
                raw = base64.b64decode(embedding, validate=True)
            except (binascii.Error, ValueError):
                raise self._bad(f"data[{position}].embedding is not valid base64") from None
            if not raw or len(raw) % 4:
                raise self._bad(f"data[{position}].embedding is not float32 data")
            return np.frombuffer(raw, dtype="<f4")
        if (
            not isinstance(embedding, list)
            or not embedding
            or not all(
                isinstance(value, int | float) and not isinstance(value, bool)
                for value in embedding
            )
        ):
            raise self._bad(f"data[{position}].embedding is not an array of numbers")
        return embedding

    def _bad(self, problem: str) -> UpstreamEmbeddingError:
        return UpstreamEmbeddingError(
            f"Embedding upstream {self._display} sent an invalid response: {problem}"
        )

    # Helpers -------------------------------------------------------------------------------

    def _timeout(self, remaining: float) -> httpx.Timeout:
        remaining = max(remaining, 0.001)
        return httpx.Timeout(
            connect=min(self.connect_timeout, remaining),
            read=min(self.read_timeout, remaining),
            write=min(self.read_timeout, remaining),
            pool=remaining,
        )

    def _scrub(self, text: str) -> str:
        if self._api_key and self._api_key in text:
            text = text.replace(self._api_key, "***")
        return text

    def _retry_delay(self, attempt: int, failure: _Retryable, remaining: float) -> float | None:
        if attempt > self.max_retries:
            return None
        backoff = min(self.retry_backoff * 2.0 ** (attempt - 1), self.retry_backoff_max)
        delay = backoff * random.uniform(0.5, 1.0)  # noqa: S311 - jitter, not crypto
        if failure.retry_after is not None:
            delay = max(delay, min(failure.retry_after, self.retry_after_max))
        return None if delay >= remaining else delay
