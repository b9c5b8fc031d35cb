"""One chat turn, whichever door it came through: the web UI, ``/v1/chat/completions``,
``onebox chat``, ``onebox ask`` (and the widget). Every door hands the same pieces to
:meth:`Turns.prepare` and keeps only its transport (SSE events, the OpenAI wire format, the
terminal).

The steps, always in this order: input guard → retrieval filtered to what the caller may
read → fenced passages → canary → context fit → rate-limit admission; then generation
(fallbacks, canary watch, PII redaction) → sources marked used → one usage row → the reply
saved, where the door stores conversations.
"""

from __future__ import annotations

import asyncio
import contextlib
import dataclasses
import logging
import time
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from typing import Any, Literal

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from onebox.chat.models import Conversation, Message, MessageStatus, Role
from onebox.chat.service import ChatService, system_prompt_for
from onebox.chat.turn_metrics import observe_turn
from onebox.core.db import new_id
from onebox.core.errors import APIError, AppError
from onebox.core.metrics import ModelSeries, metrics
from onebox.core.settings import Settings
from onebox.documents.search.answering import (
    passage_budget,
    retrieval_query,
    stored_sources,
    with_sources,
)
from onebox.documents.search.grounding import (
    ABSTAIN_TEXT,
    CALIBRATED_EMBEDDER,
    CALIBRATED_THRESHOLD,
    Grounding,
    Link,
    attribute,
    fit_passages,
    ground,
    sources_with_links,
    support_out,
)
from onebox.documents.search.retrieval import Retriever, Source
from onebox.documents.service import DocumentService
from onebox.guard import GuardViolation, MessageLimits, clean_messages
from onebox.guard.leak import PromptSecret
from onebox.guard.service import Guard, OutputBlockedError
from onebox.llm.base import (
    ChatMessage,
    ChatRequest,
    ContextWindowExceededError,
    GenerationParams,
    ProviderError,
    StreamChunk,
    TextDelta,
    Usage,
)
from onebox.llm.context import fit_to_context
from onebox.llm.prefill import PrefillSpeeds
from onebox.llm.registry import ModelEntry, ModelRegistry
from onebox.llm.router import Route, stream_with_fallbacks
from onebox.ratelimit import Admission
from onebox.ratelimit.models import Check
from onebox.ratelimit.requests import RequestLimiter
from onebox.usage.service import GenerationMeter, UsageRecorder
from onebox.users.auth import Principal
from onebox.users.service import record_audit

logger = logging.getLogger(__name__)

Door = Literal["ui", "api", "cli", "widget"]
TurnStatus = Literal["complete", "partial", "error", "cancelled"]


@dataclass(frozen=True, slots=True)
class ParamOverrides:
    """What a caller may set per request; anything left ``None`` takes the model's default,
    then the deployment's."""

    max_tokens: int | None = None
    temperature: float | None = None
    top_p: float | None = None
    stop: tuple[str, ...] = ()
    seed: int | None = None


def generation_params(
    entry: ModelEntry, settings: Settings, overrides: ParamOverrides | None = None
) -> GenerationParams:
    asked = overrides or ParamOverrides()
    defaults = entry.spec.defaults
    return GenerationParams(
        max_tokens=asked.max_tokens or defaults.max_tokens or settings.max_tokens,
        temperature=_first(asked.temperature, defaults.temperature, settings.temperature),
        # The OpenAI API's own default is 1.0; our doors without overrides use 0.95.
        top_p=_first(asked.top_p, defaults.top_p, 0.95 if overrides is None else 1.0),
        stop=asked.stop,
        seed=asked.seed,
    )


