"""llama.cpp's C API, just what the engine needs: one model, one context, one reusable batch.

Everything here except :meth:`NativeModel.tokenize` must run on the engine's thread (a llama.cpp
context is not thread-safe). Context settings and why they keep batched greedy output equal to
one-at-a-time output are explained in :mod:`onebox.llm.llamacpp_engine`.
"""

from __future__ import annotations

import ctypes
import logging
from pathlib import Path
from typing import Any

import llama_cpp
import numpy as np

from onebox.llm.base import GenerationParams, ProviderError

logger = logging.getLogger(__name__)

# ggml's levels: 1 debug, 2 info, 3 warn, 4 error, 5 continues the previous line's level.
_LOG_LEVELS = {3: logging.WARNING, 4: logging.ERROR}
_last_log_level = logging.DEBUG


def _forward_log(level: int, text: bytes | None, _user_data: Any) -> None:
    global _last_log_level
    if level != 5:
        _last_log_level = _LOG_LEVELS.get(level, logging.DEBUG)
    message = (text or b"").decode("utf-8", "replace").rstrip()
    if message and logger.isEnabledFor(_last_log_level):
        logger.log(_last_log_level, "llama.cpp: %s", message)


# The ctypes callback object must outlive every call into llama.cpp.
_LOG_CALLBACK = llama_cpp.llama_log_callback(_forward_log)


