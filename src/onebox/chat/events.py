"""Where running replies keep what every replica must see: each reply's event log (so a
client that reloads or loses its connection replays what it missed, then follows live),
each conversation's in-flight marker (one reply at a time: a 409 on any replica) and Stop
requests (the replica that runs the reply obeys).

Two backends behind one small interface, chosen by a URL (``ONEBOX_EVENTS_URL``):
``memory://`` for one process, ``redis://host:6379/0`` for several replicas (a Redis
stream per reply: ``XADD`` with ``MAXLEN``, ``XREAD BLOCK``, a TTL once the reply ends; the
marker is a key with an expiry the owner keeps refreshing; Stop is published on a channel).
Event ids are 1, 2, 3… per reply; a reader asks for the events after the last id it saw.
"""

from __future__ import annotations

import asyncio
import contextlib
import json
import logging
import time
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any, Protocol

logger = logging.getLogger(__name__)

TERMINAL_EVENTS = frozenset({"done", "error"})
MARKER_TTL = 15.0  # seconds a marker outlives its owner's last refresh (a crashed replica)


@dataclass(frozen=True, slots=True)
class LoggedEvent:
    id: int
    name: str
    data: dict[str, Any]


@dataclass(frozen=True, slots=True)
class InFlight:
    """The reply running in a conversation; empty ids while the turn is being prepared."""

    message_id: str
    parent_id: str


StopHandler = Callable[[str], object]


class EventLog(Protocol):
    async def start(self, on_stop: StopHandler) -> None:
        """Connect; ``on_stop(conversation_id)`` is called for every Stop request."""

    async def append(self, reply_id: str, events: Sequence[LoggedEvent]) -> None: ...

    async def finish(self, reply_id: str) -> None:
        """The reply ended: its log is kept for a while, then forgotten."""

    async def read(self, reply_id: str, after: int, wait: float) -> list[LoggedEvent]:
        """Events with ids above ``after``; waits up to ``wait`` seconds when there are none."""

    async def claim(self, conversation_id: str) -> bool:
        """Marks a reply in flight in the conversation; False when one already is."""

    async def bind(self, conversation_id: str, running: InFlight) -> None:
        """Names the reply a claim became."""

    async def refresh(self, conversation_ids: Sequence[str]) -> None:
        """Keeps the markers of the replies this process runs alive."""

    async def release(self, conversation_id: str) -> None: ...

    async def in_flight(self, conversation_id: str) -> InFlight | None: ...

    async def request_stop(self, conversation_id: str) -> None:
        """Asks whichever replica runs the conversation's reply to stop it."""

    async def aclose(self) -> None: ...


# --------------------------------------------------------------------------- in memory


@dataclass
class _MemoryLog:
    events: deque[LoggedEvent]
    changed: asyncio.Event = field(default_factory=asyncio.Event)
    expires: float | None = None


class MemoryEventLog:
    """One process: logs in dicts (bounded, swept a while after their reply ends)."""

    def __init__(self, max_events: int, keep_seconds: float) -> None:
        self.max_events = max_events
        self.keep_seconds = keep_seconds
        self._logs: dict[str, _MemoryLog] = {}
        self._in_flight: dict[str, InFlight] = {}
        self._on_stop: StopHandler = lambda _conversation_id: None
        self._next_sweep = 0.0

    async def start(self, on_stop: StopHandler) -> None:
        self._on_stop = on_stop

    def _log(self, reply_id: str) -> _MemoryLog:
        now = time.monotonic()
        if now >= self._next_sweep:  # at most once a second, however many replies run
            self._next_sweep = now + 1.0
            for key in [k for k, log in self._logs.items() if log.expires and log.expires < now]:
                del self._logs[key]
        log = self._logs.get(reply_id)
        if log is None:
            # A reader may come first (it checked the reply is running): it waits here.
            log = self._logs[reply_id] = _MemoryLog(deque(maxlen=self.max_events))
            log.expires = now + MARKER_TTL
        return log

    async def append(self, reply_id: str, events: Sequence[LoggedEvent]) -> None:
        log = self._log(reply_id)
        log.expires = None
        log.events.extend(events)
        log.changed.set()
        log.changed = asyncio.Event()

    async def finish(self, reply_id: str) -> None:
        self._log(reply_id).expires = time.monotonic() + self.keep_seconds

    async def read(self, reply_id: str, after: int, wait: float) -> list[LoggedEvent]:
        log = self._log(reply_id)
        found = [event for event in log.events if event.id > after]
        if found or wait <= 0:
            return found
        with contextlib.suppress(TimeoutError):
            await asyncio.wait_for(log.changed.wait(), wait)
        return [event for event in log.events if event.id > after]

    async def claim(self, conversation_id: str) -> bool:
        if conversation_id in self._in_flight:
            return False
        self._in_flight[conversation_id] = InFlight("", "")
        return True

    async def bind(self, conversation_id: str, running: InFlight) -> None:
        self._in_flight[conversation_id] = running

    async def refresh(self, conversation_ids: Sequence[str]) -> None:
        return None

    async def release(self, conversation_id: str) -> None:
        self._in_flight.pop(conversation_id, None)

    async def in_flight(self, conversation_id: str) -> InFlight | None:
        return self._in_flight.get(conversation_id)

    async def request_stop(self, conversation_id: str) -> None:
        self._on_stop(conversation_id)

    async def aclose(self) -> None:
        self._logs.clear()


