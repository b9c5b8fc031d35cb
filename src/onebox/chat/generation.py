"""Runs one assistant reply as a task that outlives the HTTP request.

The task, not the request, owns the assistant message's transaction: whether the reply
completes, fails, is stopped, or the client goes away, the text produced so far is
committed with the matching status. The request only relays events from a queue.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
from collections.abc import AsyncIterator
from dataclasses import dataclass, field
from typing import Any

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from onebox.chat.models import Message, MessageStatus, Role
from onebox.chat.schemas import MessageOut
from onebox.core.db import new_id
from onebox.core.guarding import Guard, OutputBlockedError
from onebox.core.settings import Settings
from onebox.documents.answering import stored_sources
from onebox.documents.retrieval import Source
from onebox.guard import PromptSecret
from onebox.llm.base import (
    ChatMessage,
    ChatRequest,
    GenerationParams,
    ProviderError,
    TextDelta,
    Usage,
)
from onebox.llm.context import fit_to_context
from onebox.llm.registry import ModelEntry, ModelRegistry
from onebox.llm.router import Route, stream_with_fallbacks
from onebox.ratelimit import Admission
from onebox.usage.service import GenerationMeter, UsageRecorder
from onebox.users.service import record_audit

logger = logging.getLogger(__name__)


@dataclass(frozen=True, slots=True)
class RunEvent:
    name: str
    data: dict[str, Any]


def message_out(message: Message) -> dict[str, Any]:
    return MessageOut.model_validate(message).model_dump(mode="json")


def default_params(entry: ModelEntry, settings: Settings) -> GenerationParams:
    defaults = entry.spec.defaults
    return GenerationParams(
        max_tokens=defaults.max_tokens or settings.max_tokens,
        temperature=settings.temperature if defaults.temperature is None else defaults.temperature,
        top_p=defaults.top_p or 0.95,
    )


@dataclass
class GenerationRun:
    conversation_id: str
    parent_id: str
    request: ChatRequest
    model: ModelEntry
    user_id: str
    source: str
    admission: Admission | None = None
    prompt_secret: PromptSecret | None = None
    sources: list[Source] = field(default_factory=list)
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
        self,
        sessionmaker: async_sessionmaker[AsyncSession],
        registry: ModelRegistry,
        usage: UsageRecorder,
        guard: Guard,
    ) -> None:
        self.sessionmaker = sessionmaker
        self.registry = registry
        self.usage = usage
        self.guard = guard
        self.runs: dict[str, GenerationRun] = {}

    @staticmethod
    def prepare(
        entry: ModelEntry, history: list[ChatMessage], params: GenerationParams
    ) -> list[ChatMessage]:
        """Raises ContextWindowExceededError before anything is stored or started."""
        provider = entry.provider
        return fit_to_context(
            history, provider.count_tokens, provider.context_size, params.max_tokens
        )

    def is_running(self, conversation_id: str) -> bool:
        return conversation_id in self.runs

    def start(
        self,
        *,
        model: ModelEntry,
        conversation_id: str,
        parent_id: str,
        messages: list[ChatMessage],
        params: GenerationParams,
        user_id: str,
        source: str = "ui",
        admission: Admission | None = None,
        prompt_secret: PromptSecret | None = None,
        sources: list[Source] | None = None,
        retrieval_used: bool = False,
    ) -> GenerationRun:
        run = GenerationRun(
            conversation_id=conversation_id,
            parent_id=parent_id,
            request=ChatRequest(messages=messages, params=params),
            model=model,
            user_id=user_id,
            source=source,
            admission=admission,
            prompt_secret=prompt_secret,
            sources=list(sources or []),
        )
        if retrieval_used:
            # Sources go out before the first token, so the UI can show what was read.
            run.events.put_nowait(
                RunEvent("sources", {"sources": [s.public() for s in run.sources]})
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
        meter = GenerationMeter()
        route = Route(requested=run.model)
        parts: list[str] = []
        usage: Usage | None = None
        status = MessageStatus.COMPLETE
        error: str | None = None
        error_type: str | None = None
        try:
            async with contextlib.aclosing(
                self.guard.filter_output(
                    stream_with_fallbacks(self.registry, route, run.request), run.prompt_secret
                )
            ) as stream:
                async for chunk in stream:
                    if isinstance(chunk, TextDelta):
                        meter.token()
                        parts.append(chunk.text)
                        run.events.put_nowait(RunEvent("delta", {"text": chunk.text}))
                    elif isinstance(chunk, Usage):
                        usage = chunk
        except asyncio.CancelledError:
            status = MessageStatus.PARTIAL
            error = "Stopped before the reply was complete"
            error_type = "cancelled"
        except ProviderError as exc:
            status = MessageStatus.PARTIAL if parts else MessageStatus.ERROR
            error = str(exc)
            error_type = type(exc).__name__
            if isinstance(exc, OutputBlockedError):
                await record_audit(
                    self.sessionmaker, "output_blocked", actor_id=run.user_id,
                    outcome="blocked", target=run.conversation_id, details=error,
                )  # fmt: skip
        except Exception:
            logger.exception("Generation %s failed", run.message_id)
            status = MessageStatus.PARTIAL if parts else MessageStatus.ERROR
            error = "The model failed while generating the reply"
            error_type = "internal"

        meter.finish()
        served = route.model
        price = served.spec.price
        self.usage.record(
            meter.row(
                source=run.source,
                user_id=run.user_id,
                model=served.name,
                requested_model=run.model.name,
                provider=served.spec.provider,
                usage=usage,
                cost_per_token=(price.input_per_1m / 1e6, price.output_per_1m / 1e6),
                status=status if error_type != "cancelled" else "cancelled",
                error_type=error_type,
            )
        )
        if run.admission is not None:
            used = usage.prompt_tokens + usage.completion_tokens if usage else 0
            await asyncio.shield(run.admission.release(used))
        message_text = "".join(parts)
        message = Message(
            id=run.message_id,
            conversation_id=run.conversation_id,
            parent_id=run.parent_id,
            role=Role.ASSISTANT,
            content="".join(parts),
            model=served.name,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else len(parts),
            ttft_ms=round(meter.ttft_ms) if meter.ttft_ms is not None else None,
            duration_ms=round(meter.duration_ms),
            status=status,
            error=error,
            sources=stored_sources(run.sources, message_text) if run.sources else None,
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
