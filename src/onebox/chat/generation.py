"""Runs one assistant reply as a task that outlives the HTTP request.

The task, not the request, owns the assistant message's transaction: whether the reply
completes, fails, is stopped or runs past ``reply_max_seconds``, the turn saves the text
produced so far with the matching status. A client that goes away does not stop it: every
event gets an id and goes to the reply's event log (``chat/events.py``), so the page that
reloads, or a connection that drops, reattaches and replays what it missed. Stop and the
one-reply-per-conversation rule work across replicas through the same log backend.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator, Awaitable, Callable
from dataclasses import dataclass, field
from typing import Any

from onebox.chat.events import (
    MARKER_TTL,
    TERMINAL_EVENTS,
    EventLog,
    InFlight,
    LoggedEvent,
    MemoryEventLog,
    heartbeat,
)
from onebox.chat.models import Message
from onebox.chat.rendering import LiveRender, render_markdown
from onebox.chat.schemas import MessageOut
from onebox.chat.titles import TitleWriter
from onebox.chat.turn import Turn, TurnStatus
from onebox.llm.base import ProviderError, TextDelta, Usage

logger = logging.getLogger(__name__)

RunEvent = LoggedEvent  # the name the doors used before events had ids

FinalEvent = tuple[str, dict[str, Any]]


def message_out(message: Message) -> dict[str, Any]:
    return MessageOut.model_validate(message).model_dump(mode="json")


def final_event(message: Message | None) -> FinalEvent:
    """The last event of a reply that has ended, rebuilt from what was stored."""
    if message is None:
        error = {"message": "The reply was interrupted", "type": "generation_error"}
        return "error", {"error": error}
    if message.status == "complete":
        return "done", {"message": message_out(message)}
    text = message.error or "Stopped before the reply was complete"
    return "error", {
        "error": {"message": text, "type": "generation_error"},
        "message": message_out(message),
    }


@dataclass
class GenerationRun:
    turn: Turn
    events: list[LoggedEvent] = field(default_factory=list)  # all of them, for this process
    task: asyncio.Task[None] | None = None
    finished: bool = False
    _pending: list[LoggedEvent] = field(default_factory=list)  # not yet in the shared log
    _held: list[LoggedEvent] = field(default_factory=list)  # final ones, shown once logged
    _changed: asyncio.Event = field(default_factory=asyncio.Event)

    @property
    def message_id(self) -> str:
        return self.turn.message_id

    @property
    def conversation_id(self) -> str:
        assert self.turn.request.conversation is not None
        return self.turn.request.conversation.id

    def emit(self, name: str, data: dict[str, Any], *, local: bool = True) -> LoggedEvent:
        event = LoggedEvent(len(self.events) + len(self._held) + 1, name, data)
        self._pending.append(event)
        if local:
            self.events.append(event)
        else:
            self._held.append(event)
        self._signal()
        return event

    def _signal(self) -> None:
        self._changed.set()
        self._changed = asyncio.Event()

    def show_held(self) -> None:
        """Final events become visible here once the shared log has them."""
        self.events.extend(self._held)
        self._held.clear()
        self.finished = True
        self._signal()

    def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def follow(self, after: int = 0) -> AsyncIterator[LoggedEvent]:
        """The events with ids above ``after``, then the new ones until the reply ends."""
        position = after
        while True:
            changed = self._changed
            while position < len(self.events):
                position += 1
                yield self.events[position - 1]
            if self.finished:
                return
            await changed.wait()

    def stream(self) -> AsyncIterator[LoggedEvent]:
        return self.follow(0)


class GenerationManager:
    """The replies running in this process, one per conversation at most (across every
    replica when the event log is shared)."""

    def __init__(self, log: EventLog | None = None, max_seconds: float = 600.0) -> None:
        self.log: EventLog = log if log is not None else MemoryEventLog(10_000, 300)
        self.max_seconds = max_seconds
        self.runs: dict[str, GenerationRun] = {}
        self.claims: set[str] = set()  # conversations this process holds the marker of
        self._heartbeat: asyncio.Task[None] | None = None
        self.block_seconds = 5.0

    async def open(self) -> None:
        await self.log.start(self._stop_local)
        self._heartbeat = asyncio.create_task(
            heartbeat(self.log, lambda: list(self.claims), MARKER_TTL / 3),
            name="reply-markers",
        )
        self.titles = TitleWriter()  # after a first exchange: the model names the chat

    def is_running(self, conversation_id: str) -> bool:
        """Running in this process."""
        return conversation_id in self.runs

    async def in_flight(self, conversation_id: str) -> InFlight | None:
        """The reply running in the conversation, on any replica."""
        run = self.runs.get(conversation_id)
        if run is not None:
            assert run.turn.user_message is not None
            return InFlight(run.message_id, run.turn.user_message.id)
        try:
            return await self.log.in_flight(conversation_id)
        except Exception:
            logger.warning("Could not read the reply in flight", exc_info=True)
            return None

    async def claim(self, conversation_id: str) -> bool:
        """Before a turn is prepared: False when a reply is already running in it."""
        if conversation_id in self.runs or conversation_id in self.claims:
            return False
        self.claims.add(conversation_id)
        try:
            taken = await self.log.claim(conversation_id)
        except asyncio.CancelledError:
            self.claims.discard(conversation_id)
            raise
        except Exception:
            # The shared log is down: this process still allows one reply per conversation.
            logger.warning("Could not mark %s in flight", conversation_id, exc_info=True)
            taken = True
        if not taken:
            self.claims.discard(conversation_id)
        return taken

    async def release(self, conversation_id: str) -> None:
        """Gives a claim back (the turn was refused before it started)."""
        self.claims.discard(conversation_id)
        try:
            await self.log.release(conversation_id)
        except Exception:
            logger.warning("Could not release %s", conversation_id, exc_info=True)

    async def start(self, turn: Turn, opening: dict[str, Any] | None = None) -> GenerationRun:
        run = GenerationRun(turn)
        assert turn.user_message is not None
        self.claims.add(run.conversation_id)
        try:
            await self.log.bind(run.conversation_id, InFlight(run.message_id, turn.user_message.id))
        except Exception:
            logger.warning("Could not mark reply %s in flight", run.message_id, exc_info=True)
        if opening is not None:
            run.emit("message", opening)
        if turn.retrieval_used:
            # Sources go out before the first token, so the UI can show what was read.
            run.emit("sources", {"sources": turn.sources_out(False)})
            run.emit("support", turn.support_event())
        self.runs[run.conversation_id] = run
        run.task = asyncio.create_task(self._run(run), name=f"generation-{run.message_id}")
        return run

    async def stop(self, conversation_id: str) -> bool:
        """Stops the conversation's reply wherever it runs; False when none is running."""
        if self._stop_local(conversation_id):
            return True
        running = await self.in_flight(conversation_id)
        if running is None or not running.message_id:
            return False
        try:
            await self.log.request_stop(conversation_id)
        except Exception:
            logger.warning("Could not ask for %s to stop", conversation_id, exc_info=True)
            return False
        return True

    def _stop_local(self, conversation_id: str) -> bool:
        run = self.runs.get(conversation_id)
        if run is None:
            return False
        run.stop()
        return True

    async def follow(
        self,
        conversation_id: str,
        message_id: str,
        after: int,
        stored: Callable[[], Awaitable[Message | None]],
    ) -> AsyncIterator[LoggedEvent | None]:
        """A reply's events after ``after``, live until it ends; ``None`` is a keep-alive.
        A reply that has ended (or whose replica died) ends with its stored final state."""
        run = self.runs.get(conversation_id)
        if run is not None and run.message_id == message_id:
            async for event in run.follow(after):
                yield event
            return
        position, wait = after, 0.0
        while True:
            events = await self.log.read(message_id, position, wait)
            for event in events:
                position = event.id
                yield event
                if event.name in TERMINAL_EVENTS:
                    return
            if events:
                continue
            running = await self.log.in_flight(conversation_id)
            if running is None or running.message_id != message_id:
                for event in await self.log.read(message_id, position, 0):
                    position = event.id
                    yield event
                    if event.name in TERMINAL_EVENTS:
                        return
                name, data = final_event(await stored())
                yield LoggedEvent(position + 1, name, data)
                return
            if wait:
                yield None
            wait = self.block_seconds

    async def shutdown(self) -> None:
        runs = list(self.runs.values())
        for run in runs:
            run.stop()
        tasks = [run.task for run in runs if run.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)
        if self._heartbeat is not None:
            self._heartbeat.cancel()
            with contextlib.suppress(BaseException):
                await self._heartbeat
        for conversation_id in list(self.claims):
            with contextlib.suppress(Exception):
                await self.release(conversation_id)
        await self.log.aclose()

    async def _write(self, run: GenerationRun, stop: asyncio.Event) -> None:
        """Copies the run's events to the shared log, in batches, until told to stop."""
        while True:
            changed = run._changed
            if run._pending:
                batch, run._pending = run._pending, []
                try:
                    await self.log.append(run.message_id, batch)
                except Exception:
                    logger.warning(
                        "Could not log events of reply %s", run.message_id, exc_info=True
                    )
                continue
            if stop.is_set():
                return
            waiter = asyncio.ensure_future(changed.wait())
            stopper = asyncio.ensure_future(stop.wait())
            try:
                await asyncio.wait({waiter, stopper}, return_when=asyncio.FIRST_COMPLETED)
            finally:
                waiter.cancel()
                stopper.cancel()
        await self.titles.shutdown()

    async def _run(self, run: GenerationRun) -> None:
        stop_writing = asyncio.Event()
        writer = asyncio.create_task(self._write(run, stop_writing))
        try:
            await self._generate(run)
        finally:
            await asyncio.shield(self._close(run, writer, stop_writing))

    async def _close(
        self, run: GenerationRun, writer: asyncio.Task[None], stop_writing: asyncio.Event
    ) -> None:
        # The final events reach the shared log, and the conversation is free again,
        # before anyone sees them: a client may send its next message at once.
        stop_writing.set()
        with contextlib.suppress(Exception):
            await writer
        self.runs.pop(run.conversation_id, None)
        self.claims.discard(run.conversation_id)
        try:
            await self.log.release(run.conversation_id)
            await self.log.finish(run.message_id)
        except Exception:
            logger.warning("Could not close the event log of %s", run.message_id, exc_info=True)
        run.show_held()

    async def _generate(self, run: GenerationRun) -> None:
        turn = run.turn
        status: TurnStatus = "complete"
        error: str | None = None
        error_type: str | None = None
        live = LiveRender()  # "render" events: the reply so far as html, now and then
        try:
            async with (
                asyncio.timeout(self.max_seconds),
                contextlib.aclosing(turn.chunks()) as chunks,
            ):
                async for chunk in chunks:
                    if isinstance(chunk, TextDelta):
                        run.emit("delta", {"text": chunk.text})
                        if (html := live.feed(chunk.text)) is not None:
                            run.emit("render", {"html": html})
        except TimeoutError:
            status, error_type = "cancelled", "timeout"
            error = f"Stopped after the time limit of {self.max_seconds:g} seconds"
        except asyncio.CancelledError:
            status, error_type = "cancelled", "cancelled"
            error = "Stopped before the reply was complete"
        except ProviderError as exc:
            status, error, error_type = "error", str(exc), type(exc).__name__
        except Exception:
            logger.exception("Generation %s failed", run.message_id)
            status, error_type = "error", "internal"
            error = "The model failed while generating the reply"
        try:
            message = await turn.finish(status, error_type, error)
        except Exception:
            logger.exception("Could not store assistant message %s", run.message_id)
            error_data = {"message": "Could not store the reply", "type": "api_error"}
            run.emit("error", {"error": error_data}, local=False)
            return
        assert message is not None
        # The last frame is the stored message's own html, so nothing moves at the end.
        run.emit("render", {"html": render_markdown(message.content)}, local=False)
        if turn.usage is not None:
            run.emit("usage", _usage_event(turn.usage, message), local=False)
        name, data = final_event(message)
        if status != "complete":
            data["error"]["message"] = error
        run.emit(name, data, local=False)
        if status == "complete":
            self.titles.after_reply(turn, message)


def _usage_event(usage: Usage, message: Message) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "finish_reason": usage.finish_reason,
        "ttft_ms": message.ttft_ms,
        "duration_ms": message.duration_ms,
    }