# --------------------------------------------------------------------------------- Redis

# Deletes the marker only while it is still ours (a marker that expired and was claimed
# again by another replica's reply stays).
_RELEASE = """
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0
"""
# Refreshes a marker only while it is still ours.
_REFRESH = """
for i, key in ipairs(KEYS) do
  if redis.call('GET', key) == ARGV[i + 1] then redis.call('PEXPIRE', key, ARGV[1]) end
end
return 0
"""


class RedisEventLog:
    """Several replicas: one Redis stream per reply, a marker key per conversation, a Stop
    channel every replica listens to."""

    def __init__(
        self,
        url: str,
        max_events: int,
        keep_seconds: float,
        running_seconds: float,
        prefix: str = "onebox:reply:",
        block_seconds: float = 5.0,
    ) -> None:
        import redis.asyncio as aioredis

        self.max_events = max_events
        self.keep_seconds = keep_seconds
        self.running_seconds = running_seconds  # the longest a reply may run, plus margin
        self.prefix = prefix
        self.block_seconds = block_seconds
        self.redis = aioredis.Redis.from_url(
            url, socket_connect_timeout=5, socket_timeout=block_seconds + 25, decode_responses=True
        )
        self._owned: dict[str, str] = {}  # conversation id -> our marker value
        self._listener: asyncio.Task[None] | None = None
        self._on_stop: StopHandler = lambda _conversation_id: None

    def _events_key(self, reply_id: str) -> str:
        return f"{self.prefix}{reply_id}:events"

    def _marker_key(self, conversation_id: str) -> str:
        return f"{self.prefix}running:{conversation_id}"

    @property
    def _stop_channel(self) -> str:
        return f"{self.prefix}stop"

    async def start(self, on_stop: StopHandler) -> None:
        self._on_stop = on_stop
        await self.redis.ping()  # a wrong URL fails at start, not on the first reply
        ready = asyncio.get_running_loop().create_future()
        self._listener = asyncio.create_task(self._listen(ready), name="reply-stop-listener")
        await ready

    async def _listen(self, ready: asyncio.Future[None]) -> None:
        """Follows the Stop channel for the life of the process, reconnecting after errors."""
        delay = 0.5
        while True:
            pubsub = self.redis.pubsub(ignore_subscribe_messages=True)
            try:
                await pubsub.subscribe(self._stop_channel)
                if not ready.done():
                    ready.set_result(None)
                delay = 0.5
                while True:
                    message = await pubsub.get_message(timeout=self.block_seconds)
                    if message is not None and message.get("type") == "message":
                        self._on_stop(str(message["data"]))
            except asyncio.CancelledError:
                raise
            except Exception:
                logger.warning("Reply stop channel lost; reconnecting", exc_info=True)
                if not ready.done():
                    ready.set_result(None)
                await asyncio.sleep(delay)
                delay = min(delay * 2, 10.0)
            finally:
                with contextlib.suppress(Exception):
                    await pubsub.aclose()

    async def append(self, reply_id: str, events: Sequence[LoggedEvent]) -> None:
        key = self._events_key(reply_id)
        async with self.redis.pipeline(transaction=False) as pipe:
            for event in events:
                fields = {"e": event.name, "d": json.dumps(event.data, default=str)}
                pipe.xadd(key, fields, id=f"{event.id}-0", maxlen=self.max_events)
            # A replica that dies mid-reply leaves a log that still goes away.
            pipe.expire(key, int(self.running_seconds + self.keep_seconds))
            await pipe.execute()

    async def finish(self, reply_id: str) -> None:
        await self.redis.expire(self._events_key(reply_id), int(self.keep_seconds))

    async def read(self, reply_id: str, after: int, wait: float) -> list[LoggedEvent]:
        key = self._events_key(reply_id)
        block = int(wait * 1000) if wait > 0 else None
        answer = await self.redis.xread({key: f"{after}-0"}, count=1000, block=block)
        found: list[LoggedEvent] = []
        for _stream, entries in answer or []:
            for entry_id, fields in entries:
                found.append(
                    LoggedEvent(
                        int(entry_id.split("-", 1)[0]), fields["e"], json.loads(fields["d"])
                    )
                )
        return found

    async def claim(self, conversation_id: str) -> bool:
        value = f"{time.time_ns()}:"
        taken = await self.redis.set(
            self._marker_key(conversation_id), value, nx=True, px=int(MARKER_TTL * 1000)
        )
        if taken:
            self._owned[conversation_id] = value
        return bool(taken)

    async def bind(self, conversation_id: str, running: InFlight) -> None:
        old = self._owned.get(conversation_id)
        value = f"{old.split(':', 1)[0] if old else time.time_ns()}:{running.message_id}/{running.parent_id}"
        self._owned[conversation_id] = value
        await self.redis.set(self._marker_key(conversation_id), value, px=int(MARKER_TTL * 1000))

    async def refresh(self, conversation_ids: Sequence[str]) -> None:
        owned = [(c, self._owned[c]) for c in conversation_ids if c in self._owned]
        if not owned:
            return
        keys = [self._marker_key(c) for c, _ in owned]
        await self.redis.eval(
            _REFRESH, len(keys), *keys, int(MARKER_TTL * 1000), *(v for _, v in owned)
        )

    async def release(self, conversation_id: str) -> None:
        value = self._owned.pop(conversation_id, None)
        if value is not None:
            await self.redis.eval(_RELEASE, 1, self._marker_key(conversation_id), value)

    async def in_flight(self, conversation_id: str) -> InFlight | None:
        value = await self.redis.get(self._marker_key(conversation_id))
        if value is None:
            return None
        ids = str(value).split(":", 1)[1]
        message_id, _, parent_id = ids.partition("/")
        return InFlight(message_id, parent_id)

    async def request_stop(self, conversation_id: str) -> None:
        await self.redis.publish(self._stop_channel, conversation_id)

    async def aclose(self) -> None:
        if self._listener is not None:
            self._listener.cancel()
            with contextlib.suppress(BaseException):
                await self._listener
        await self.redis.aclose()


def build_event_log(
    url: str, *, max_events: int, keep_seconds: float, running_seconds: float
) -> EventLog:
    """``memory://`` or ``redis://…`` / ``rediss://…``."""
    if url.startswith("memory://"):
        return MemoryEventLog(max_events, keep_seconds)
    if url.startswith(("redis://", "rediss://", "unix://")):
        return RedisEventLog(url, max_events, keep_seconds, running_seconds)
    raise ValueError(f"unsupported events URL {url!r}: use memory:// or redis://host:port/db")


async def heartbeat(log: EventLog, owned: Callable[[], Sequence[str]], every: float) -> None:
    """Refreshes this process's markers until cancelled (errors are logged, not raised)."""
    while True:
        await asyncio.sleep(every)
        try:
            await log.refresh(list(owned()))
        except Exception:
            logger.warning("Could not refresh reply markers", exc_info=True)


__all__ = [
    "MARKER_TTL",
    "TERMINAL_EVENTS",
    "EventLog",
    "InFlight",
    "LoggedEvent",
    "MemoryEventLog",
    "RedisEventLog",
    "build_event_log",
    "heartbeat",
]
