"""Options, counters, errors and shared state of the fake upstream server."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from onebox.testing.fake_upstream.replies import DEFAULT_TOKENS, FAIL_MODES


@dataclass
class Options:
    ttft_ms: float = 0.0
    tokens_per_second: float = 0.0
    tokens: int = DEFAULT_TOKENS
    fail_mode: str = "none"
    fail_count: int | None = None
    model: str | None = None
    api_key: str | None = None

    def validate(self) -> None:
        if self.fail_mode not in FAIL_MODES:
            raise ValueError(f"fail_mode must be one of {', '.join(FAIL_MODES)}")
        if self.ttft_ms < 0 or self.tokens_per_second < 0 or self.tokens < 0:
            raise ValueError("ttft_ms, tokens_per_second and tokens must not be negative")
        if self.fail_count is not None and self.fail_count < 0:
            raise ValueError("fail_count must not be negative")


@dataclass
class Stats:
    requests: int = 0  # every /v1/... request
    chat_requests: int = 0
    embedding_requests: int = 0
    completed: int = 0  # chat/embedding responses sent in full (success only)
    disconnects: int = 0  # the client closed the connection before the response finished
    active_streams: int = 0
    active_requests: int = 0  # chat/embedding responses in progress, streamed or not
    injected_faults: int = 0
    client_errors: int = 0  # 4xx answers to invalid requests (not injected)
    connections: int = 0  # open now
    connections_total: int = 0


class _ApiError(Exception):
    def __init__(
        self,
        status: int,
        message: str,
        error_type: str = "invalid_request_error",
        code: str | None = None,
        param: str | None = None,
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.error_type = error_type
        self.code = code
        self.param = param

    def body(self) -> bytes:
        error = {
            "message": self.message,
            "type": self.error_type,
            "param": self.param,
            "code": self.code,
        }
        return json.dumps({"error": error}).encode()


def _invalid(param: str, message: str) -> _ApiError:
    return _ApiError(400, message, code="invalid_value", param=param)


_INJECTED_STATUS = {
    "status-500": (500, "server_error", "The fake upstream failed as configured (500)"),
    "status-503": (503, "service_unavailable", "The fake upstream is unavailable (503)"),
    "status-429": (429, "rate_limit_exceeded", "Rate limit reached for the fake upstream"),
}


class _State:
    def __init__(self, options: Options) -> None:
        self.options = options
        self.stats = Stats()
        self.failures_injected = 0
        self.last_request: Any = None
        self.sequence = 0

    def reset(self) -> None:
        connections = self.stats.connections
        active_streams = self.stats.active_streams
        active_requests = self.stats.active_requests
        self.stats = Stats(
            connections=connections,
            active_streams=active_streams,
            active_requests=active_requests,
        )
        self.failures_injected = 0
        self.last_request = None

    def take_failure(self) -> bool:
        """Whether this request gets the configured status/slow fault (first K, or all)."""
        limit = self.options.fail_count
        if limit is not None and self.failures_injected >= limit:
            return False
        self.failures_injected += 1
        self.stats.injected_faults += 1
        return True

    def next_id(self) -> str:
        self.sequence += 1
        return f"chatcmpl-fake{self.sequence:08x}"


_OPTION_TYPES: dict[str, type] = {
    "ttft_ms": float,
    "tokens_per_second": float,
    "tokens": int,
    "fail_mode": str,
    "fail_count": int,
    "model": str,
    "api_key": str,
}


def _coerce(changes: dict[str, Any]) -> dict[str, Any]:
    """JSON values to option types (None stays None where an option allows it)."""
    coerced: dict[str, Any] = {}
    for name, value in changes.items():
        kind = _OPTION_TYPES[name]
        if value is None and name in {"fail_count", "model", "api_key"}:
            coerced[name] = None
        elif isinstance(value, bool) or not isinstance(value, int | float | str):
            raise TypeError(f"{name}: expected {kind.__name__}, got {value!r}")
        elif kind is str:
            coerced[name] = str(value)
        else:
            coerced[name] = kind(value)
    return coerced


def _parse_json_object(body: bytes) -> dict[str, Any]:
    try:
        value = json.loads(body)
    except ValueError as exc:
        raise _ApiError(400, f"We could not parse the JSON body of your request: {exc}") from exc
    if not isinstance(value, dict):
        raise _ApiError(400, "The request body must be a JSON object")
    return value
