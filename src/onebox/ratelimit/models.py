"""Value types of the rate limiter: limits, subjects, configuration, errors, usage."""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field, fields

REQUESTS_PER_MINUTE = "requests_per_minute"
TOKENS_PER_MINUTE = "tokens_per_minute"
CONCURRENT_STREAMS = "concurrent_streams"
TOKENS_PER_DAY = "tokens_per_day"
TOKENS_PER_MONTH = "tokens_per_month"

_SUBJECT_LABELS = {
    "key": "API key",
    "user": "User",
    "ip": "IP address",
    "visitor": "Widget visitor",
}
_LIMIT_PHRASES = {
    REQUESTS_PER_MINUTE: "rate limit of {n} requests/min",
    TOKENS_PER_MINUTE: "token rate limit of {n} tokens/min",
    CONCURRENT_STREAMS: "concurrency limit of {n} simultaneous requests",
    TOKENS_PER_DAY: "daily token quota of {n} tokens",
    TOKENS_PER_MONTH: "monthly token quota of {n} tokens",
}


@dataclass(frozen=True)
class Limits:
    """Limits for one subject; ``None`` means unlimited. Day and month are UTC calendar periods."""

    requests_per_minute: int | None = None
    tokens_per_minute: int | None = None
    concurrent_streams: int | None = None
    tokens_per_day: int | None = None
    tokens_per_month: int | None = None

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if value is not None and (
                isinstance(value, bool) or not isinstance(value, int) or value < 1
            ):
                raise ValueError(f"{f.name} must be a positive integer or None, not {value!r}")

    @property
    def is_unlimited(self) -> bool:
        return all(getattr(self, f.name) is None for f in fields(self))


@dataclass(frozen=True)
class Subject:
    """Who is counted: ``Subject("key", key_id)``, ``Subject("user", user_id)``, ``Subject("ip", addr)``."""

    kind: str
    id: str

    def __post_init__(self) -> None:
        if not self.kind or not isinstance(self.kind, str):
            raise ValueError("Subject.kind must be a non-empty string")
        if not isinstance(self.id, str) or not self.id:
            raise ValueError("Subject.id must be a non-empty string")

    @property
    def label(self) -> str:
        """Human name of the kind, for messages ("API key", "User", "IP address")."""
        return _SUBJECT_LABELS.get(self.kind, self.kind)

    def __str__(self) -> str:
        return f"{self.kind}:{self.id}"


def format_wait(seconds: float) -> str:
    """A short human duration: ``12 s``, ``4 min``, ``5 h 3 min``, ``12 days``."""
    secs = max(1, math.ceil(seconds))
    if secs < 120:
        return f"{secs} s"
    if secs < 7200:
        return f"{math.ceil(secs / 60)} min"
    if secs < 172_800:
        hours, rest = divmod(secs, 3600)
        return f"{hours} h {math.ceil(rest / 60)} min"
    return f"{math.ceil(secs / 86_400)} days"


Check = tuple[Subject, Limits]  # one subject and the limits that apply to it


class RateLimitExceeded(Exception):
    """A request was refused; ``retry_after`` (seconds, > 0) says when trying again may succeed."""

    def __init__(self, subject: Subject, limit_name: str, limit: int, retry_after: float) -> None:
        self.subject = subject
        self.limit_name = limit_name
        self.limit = limit
        self.retry_after = max(float(retry_after), 0.001)
        phrase = _LIMIT_PHRASES.get(limit_name, limit_name + " limit of {n}").format(n=limit)
        self.message = (
            f"{subject.label} {phrase} exceeded; retry in {format_wait(self.retry_after)}"
        )
        super().__init__(self.message)

    @property
    def retry_after_header(self) -> str:
        """The value for an HTTP ``Retry-After`` header (whole seconds, at least 1)."""
        return str(max(1, math.ceil(self.retry_after)))


class RateLimitStorageError(Exception):
    """The shared counter store (Redis) failed; the caller decides whether to fail open or closed."""


@dataclass(frozen=True)
class Usage:
    """Current counts for one subject, for display."""

    requests_this_minute: int
    tokens_this_minute: int
    tokens_today: int
    tokens_this_month: int
    concurrent_streams: int


@dataclass(frozen=True)
class LimitsConfig:
    """Everything the application configures; filled from :class:`onebox.core.settings.Settings`.

    ``storage_url``: ``memory://`` (one process) or ``redis://host:port/db`` (shared by replicas;
    also ``rediss://`` and ``redis+unix:///path.sock?db=0``). ``trusted_proxies``: addresses or
    CIDRs whose ``X-Forwarded-For`` is believed (see :func:`onebox.ratelimit.client_ip`).
    """

    storage_url: str = "memory://"
    key_prefix: str = "onebox:rl"
    lease_seconds: float = 60.0
    trusted_proxies: tuple[str, ...] = ()
    per_key: Limits = field(default_factory=Limits)
    per_user: Limits = field(default_factory=Limits)
    per_ip: Limits = field(default_factory=Limits)

    def checks(
        self,
        *,
        key_id: str | None = None,
        user_id: str | None = None,
        ip: str | None = None,
        key_limits: Limits | None = None,
        user_limits: Limits | None = None,
    ) -> Sequence[tuple[Subject, Limits]]:
        """The (subject, limits) pairs for one request; ``*_limits`` override the defaults
        (e.g. limits stored on an API key). Subjects without any limit are left out."""
        candidates = [
            ("key", key_id, key_limits or self.per_key),
            ("user", user_id, user_limits or self.per_user),
            ("ip", ip, self.per_ip),
        ]
        return [
            (Subject(kind, ident), limits)
            for kind, ident, limits in candidates
            if ident and not limits.is_unlimited
        ]
