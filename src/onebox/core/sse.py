"""Server-Sent Events framing."""

from __future__ import annotations

import json
from typing import Any


def format_event(event: str, data: Any, event_id: int | None = None) -> bytes:
    lines = []
    if event_id is not None:
        lines.append(f"id: {event_id}")
    lines.append(f"event: {event}")
    payload = json.dumps(data, separators=(",", ":"), ensure_ascii=False, default=str)
    lines.append(f"data: {payload}")
    return ("\n".join(lines) + "\n\n").encode()


SSE_HEADERS = {
    "Cache-Control": "no-cache",
    "X-Accel-Buffering": "no",  # tell nginx not to buffer the stream
}
