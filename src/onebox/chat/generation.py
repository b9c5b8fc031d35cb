"""Runs one assistant reply as a task that outlives the HTTP request.

The task, not the request, owns the assistant message's transaction: whether the reply
completes, fails, is stopped, or the client goes away, the text produced so far is
committed with the matching status. The request only relays events from a queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import time
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from onebox.chat.models import Message, MessageStatus, Role
from onebox.chat.schemas import MessageOut
from onebox.core.db import new_id
from onebox.llm.base import (
    ChatMessage,
    ChatProvider,
    ChatRequest,
    GenerationParams,
    ProviderError,
    TextDelta,
    Usage,
)
from onebox.llm.context import fit_to_context

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunEvent:
    name: str
    data: dict[str, Any]


def message_out(message: Message) -> dict[str, Any]:
    return MessageOut.model_validate(message).model_dump(mode="json")


@dataclass
class GenerationRun:
    conversation_id: str
    parent_id: str
    request: ChatRequest
    message_id: str = field(default_factory=new_id)
    events: asyncio.Queue[RunEvent | None] = field(default_factory=asyncio.Queue)
    task: asyncio.Task[None] | None = None

    def stop(self) -> None:
        if self.task is not None and not self.task.done():
            self.task.cancel()

    async def stream(self) -> AsyncIterator[RunEvent]:
        while (event := await self.events.get()) is not None:
            yield event


class GenerationManager:
    def __init__(
        self, sessionmaker: async_sessionmaker[AsyncSession], provider: ChatProvider
    ) -> None:
        self.sessionmaker = sessionmaker
        self.provider = provider
        self.runs: dict[str, GenerationRun] = {}

    def prepare(self, history: list[ChatMessage], params: GenerationParams) -> list[ChatMessage]:
        """Raises ContextWindowExceededError before anything is stored or started."""
        return fit_to_context(
            history, self.provider.count_tokens, self.provider.context_size, params.max_tokens
        )

    def is_running(self, conversation_id: str) -> bool:
        return conversation_id in self.runs

    def start(
        self,
        *,
        conversation_id: str,
        parent_id: str,
        messages: list[ChatMessage],
        params: GenerationParams,
    ) -> GenerationRun:
        run = GenerationRun(
            conversation_id=conversation_id,
            parent_id=parent_id,
            request=ChatRequest(messages=messages, params=params),
        )
        self.runs[conversation_id] = run
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
        started = time.monotonic()
        first_token_at: float | None = None
        parts: list[str] = []
        usage: Usage | None = None
        status = MessageStatus.COMPLETE
        error: str | None = None
        try:
            async with contextlib.aclosing(self.provider.stream_chat(run.request)) as stream:
                async for chunk in stream:
                    if isinstance(chunk, TextDelta):
                        if first_token_at is None:
                            first_token_at = time.monotonic()
                        parts.append(chunk.text)
                        run.events.put_nowait(RunEvent("delta", {"text": chunk.text}))
                    elif isinstance(chunk, Usage):
                        usage = chunk
        except asyncio.CancelledError:
            status = MessageStatus.PARTIAL
            error = "Stopped before the reply was complete"
        except ProviderError as exc:
            status = MessageStatus.PARTIAL if parts else MessageStatus.ERROR
            error = str(exc)
        except Exception:
            logger.exception("Generation %s failed", run.message_id)
            status = MessageStatus.PARTIAL if parts else MessageStatus.ERROR
            error = "The model failed while generating the reply"

        ended = time.monotonic()
        message = Message(
            id=run.message_id,
            conversation_id=run.conversation_id,
            parent_id=run.parent_id,
            role=Role.ASSISTANT,
            content="".join(parts),
            model=self.provider.model_name,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else len(parts),
            ttft_ms=round((first_token_at - started) * 1000) if first_token_at else None,
            duration_ms=round((ended - started) * 1000),
            status=status,
            error=error,
        )
        try:
            await self._save(message)
        except Exception:
            logger.exception("Could not store assistant message %s", run.message_id)
            run.events.put_nowait(
                RunEvent(
                    "error",
                    {"error": {"message": "Could not store the reply", "type": "api_error"}},
                )
            )
        else:
            if usage is not None:
                run.events.put_nowait(RunEvent("usage", _usage_event(usage, message)))
            if status == MessageStatus.COMPLETE:
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

    async def _save(self, message: Message) -> None:
        # Shielded: a second cancellation (shutdown) must not lose the text already produced.
        async def save() -> None:
            async with self.sessionmaker() as session:
                session.add(message)
                await session.commit()

        await asyncio.shield(save())


def _usage_event(usage: Usage, message: Message) -> dict[str, Any]:
    return {
        "prompt_tokens": usage.prompt_tokens,
        "completion_tokens": usage.completion_tokens,
        "finish_reason": usage.finish_reason,
        "ttft_ms": message.ttft_ms,
        "duration_ms": message.duration_ms,
    }
