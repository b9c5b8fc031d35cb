"""Applies the rate limiter to a request: per API key, per user and per client IP. Callers
are anything shaped like :class:`Caller` (the users area's ``Principal`` is one)."""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from typing import Literal, Protocol

from onebox.core.errors import APIError
from onebox.core.metrics import metrics
from onebox.core.settings import Settings
from onebox.ratelimit import (
    Admission,
    Limits,
    LimitsConfig,
    RateLimiter,
    RateLimitExceeded,
    RateLimitStorageError,
    Subject,
    client_ip,
)
from onebox.ratelimit.models import Check

logger = logging.getLogger(__name__)

FailurePolicy = Literal["fail_open", "fail_closed"]

# Redis outages usually last seconds (a restart, a failover); a client told to come back
# sooner would only add load while it is down.
STORAGE_RETRY_AFTER = 5


class KeyQuota(Protocol):
    @property
    def requests_per_minute(self) -> int | None: ...
    @property
    def tokens_per_minute(self) -> int | None: ...
    @property
    def concurrent_streams(self) -> int | None: ...
    @property
    def tokens_per_day(self) -> int | None: ...
    @property
    def tokens_per_month(self) -> int | None: ...


class CallerKey(Protocol):
    @property
    def id(self) -> str: ...
    @property
    def limits(self) -> KeyQuota: ...


class Caller(Protocol):
    """Who is asking: a user, and the API key they came with, if any."""

    @property
    def user_id(self) -> str: ...
    @property
    def key(self) -> CallerKey | None: ...


def limits_config(settings: Settings) -> LimitsConfig:
    return LimitsConfig(
        storage_url=settings.rate_limit_storage,
        trusted_proxies=tuple(settings.trusted_proxies),
        per_user=Limits(
            requests_per_minute=settings.user_requests_per_minute,
            tokens_per_minute=settings.user_tokens_per_minute,
            concurrent_streams=settings.user_concurrent_streams,
            tokens_per_day=settings.user_tokens_per_day,
            tokens_per_month=settings.user_tokens_per_month,
        ),
        per_ip=Limits(
            requests_per_minute=settings.ip_requests_per_minute,
            concurrent_streams=settings.ip_concurrent_streams,
        ),
    )


def too_many(exc: RateLimitExceeded) -> APIError:
    metrics().ratelimit_refusals.labels(exc.subject.kind, exc.limit_name).inc()
    return APIError(
        429, exc.message, "rate_limit_error", code="rate_limit_exceeded",
        headers={"Retry-After": exc.retry_after_header},
    )  # fmt: skip


def storage_unavailable(reason: str) -> APIError:
    return APIError(
        503, f"{reason}; retry in {STORAGE_RETRY_AFTER} s",
        "service_unavailable", code="rate_limit_storage_unavailable",
        headers={"Retry-After": str(STORAGE_RETRY_AFTER)},
    )  # fmt: skip


class RequestLimiter:
    """What a request meets when the limiter's storage fails is set per path by a policy
    (``fail_open``: admitted unlimited; ``fail_closed``: 503 with Retry-After); the outage
    itself is logged by the limiter, once, not here per request."""

    def __init__(self, limiter: RateLimiter, config: LimitsConfig, settings: Settings) -> None:
        self.limiter = limiter
        self.config = config
        self.login_limits = Limits(requests_per_minute=settings.login_attempts_per_minute)
        self.request_policy: FailurePolicy = settings.rate_limit_failure_policy
        self.login_policy: FailurePolicy = settings.login_throttle_failure_policy

    def client_ip(
        self, peer: str | None, headers: Mapping[str, str] | Sequence[tuple[bytes, bytes]]
    ) -> str:
        return client_ip(peer, headers, self.config.trusted_proxies)

    async def admit(
        self, principal: Caller, ip: str, estimated_tokens: int = 0, extra: Sequence[Check] = ()
    ) -> Admission:
        """``extra``: subjects a door adds to the key's, the user's and the IP's (the widget's
        per-visitor address)."""
        key = principal.key
        key_limits = None
        if key is not None:
            key_limits = Limits(
                requests_per_minute=key.limits.requests_per_minute,
                tokens_per_minute=key.limits.tokens_per_minute,
                concurrent_streams=key.limits.concurrent_streams,
                tokens_per_day=key.limits.tokens_per_day,
                tokens_per_month=key.limits.tokens_per_month,
            )
        checks = [
            *self.config.checks(
                key_id=key.id if key else None,
                user_id=principal.user_id,
                ip=ip or None,
                key_limits=key_limits,
            ),
            *(check for check in extra if not check[1].is_unlimited),
        ]
        try:
            return await self.limiter.admit(checks, estimated_tokens=estimated_tokens)
        except RateLimitExceeded as exc:
            raise too_many(exc) from exc
        except RateLimitStorageError as exc:
            if self.request_policy == "fail_closed":
                raise storage_unavailable(
                    "Requests cannot be admitted right now: rate limits cannot be checked"
                ) from exc
            logger.debug("Rate-limit storage failed; admitting without limits: %s", exc)
            return await self.limiter.admit([], 0)  # touches no storage

    async def check_login(self, ip: str) -> None:
        if not ip:
            return
        try:
            admission = await self.limiter.admit([(Subject("login-ip", ip), self.login_limits)])
        except RateLimitExceeded as exc:
            raise too_many(exc) from exc
        except RateLimitStorageError as exc:
            if self.login_policy == "fail_closed":
                raise storage_unavailable(
                    "Sign-in is paused: login attempts cannot be throttled right now"
                ) from exc
            logger.debug("Rate-limit storage failed; sign-in not throttled: %s", exc)
            return
        await admission.release(0)
