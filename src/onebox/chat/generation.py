"""Runs one assistant reply as a task that outlives the HTTP request.

The task, not the request, owns the assistant message's transaction: whether the reply
completes, fails, is stopped, or the client goes away, the turn saves the text produced so
far with the matching status. The request only relays events from a queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from onebox.chat.models import Message
from onebox.chat.schemas import MessageOut
from onebox.chat.turn import Turn, TurnStatus
from onebox.llm.base import ProviderError, TextDelta, Usage

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunEvent:
    name: str
    data: dict[str, Any]


def message_out(message: Message) -> dict[str, Any]:
    return MessageOut.model_validate(message).model_dump(mode="json")


@dataclass
class GenerationRun:
    turn: Turn
    events: asyncio.Queue[RunEvent | None] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None

    @property
    def message_id(self) -> str:
        return self.turn.message_id

    @property
    def conversation_id(self) -> str:
        assert self.turn.request.conversation is not None
        return self.turn.request.conversation.id

    def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def stream(self) -> AsyncIterator[RunEvent]:
        while (event := await self.events.get()) is not None:
            yield event


class GenerationManager:
    """The replies running in this process, one per conversation at most."""

    def __init__(self) -> None:
        self.runs: dict[str, GenerationRun] = {}

    def is_running(self, conversation_id: str) -> bool:
        return conversation_id in self.runs

    def start(self, turn: Turn) -> GenerationRun:
        run = GenerationRun(turn)
        if turn.retrieval_used:
            # Sources go out before the first token, so the UI can show what was read.
            run.events.put_nowait(RunEvent("sources", {"sources": turn.sources_out(False)}))
            run.events.put_nowait(RunEvent("support", turn.support_event()))
        self.runs[run.conversation_id] = run
        run.task = asyncio.create_task(self._run(run), name=f"generation-{run.message_id}")
        return run

    def stop(self, conversation_id: str) -> bool:
        run = self.runs.get(conversation_id)
        if run is None:
            return False
        run.stop()
        return True

    async def shutdown(self) -> None:
        runs = list(self.runs.values())
        for run in runs:
            run.stop()
        tasks = [run.task for run in runs if run.task is not None]
        if tasks:
            await asyncio.gather(*tasks, return_exceptions=True)

    async def _run(self, run: GenerationRun) -> None:
        turn = run.turn
        status: TurnStatus = "complete"
        error: str | None = None
        error_type: str | None = None
        try:
            async with contextlib.aclosing(turn.chunks()) as chunks:
                async for chunk in chunks:
                    if isinstance(chunk, TextDelta):
                        run.events.put_nowait(RunEvent("delta", {"text": chunk.text}))
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
            run.events.put_nowait(
                RunEvent(
                    "error",
                    {"error": {"message": "Could not store the reply", "type": "api_error"}},
                )
            )
        else:
            assert message is not None
            if turn.usage is not None:
                run.events.put_nowait(RunEvent("usage", _usage_event(turn.usage, message)))
            if status == "complete":
                run.events.put_nowait(RunEvent("done", {"message": message_out(message)}))
            else:
                run.events.put_nowait(
                    RunEvent(
                        "error",
                        {
                            "error": {"message": error, "type": "generation_error"},
                            "message": message_out(message),
                        },
                    )
                )
        finally:
            self.runs.pop(run.conversation_id, None)
            run.events.put_nowait(None)


def _usage_event(usage: Usage, message: Message) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "finish_reason": usage.finish_reason,
        "ttft_ms": message.ttft_ms,
        "duration_ms": message.duration_ms,
    }