@dataclass
class TurnRequest:
    """What a door asks for.

    ``messages``: for a stored conversation, just the new user message (the turn adds the
    stored branch before it); otherwise the whole history the client sent.
    ``collections``: ids or names the caller names explicitly (``None``: the
    conversation's own, if any).
    """

    caller: Principal
    model: ModelEntry
    messages: list[ChatMessage]
    door: Door
    ip: str = ""
    overrides: ParamOverrides | None = None
    collections: Sequence[str] | None = None
    conversation: Conversation | None = None
    parent_id: str | None = None
    edit_of: str | None = None  # a new version of this user message (a sibling of it)
    # Regenerate: answer this stored user message again (``messages`` is then empty); the
    # new reply becomes a sibling of the earlier ones and is shown.
    reuse_message_id: str | None = None
    passages: int | None = None  # how many to retrieve; None: the deployment's setting
    audit_target: str = ""
    limits: Sequence[Check] = ()  # rate-limit subjects the door adds (the widget's visitor)


@dataclass
class Turn:
    """A prepared turn: admitted, ready to generate. ``open()`` starts the model; the turn
    then records its usage, releases its admission and saves its reply exactly once, in
    :meth:`finish`, whether it completes, fails or is cancelled."""

    turns: Turns
    request: TurnRequest
    route: Route
    chat_request: ChatRequest
    prompt_secret: PromptSecret | None
    sources: list[Source] | None
    grounding: Grounding | None = None
    abstained: bool = False  # retrieval too weak: the reply is ABSTAIN_TEXT, no model call
    links: list[Link] | None = None  # answer sentences → sources, once the answer is known
    admission: Admission | None = None
    user_message: Message | None = None
    message_id: str = field(default_factory=new_id)
    meter: GenerationMeter = field(default_factory=GenerationMeter)
    usage: Usage | None = None
    text: list[str] = field(default_factory=list)
    _stream: AsyncGenerator[StreamChunk] | None = None
    _finished: bool = False
    _checkpoint: asyncio.Task[None] | None = None
    _next_checkpoint: float = field(default_factory=time.monotonic)
    _series: ModelSeries | None = None  # the serving model's, from the first chunk on
    _last_chunk: float = 0.0
    _running_as: str | None = None
    _opened_at: float | None = None

    def __post_init__(self) -> None:
        self._next_checkpoint += self.turns.settings.reply_checkpoint_seconds

    @property
    def retrieval_used(self) -> bool:
        return self.sources is not None

    def prompt_tokens(self) -> int:
        return self.route.requested.provider.count_tokens(self.chat_request.messages)

    def sources_out(self, answered: bool) -> list[dict[str, Any]]:
        """Sources for the client: before the answer, as retrieved; after it, each with
        ``used`` set when the answer cites it."""
        if not self.sources:
            return []
        if not answered:
            return [source.public() for source in self.sources]
        if self.links is None and not self.abstained:
            return stored_sources(self.sources, "".join(self.text))
        return sources_with_links(
            self.sources, self.links or [], self.grounding, abstained=self.abstained
        )

    def support_out(self) -> list[dict[str, Any]]:
        """The quoted passage sentences that best answer the question (none when abstaining)."""
        if not self.sources or self.abstained:
            return []
        return support_out(self.grounding, self.sources)

    def support_event(self) -> dict[str, Any]:
        """What the doors send right after the sources, before the model's first token."""
        return {
            "support": self.support_out(),
            "abstained": self.abstained,
            "passages": len(self.sources or []),
        }

    async def attribute(self) -> None:
        """Links the answer's sentences to the passages (once; failures only logged)."""
        if self.links is not None or not self.sources or self.abstained:
            return
        try:
            self.links = await attribute(
                self.turns.retriever.embedder, "".join(self.text), self.sources, self.grounding
            )
        except Exception:
            logger.warning("Could not attribute reply %s", self.message_id, exc_info=True)

    def open(self) -> AsyncGenerator[StreamChunk]:
        self._running_as = self.route.requested.name
        self.turns.running[self._running_as] = self.turns.running.get(self._running_as, 0) + 1
        self._opened_at = time.perf_counter()
        if self.abstained:
            self._stream = _abstention()
            return self._stream
        stream = stream_with_fallbacks(self.turns.models, self.route, self.chat_request)
        self._stream = self.turns.guard.filter_output(stream, self.prompt_secret)
        return self._stream

    async def first_chunk(self) -> StreamChunk:
        """Starts generation and waits for its first chunk, so a failure before any output
        can still become an HTTP status. The turn is finished (recorded) on failure."""
        stream = self.open()
        try:
            return await anext(stream)
        except ProviderError as exc:
            await self.finish("error", type(exc).__name__, str(exc))
            raise
        except BaseException:
            await self.finish("cancelled", "cancelled")
            raise

    async def chunks(self, first: StreamChunk | None = None) -> AsyncGenerator[StreamChunk]:
        """The model's output, observed: text is kept for the reply and the meter ticks."""
        stream = self._stream if self._stream is not None else self.open()
        if first is not None:
            self._observe(first)
            yield first
        async for chunk in stream:
            self._observe(chunk)
            yield chunk
        await self.attribute()  # before the doors read sources_out(answered=True)

    def _observe(self, chunk: StreamChunk) -> None:
        if isinstance(chunk, TextDelta):
            self.meter.token()
            # Inter-token gaps go to local buckets (no lock, no file), flushed each second.
            now = time.perf_counter()
            if self._series is None:
                self._series = metrics().model(self.route.model.name)
            else:
                self._series.inter_token.observe(now - self._last_chunk)
            self._last_chunk = now
            self.text.append(chunk.text)
            if self.request.conversation is not None:
                self._maybe_checkpoint()
        else:
            self.usage = chunk

    def _maybe_checkpoint(self) -> None:
        """Saves the reply so far, in the background, at most once a checkpoint interval: a
        crash (``kill -9``) then loses at most that much of it. Quick replies never pay."""
        now = time.monotonic()
        if now < self._next_checkpoint or (self._checkpoint and not self._checkpoint.done()):
            return
        self._next_checkpoint = now + self.turns.settings.reply_checkpoint_seconds
        self._checkpoint = asyncio.create_task(self.turns.checkpoint(self))

    async def finish(
        self, status: TurnStatus, error_type: str | None = None, error: str | None = None
    ) -> Message | None:
        """Records usage, releases the admission and, for a stored conversation, saves the
        reply. Idempotent; shielded so a second cancellation loses nothing."""
        if self._finished:
            return None
        self._finished = True
        if self._stream is not None:
            with contextlib.suppress(Exception):
                await self._stream.aclose()
        self.meter.finish()
        self._observe_prefill()
        if self.text and status != "complete":
            await self.attribute()
        if self._running_as is not None:
            self.turns.running[self._running_as] -= 1
        if status == "error" and self.text:
            status = "partial"
        self.turns.record_usage(self, status, error_type)
        if self.admission is not None:
            used = self.usage.prompt_tokens + self.usage.completion_tokens if self.usage else 0
            await asyncio.shield(self.admission.release(used))
        if error_type == OutputBlockedError.__name__:
            metrics().guard_blocks.labels("output").inc()
            await record_audit(
                self.turns.sessionmaker, "output_blocked", actor_id=self.request.caller.user_id,
                outcome="blocked", target=self.request.audit_target, details=error or "",
            )  # fmt: skip
        if self.request.conversation is None:
            return None
        if self._checkpoint is not None:
            await asyncio.shield(self._checkpoint)  # never errors: checkpoint() logs
        return await self.turns.save_reply(self, status, error)

    def _observe_prefill(self) -> None:
        """Feeds the local model's measured prompt speed to the passage budget."""
        first, opened, usage = self.meter.first_token, self._opened_at, self.usage
        model = self.route.model
        if (
            first is None or opened is None or usage is None or self.abstained
            or not model.provider.capabilities.local
        ):  # fmt: skip
            return
        seconds = first - opened - (usage.queue_ms or 0.0) / 1000
        self.turns.prefill.observe(model.name, usage.prompt_tokens, seconds)


