"""Whether the limiter's storage answers.

Every storage failure -- Redis down, a connection reset mid-command, a timeout -- becomes
:class:`RateLimitStorageError`, whichever library raised it and however it was wrapped, so the
request-level policy (fail open or closed) is the only thing that decides what a client sees.

An outage is logged once when it starts (WARNING) and once when it ends (INFO), not once per
request: during an outage every request fails the same way. Only an operation that *began*
after the last change of state may change it again, so calls already in flight when Redis went
away (or came back) cannot make the state flap and log the same outage twice.
"""

from __future__ import annotations

import logging
import time
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass

from coredis.exceptions import RedisError
from limits.errors import StorageError

from onebox.ratelimit.models import RateLimitStorageError

logger = logging.getLogger(__name__)

# Connection and timeout errors are not all RedisErrors: a reset mid-command surfaces as the
# socket's OSError (ConnectionResetError, BrokenPipeError), which `limits` does not wrap.
# TimeoutError is an OSError too.
STORAGE_FAILURES: tuple[type[Exception], ...] = (
    RateLimitStorageError,
    StorageError,
    RedisError,
    OSError,
    EOFError,
)


@dataclass(frozen=True)
class StorageState:
    """A snapshot for ``/readyz`` and metrics."""

    healthy: bool
    outages: int  # outages begun since the process started
    failures: int  # storage operations that failed, in all outages
    down_since: float | None  # Unix time the current outage began
    last_error: str | None  # what the current outage's first failure said


class StorageHealth:
    """Tracks storage operations (see the module docstring). Single event loop; no locking."""

    def __init__(self, describe: str = "rate limit storage") -> None:
        self._describe = describe
        self.healthy = True
        self.outages = 0
        self.failures = 0
        self._last_error: str | None = None
        self._down_since: float | None = None  # Unix time, for display
        self._changed_at = time.monotonic()  # the last change of state, for ordering

    def state(self) -> StorageState:
        return StorageState(
            healthy=self.healthy,
            outages=self.outages,
            failures=self.failures,
            down_since=self._down_since,
            last_error=self._last_error,
        )

    @contextmanager
    def watch(self) -> Iterator[None]:
        """Around one storage operation: a failure is raised as :class:`RateLimitStorageError`
        and recorded; a success ends an outage. Other exceptions pass through untouched."""
        started = time.monotonic()
        try:
            yield
        except STORAGE_FAILURES as exc:
            self.failed(exc, started)
            if isinstance(exc, RateLimitStorageError):
                raise
            raise RateLimitStorageError(f"{self._describe} failed: {_reason(exc)}") from exc
        self.succeeded(started)

    def failed(self, exc: BaseException, started: float) -> None:
        self.failures += 1
        if not self.healthy or started < self._changed_at:
            return
        self.healthy = False
        self.outages += 1
        self._changed_at = time.monotonic()
        self._down_since = time.time()
        self._last_error = _reason(exc)
        logger.warning(
            "%s unavailable (%s); until it recovers, limits follow the failure policy",
            self._describe.capitalize(),
            self._last_error,
        )

    def succeeded(self, started: float) -> None:
        if self.healthy or started < self._changed_at:
            return
        down_for = time.monotonic() - self._changed_at
        self.healthy = True
        self._changed_at = time.monotonic()
        self._down_since = None
        self._last_error = None
        logger.info(
            "%s recovered after %.1f s (%d failed operations so far)",
            self._describe.capitalize(),
            down_for,
            self.failures,
        )


def _reason(exc: BaseException) -> str:
    """The root cause, e.g. ``ConnectionRefusedError: [Errno 111] Connect call failed``."""
    while isinstance(exc, (RateLimitStorageError, StorageError)) and exc.__cause__ is not None:
        exc = exc.__cause__
    if isinstance(exc, RateLimitStorageError):
        return str(exc)
    text = str(exc)
    return f"{type(exc).__name__}: {text}" if text else type(exc).__name__
