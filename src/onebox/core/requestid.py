"""The request id: accepted from ``X-Request-ID`` when well-formed, else generated; carried
in a context variable so log lines, jobs queued by the request and upstream calls carry it
too."""

from __future__ import annotations

import os
import re
from contextvars import ContextVar

HEADER = "X-Request-ID"
REQUEST_ID_FIELD = "request_id"  # in a job's payload
MAX_LENGTH = 128
# Letters, digits and a few separators: safe in logs and headers, and enough for UUIDs,
# ULIDs and the ids load balancers and tracing systems send.
_WELL_FORMED = re.compile(rb"[A-Za-z0-9._:@+=-]{1,128}")

request_id: ContextVar[str | None] = ContextVar("onebox_request_id", default=None)


def new_request_id() -> str:
    return os.urandom(16).hex()


def accept_request_id(sent: bytes | None) -> str:
    """The client's id when it is well-formed, else a new one."""
    if sent and _WELL_FORMED.fullmatch(sent):
        return sent.decode("ascii")
    return new_request_id()


def valid_request_id(value: object) -> str | None:
    """``value`` when it is a well-formed id (e.g. one read back from a job row)."""
    if isinstance(value, str) and _WELL_FORMED.fullmatch(value.encode("ascii", "replace")):
        return value
    return None


def traced_headers(headers: dict[str, str]) -> dict[str, str]:
    """``headers`` plus ``X-Request-ID`` when a request id is current (upstream calls)."""
    current = request_id.get()
    return headers if current is None else {**headers, HEADER: current}
