"""Passage sentences: how a passage is cut into them, and their vectors, remembered. The
rerank and the quoted support embed every sentence of the retrieved passages on every turn,
and the same passages come back for related questions (a conversation about one document,
several people asking about the same page).

A bounded LRU per embedder, keyed by the sentence's text (so an edited passage is simply a
new key): about 1.6 KB a 384-dimension vector, 20,000 sentences ≈ 30 MB at most.
"""

from __future__ import annotations

import re
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from onebox.embeddings.base import Embedder, Vectors

MAX_SENTENCES = 20_000
MAX_SENTENCE_CHARS = 400
_SENTENCE_END = re.compile(r"(?<=[.!?])\s+(?=[\"'(\[]?[A-Z0-9])|\n\s*\n|\n(?=\s*[-*#•]|\s*\d+[.)])")


def split_sentences(text: str) -> list[str]:
    """Sentences (or list items, headings) of a passage or an answer, whitespace folded."""
    out = []
    for part in _SENTENCE_END.split(text):
        flat = " ".join(part.split()).lstrip("#>*-• ").strip()
        while len(flat) > MAX_SENTENCE_CHARS:  # an unpunctuated run: cut at a space
            cut = flat.rfind(" ", 0, MAX_SENTENCE_CHARS)
            cut = cut if cut > MAX_SENTENCE_CHARS // 2 else MAX_SENTENCE_CHARS
            out.append(flat[:cut])
            flat = flat[cut:].strip()
        if flat:
            out.append(flat)
    return out


class SentenceCache:
    def __init__(self, size: int = MAX_SENTENCES) -> None:
        self.size = size
        self._rows: OrderedDict[str, np.ndarray[Any, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._rows)

    async def embed(self, embedder: Embedder, texts: Sequence[str]) -> Vectors:
        """Rows for ``texts`` (kind "document"), in order; only the unknown ones are sent."""
        out: np.ndarray[Any, Any] | None = None
        missing: dict[str, list[int]] = {}
        with self._lock:
            found = [self._rows.get(text) for text in texts]
            for text, row in zip(texts, found, strict=True):
                if row is not None:
                    self._rows.move_to_end(text)
        for index, (text, row) in enumerate(zip(texts, found, strict=True)):
            if row is None:
                missing.setdefault(text, []).append(index)
        self.hits += len(texts) - sum(map(len, missing.values()))
        self.misses += len(missing)
        fresh = await embedder.embed(list(missing), kind="document") if missing else None
        for index, row in enumerate(found):
            if row is not None:
                if out is None:
                    out = np.empty((len(texts), row.shape[0]), dtype=np.float32)
                out[index] = row
        if fresh is not None:
            if out is None:
                out = np.empty((len(texts), fresh.shape[1]), dtype=np.float32)
            with self._lock:
                for (text, indices), row in zip(missing.items(), fresh, strict=True):
                    out[indices] = row
                    self._rows[text] = np.array(row, dtype=np.float32)  # a copy, not a view
                    self._rows.move_to_end(text)
                while len(self._rows) > self.size:
                    self._rows.popitem(last=False)
        if out is None:
            out = np.empty((0, getattr(embedder, "dimension", 0)), dtype=np.float32)
        return out


_caches: weakref.WeakKeyDictionary[Embedder, SentenceCache] = weakref.WeakKeyDictionary()
_caches_lock = threading.Lock()


def cache_for(embedder: Embedder) -> SentenceCache:
    """The embedder's own cache: vectors from one model never answer for another."""
    with _caches_lock:
        cache = _caches.get(embedder)
        if cache is None:
            cache = _caches[embedder] = SentenceCache()
        return cache


async def sentence_vectors(embedder: Embedder, texts: Sequence[str]) -> Vectors:
    return await cache_for(embedder).embed(embedder, texts)