class NativeModel:
    """A loaded GGUF with a context of ``slots`` separate KV streams of ``context_size``."""

    def __init__(
        self,
        path: Path,
        *,
        context_size: int,
        slots: int,
        threads: int,
        n_batch: int,
        flash_attn: bool,
    ) -> None:
        llama_cpp.llama_log_set(_LOG_CALLBACK, ctypes.c_void_p(0))
        llama_cpp.llama_backend_init()
        self._model: Any = None
        self._ctx: Any = None
        self._batch: Any = None
        try:
            self._open(path, context_size, slots, threads, n_batch, flash_attn)
        except BaseException:
            self.close()
            raise

    def _open(
        self,
        path: Path,
        context_size: int,
        slots: int,
        threads: int,
        n_batch: int,
        flash_attn: bool,
    ) -> None:
        self._model = llama_cpp.llama_model_load_from_file(
            str(path).encode(), llama_cpp.llama_model_default_params()
        )
        if not self._model:
            raise ProviderError(f"llama.cpp could not load {path}")
        self.vocab = llama_cpp.llama_model_get_vocab(self._model)
        self.n_vocab: int = llama_cpp.llama_vocab_n_tokens(self.vocab)
        template = llama_cpp.llama_model_chat_template(self._model, None)
        if not template:
            raise ProviderError(f"{path.name} has no chat template in its metadata")
        self.chat_template: str = template.decode("utf-8")
        self.bos_text = self._token_text(llama_cpp.llama_vocab_bos(self.vocab))
        self.eos_text = self._token_text(llama_cpp.llama_vocab_eos(self.vocab))

        params = llama_cpp.llama_context_default_params()
        params.n_ctx = context_size * slots
        params.n_seq_max = slots
        params.kv_unified = False  # one KV stream per sequence
        params.n_batch = params.n_ubatch = n_batch
        params.n_threads = params.n_threads_batch = threads
        params.flash_attn_type = (
            llama_cpp.LLAMA_FLASH_ATTN_TYPE_ENABLED
            if flash_attn
            else llama_cpp.LLAMA_FLASH_ATTN_TYPE_DISABLED
        )
        params.no_perf = True
        self._ctx = llama_cpp.llama_init_from_model(self._model, params)
        if not self._ctx:
            raise ProviderError("llama.cpp could not create a context (out of memory?)")
        self.n_ctx_seq: int = llama_cpp.llama_n_ctx_seq(self._ctx)
        self.n_batch = n_batch
        self._memory = llama_cpp.llama_get_memory(self._ctx)
        self._batch = llama_cpp.llama_batch_init(n_batch, 0, 1)
        self._tokens = np.ctypeslib.as_array(self._batch.token, shape=(n_batch,))
        self._positions = np.ctypeslib.as_array(self._batch.pos, shape=(n_batch,))
        self._want_logits = np.ctypeslib.as_array(self._batch.logits, shape=(n_batch,))
        np.ctypeslib.as_array(self._batch.n_seq_id, shape=(n_batch,))[:] = 1
        self._seq_ids = self._batch.seq_id
        self._pieces: list[bytes | None] = [None] * self.n_vocab
        self._piece_buffer = ctypes.create_string_buffer(256)

    def kv_cache_bytes(self) -> int:
        """f16 K and V for every cell of every stream (an estimate for the log)."""
        model = self._model
        head_dim = llama_cpp.llama_model_n_embd(model) // llama_cpp.llama_model_n_head(model)
        per_cell = 2 * 2 * llama_cpp.llama_model_n_layer(model) * head_dim
        per_cell *= llama_cpp.llama_model_n_head_kv(model)
        return int(per_cell * llama_cpp.llama_n_ctx(self._ctx))

    def close(self) -> None:
        if self._batch is not None:
            llama_cpp.llama_batch_free(self._batch)
            self._batch = None
        if self._ctx:
            llama_cpp.llama_free(self._ctx)
            self._ctx = None
        if self._model:
            llama_cpp.llama_model_free(self._model)
            self._model = None

    def _token_text(self, token: int) -> str:
        if token < 0:
            return ""
        return bytes(llama_cpp.llama_vocab_get_text(self.vocab, token) or b"").decode("utf-8")

    def tokenize(self, text: str, *, special: bool = True) -> list[int]:
        """Safe from any thread: it reads only the vocabulary."""
        data = text.encode("utf-8")
        capacity = len(data) + 8  # never more tokens than bytes
        buffer = (llama_cpp.llama_token * capacity)()
        count = llama_cpp.llama_tokenize(
            self.vocab, data, len(data), buffer, capacity, False, special
        )
        if count < 0:  # pragma: no cover
            raise ProviderError("Tokenization failed")
        return list(buffer[:count])

    def is_eog(self, token: int) -> bool:
        return bool(llama_cpp.llama_vocab_is_eog(self.vocab, token))

    def piece(self, token: int) -> bytes:
        """The token's bytes (possibly part of a UTF-8 character); special tokens are empty."""
        piece = self._pieces[token]
        if piece is None:
            size = llama_cpp.llama_token_to_piece(
                self.vocab, token, self._piece_buffer, 256, 0, False
            )
            piece = self._pieces[token] = self._piece_buffer.raw[: max(size, 0)]
        return piece

    def prefill(self, slot: int, tokens: list[int], start: int) -> bool:
        """Evaluate prompt tokens at positions ``start...`` of one sequence; logits of the
        last one are then row ``len(tokens) - 1``."""
        n = len(tokens)
        self._tokens[:n] = tokens
        self._positions[:n] = np.arange(start, start + n)
        self._want_logits[:n] = 0
        self._want_logits[n - 1] = 1
        seq_ids = self._seq_ids
        for i in range(n):
            seq_ids[i][0] = slot
        return self._decode(n)

    def step(self, tokens: list[int], positions: list[int], slots: list[int]) -> bool:
        """One token for each of several sequences in one call; their logits are rows 0..n-1."""
        n = len(tokens)
        self._tokens[:n] = tokens
        self._positions[:n] = positions
        self._want_logits[:n] = 1
        seq_ids = self._seq_ids
        for i, slot in enumerate(slots):
            seq_ids[i][0] = slot
        return self._decode(n)

    def _decode(self, n: int) -> bool:
        self._batch.n_tokens = n
        result = llama_cpp.llama_decode(self._ctx, self._batch)
        if result != 0:
            logger.error("llama_decode returned %d for a batch of %d tokens", result, n)
        return bool(result == 0)

    def forget(self, slot: int) -> None:
        """Drop a sequence's KV cells so its slot starts empty."""
        llama_cpp.llama_memory_seq_rm(self._memory, slot, -1, -1)

    def greedy(self, row: int) -> int:
        logits = llama_cpp.llama_get_logits_ith(self._ctx, row)
        return int(np.ctypeslib.as_array(logits, shape=(self.n_vocab,)).argmax())

    @staticmethod
    def new_sampler(params: GenerationParams, seed: int) -> Any:
        """top-p, then temperature, then a draw from a generator seeded per request."""
        chain = llama_cpp.llama_sampler_chain_init(llama_cpp.llama_sampler_chain_default_params())
        if params.top_p < 1.0:
            llama_cpp.llama_sampler_chain_add(
                chain, llama_cpp.llama_sampler_init_top_p(params.top_p, 1)
            )
        llama_cpp.llama_sampler_chain_add(
            chain, llama_cpp.llama_sampler_init_temp(params.temperature)
        )
        llama_cpp.llama_sampler_chain_add(chain, llama_cpp.llama_sampler_init_dist(seed))
        return chain

    def sample(self, sampler: Any, row: int) -> int:
        return int(llama_cpp.llama_sampler_sample(sampler, self._ctx, row))

    @staticmethod
    def free_sampler(sampler: Any) -> None:
        llama_cpp.llama_sampler_free(sampler)
