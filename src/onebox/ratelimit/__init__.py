"""Request, token and concurrency limits and token quotas, per API key, user and client IP.

Counts live in a :mod:`limits` storage chosen by URL -- ``memory://`` for the single embedded
process, ``redis://host:port/db`` so every replica shares them::

    limiter = await RateLimiter.from_url("redis://127.0.0.1:6379/0")
    checks = config.checks(key_id=key.id, user_id=user.id, ip=client_ip(peer, headers, proxies))
    try:
        admission = await limiter.admit(checks, estimated_tokens=prompt_tokens + max_tokens)
    except RateLimitExceeded as exc:
        return 429 with exc.message and Retry-After: exc.retry_after_header
    async with admission:
        ...stream...
        admission.tokens_used = usage.total_tokens
"""

from onebox.ratelimit.admission import Admission
from onebox.ratelimit.backends import StorageURL, parse_storage_url
from onebox.ratelimit.client_ip import (
    UNVERIFIED_CLIENT,
    client_ip,
    parse_ip,
    parse_trusted_proxies,
    server_rewritten_client,
)
from onebox.ratelimit.limiter import RateLimiter
from onebox.ratelimit.models import (
    CONCURRENT_STREAMS,
    REQUESTS_PER_MINUTE,
    TOKENS_PER_DAY,
    TOKENS_PER_MINUTE,
    TOKENS_PER_MONTH,
    Limits,
    LimitsConfig,
    RateLimitExceeded,
    RateLimitStorageError,
    Subject,
    Usage,
)
from onebox.ratelimit.storage_health import StorageState

__all__ = [
    "CONCURRENT_STREAMS",
    "REQUESTS_PER_MINUTE",
    "TOKENS_PER_DAY",
    "TOKENS_PER_MINUTE",
    "TOKENS_PER_MONTH",
    "UNVERIFIED_CLIENT",
    "Admission",
    "Limits",
    "LimitsConfig",
    "RateLimitExceeded",
    "RateLimitStorageError",
    "RateLimiter",
    "StorageState",
    "StorageURL",
    "Subject",
    "Usage",
    "client_ip",
    "parse_ip",
    "parse_storage_url",
    "parse_trusted_proxies",
    "server_rewritten_client",
]
