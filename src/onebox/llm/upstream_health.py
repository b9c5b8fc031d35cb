"""Upstream health: the circuit snapshot, the failure record and the unavailable error
(used by :mod:`onebox.llm.openai_compat`)."""

from __future__ import annotations

from dataclasses import dataclass
from typing import Literal

from onebox.llm.base import ProviderUnavailableError

UnavailableReason = Literal["cooldown", "connect", "timeout", "status", "protocol", "pool"]


class UpstreamUnavailableError(ProviderUnavailableError):
    """Nothing was streamed: the upstream could not be reached or kept failing (``reason``),
    or its circuit is open after repeated failures (``reason == "cooldown"``)."""

    def __init__(
        self,
        message: str,
        *,
        reason: UnavailableReason,
        attempts: int,
        status_code: int | None = None,
        retry_after: float | None = None,
    ) -> None:
        super().__init__(message)
        self.reason = reason
        self.attempts = attempts
        self.status_code = status_code
        self.retry_after = retry_after


@dataclass(frozen=True, slots=True)
class UpstreamHealth:
    """A snapshot of one upstream's circuit, for ``/readyz`` and the models endpoint."""

    state: Literal["closed", "open", "half_open"]
    consecutive_failures: int
    cooling_down_until: float | None  # Unix time the cooldown ends, while open
    cooldown_remaining: float  # seconds, 0 unless open
    trial_in_flight: bool
    last_error: str | None


@dataclass(slots=True)
class _Failure:
    reason: UnavailableReason
    description: str
    retryable: bool = True
    status_code: int | None = None
    retry_after: float | None = None
