"""Parses a Server-Sent Events body the way a browser would (enough for our events)."""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any


@dataclass
class Event:
    id: str | None
    name: str
    data: Any


def parse_events(body: str) -> list[Event]:
    events = []
    for frame in body.replace("\r\n", "\n").split("\n\n"):
        if not frame.strip():
            continue
        fields: dict[str, str] = {}
        for line in frame.split("\n"):
            key, _, value = line.partition(":")
            fields[key] = value[1:] if value.startswith(" ") else value
        if "data" not in fields:
            continue  # a comment (keep-alive) or an empty frame: no event
        events.append(
            Event(fields.get("id"), fields.get("event", "message"), json.loads(fields["data"]))
        )
    return events