async def _abstention() -> AsyncGenerator[StreamChunk]:
    yield TextDelta(ABSTAIN_TEXT)
    yield Usage(prompt_tokens=0, completion_tokens=0)


class Turns:
    """Prepares turns. Built once by the app wiring; every door shares it."""

    def __init__(
        self,
        settings: Settings,
        sessionmaker: async_sessionmaker[AsyncSession],
        models: ModelRegistry,
        guard: Guard,
        limits: RequestLimiter,
        usage: UsageRecorder,
        retriever: Retriever,
    ) -> None:
        self.settings = settings
        self.sessionmaker = sessionmaker
        self.models = models
        self.guard = guard
        self.limits = limits
        self.usage = usage
        self.retriever = retriever
        self.running: dict[str, int] = {}  # turns generating now, by requested model
        self.prefill = PrefillSpeeds(prior=settings.grounding_prefill_prior)

    async def prepare(self, session: AsyncSession | None, request: TurnRequest) -> Turn:
        """Every step before generation. Raises an :class:`AppError` (4xx) before anything
        is stored or started; the caller's session holds the new user message, flushed, for
        the door to commit."""
        arrived = time.perf_counter()
        if session is None and (request.conversation is not None or request.collections):
            async with self.sessionmaker() as own_session:
                return await self._prepare(own_session, request, arrived)
        # A turn that reads no stored conversation or collection needs no session (the
        # gateway's common case: opening and closing one costs more than the rest).
        return await self._prepare(session, request, arrived)

    async def _prepare(
        self, session: AsyncSession | None, request: TurnRequest, arrived: float
    ) -> Turn:
        caller, entry = request.caller, request.model
        if caller.key is not None and not caller.key.allows_model(entry.name):
            raise APIError(
                403, f"This API key may not use the model {entry.name!r}", "permission_error",
                param="model", code="model_not_allowed",
            )  # fmt: skip
        messages = await self._guard_input(request)
        params = generation_params(entry, self.settings, request.overrides)
        user_message = None
        chat: ChatService | None = None
        conversation = request.conversation
        # The conversation's own temperature, unless the request names one.
        if (
            conversation is not None
            and conversation.temperature is not None
            and (request.overrides is None or request.overrides.temperature is None)
        ):
            params = dataclasses.replace(params, temperature=conversation.temperature)
        if conversation is not None:
            assert session is not None
            chat = ChatService(session)
            if request.reuse_message_id is not None:
                user_message = await chat.regeneration_source(
                    conversation, request.reuse_message_id
                )
            else:
                user_message = await chat.add_user_message(
                    conversation, messages[-1].content, parent_id=request.parent_id,
                    max_chars=self.settings.max_message_chars, edit_of=request.edit_of,
                )  # fmt: skip
            history = await chat.history_for(
                conversation,
                user_message,
                system_prompt_for(conversation, self.settings.system_prompt),
            )
        else:
            history = messages
        sources, query_vector = await self._retrieve(session, request, history)
        grounding, abstained = None, False
        if sources is not None:
            history, sources, grounding, abstained = await self._ground(
                request, history, sources, query_vector, arrived
            )
        history, prompt_secret = self.guard.protect_system_prompt(history)
        try:
            prompt = fit_to_context(
                history, entry.provider.count_tokens, entry.provider.context_size,
                params.max_tokens,
            )  # fmt: skip
        except ContextWindowExceededError as exc:
            raise APIError(
                400, str(exc), "invalid_request_error",
                param="content" if conversation is not None else "messages",
                code="context_length_exceeded",
            ) from exc  # fmt: skip
        turn = Turn(
            turns=self,
            request=request,
            route=Route(requested=entry),
            chat_request=ChatRequest(messages=prompt, params=params),
            prompt_secret=prompt_secret,
            sources=sources,
            grounding=grounding,
            abstained=abstained,
            user_message=user_message,
            meter=GenerationMeter(started=arrived),  # latencies count from the request
        )
        if chat is not None and conversation is not None and request.reuse_message_id is not None:
            assert user_message is not None
            # The new reply is shown as soon as it is stored.
            await chat.choose(conversation, user_message.id, turn.message_id)
        turn.admission = await self.limits.admit(
            caller, request.ip, estimated_tokens=turn.prompt_tokens(), extra=request.limits
        )
        return turn

    async def _ground(
        self,
        request: TurnRequest,
        history: list[ChatMessage],
        sources: list[Source],
        query_vector: Any = None,
        arrived: float | None = None,
    ) -> tuple[list[ChatMessage], list[Source], Grounding | None, bool]:
        """Quoted support, the abstention verdict and the passages the model reads: all of
        them for upstream engines; for a local one, as much as its measured prefill speed
        reads within what is left of ``grounding_first_token_seconds`` since the question
        ``arrived`` (retrieval and support have spent some)."""
        entry = request.model
        grounding = None
        if sources:
            grounding = await ground(
                self.retriever.embedder, retrieval_query(history), sources,
                query_vector=query_vector,  # retrieval's: the same text, embedded once
            )  # fmt: skip
        searched = request.collections is None or bool(request.collections)
        threshold = abstain_threshold(self.settings)
        best = grounding.best if grounding is not None else 0.0
        if searched and threshold > 0 and best < threshold:
            return history, sources, grounding, True
        style = "citations"
        elapsed = time.perf_counter() - arrived if arrived is not None else 0.0
        allowed = self._allowed_prompt_tokens(entry, elapsed)
        count = entry.provider.count_tokens
        slow = (
            sources and grounding is not None and entry.provider.capabilities.local
            and allowed is not None
            and passage_budget(count, history, sources, style, allowed) is not None
        )  # fmt: skip
        if slow and grounding is not None and allowed is not None:
            # Too much for this model to read in time: short instructions, cut passages.
            style = self.settings.grounding_prompt
            sources, grounding = fit_passages(count, history, sources, grounding, style, allowed)
        quotes = [(s.number, s.text) for s in grounding.support] if grounding else []
        return with_sources(history, sources, style=style, quotes=quotes), sources, grounding, False

    def _allowed_prompt_tokens(self, entry: ModelEntry, elapsed: float) -> int | None:
        """Prompt tokens the model reads (its chat template included: all of it comes before
        the first token) within what is left of ``grounding_first_token_seconds``, or
        ``None`` without that target."""
        target = self.settings.grounding_first_token_seconds
        if not target:
            return None
        return self.prefill.prompt_tokens_within(entry.name, target, elapsed)

    async def _guard_input(self, request: TurnRequest) -> list[ChatMessage]:
        """Cleans the input (a stored conversation's message is cleaned and checked where it
        is stored), then applies the injection policy to the newest user message."""
        messages = list(request.messages)
        if request.conversation is None:
            try:
                messages = clean_messages(
                    messages, MessageLimits(max_message_chars=self.settings.max_message_chars)
                )
            except GuardViolation as exc:
                raise APIError(
                    400, exc.message, "invalid_request_error", param=exc.param, code=exc.code
                ) from exc
        for index in range(len(messages) - 1, -1, -1):
            if messages[index].role == "user":
                try:
                    verdict = self.guard.check_input(messages[index].content)
                except APIError as blocked:
                    metrics().guard_blocks.labels("input").inc()
                    await record_audit(
                        self.sessionmaker, "input_blocked", actor_id=request.caller.user_id,
                        actor_email=request.caller.email, outcome="blocked",
                        target=request.audit_target, ip=request.ip, details=blocked.message,
                    )  # fmt: skip
                    raise
                messages[index] = ChatMessage("user", verdict.text)
                break
        return messages

    async def _retrieve(
        self, session: AsyncSession | None, request: TurnRequest, history: list[ChatMessage]
    ) -> tuple[list[Source] | None, Any]:
        """Passages from the collections the caller may read, or ``None`` when the turn
        reads no collection, and the query's vector (``None`` when not embedded).
        Ownership and the API key's allow-list are checked every time."""
        if request.collections is not None and not request.collections:
            return [], None
        if session is None:  # prepare() opens one whenever a collection may be read
            return None, None
        caller = request.caller
        allowed = caller.key.collections if caller.key else None
        documents = DocumentService(session, self.settings)
        conversation = request.conversation
        remembered = conversation.collection_ids if conversation is not None else []
        if request.collections is None and not remembered:
            return None, None
        query = retrieval_query(history)
        # The query embeds while the collections are looked up.
        async with self.retriever.query_embedding(query) as embedding:
            if request.collections is not None:
                try:
                    ids = await documents.resolve_collections(
                        caller.user_id, request.collections, allowed
                    )
                except APIError:
                    raise
                except AppError as exc:
                    raise APIError(
                        exc.status_code, exc.message, exc.error_type, param="collections"
                    ) from exc
            else:
                ids = await documents.readable_collection_ids(caller.user_id, remembered, allowed)
                if not ids:
                    return None, None
            # The vector comes back for the grounding: the same text, embedded once.
            found = await self.retriever.retrieve(
                session, query, ids, limit=request.passages, query_vector=embedding
            )
        return found.sources, found.query_vector

    def record_usage(self, turn: Turn, status: TurnStatus, error_type: str | None) -> None:
        self.record_generation(
            turn, turn.route, turn.meter, turn.usage, status, error_type, source=turn.request.door
        )

    def record_generation(
        self,
        turn: Turn,
        route: Route,
        meter: GenerationMeter,
        usage: Usage | None,
        status: str,
        error_type: str | None,
        *,
        source: str,
        timed: bool = True,
    ) -> None:
        """One usage row and its metrics for a generation made for ``turn``'s caller: the
        turn's own, or one made after it (its conversation's title: counted in tokens and
        cost, kept out of the latency histograms, ``timed=False``)."""
        served = route.model
        price = served.spec.price
        key = turn.request.caller.key
        row = meter.row(
            source=source,
            user_id=turn.request.caller.user_id,
            api_key_id=key.id if key else None,
            model=served.name,
            requested_model=route.requested.name,
            provider=served.spec.provider,
            usage=usage,
            cost_per_token=(price.input_per_1m / 1e6, price.output_per_1m / 1e6),
            status=status,
            error_type=error_type,
        )
        self.usage.record(row)
        observe_turn(row, source, usage, timed=timed)

    async def checkpoint(self, turn: Turn) -> None:
        try:
            await self.save_reply(turn, "partial", None)
        except Exception:
            logger.warning("Could not checkpoint reply %s", turn.message_id, exc_info=True)

    async def save_reply(self, turn: Turn, status: TurnStatus, error: str | None) -> Message:
        """Inserts the reply, or updates the row an earlier checkpoint inserted."""
        assert turn.request.conversation is not None
        assert turn.user_message is not None
        usage = turn.usage
        meter = turn.meter
        message = Message(
            id=turn.message_id,
            conversation_id=turn.request.conversation.id,
            parent_id=turn.user_message.id,
            role=Role.ASSISTANT,
            content="".join(turn.text),
            model=turn.route.model.name,
            prompt_tokens=usage.prompt_tokens if usage else None,
            completion_tokens=usage.completion_tokens if usage else len(turn.text),
            ttft_ms=round(meter.ttft_ms) if meter.ttft_ms is not None else None,
            duration_ms=round(meter.duration_ms),
            status=MessageStatus.COMPLETE
            if status == "complete"
            else MessageStatus.PARTIAL
            if status in ("partial", "cancelled")
            else MessageStatus.ERROR,
            error=error,
            sources=turn.sources_out(answered=True) if turn.sources else None,
        )

        async def save() -> Message:
            async with self.sessionmaker() as session:
                merged = await session.merge(message)
                await session.commit()
                return merged

        return await asyncio.shield(save())


def abstain_threshold(settings: Settings) -> float:
    """The configured threshold, else the calibrated one where it applies: scores are only
    comparable with the embedder they were calibrated on."""
    if settings.grounding_abstain_below is not None:
        return settings.grounding_abstain_below
    calibrated = settings.embedding_provider == "local" and (
        settings.embedding_model == CALIBRATED_EMBEDDER
    )
    return CALIBRATED_THRESHOLD if calibrated else 0.0


def _first(*values: float | None) -> float:
    return next(value for value in values if value is not None)
