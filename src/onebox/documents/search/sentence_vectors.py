"""Passage sentences: how a passage is cut into them, and their vectors, remembered. The
rerank and the quoted support score every sentence of the retrieved passages on every turn.

Two tiers. Ingestion's follow-up job (``documents/ingestion/sentences.py``) embeds every
text the query path will ask for (:func:`stored_texts`) and stores them with the chunk
(``chunks.sentences``, packed by :func:`pack`); retrieval hands the stored rows of the
passages it found to :meth:`SentenceCache.remember`. In front of that, a bounded LRU per
embedder, keyed by a digest of the text (an edited passage is simply a new key), holds
what was stored or embedded lately: about 1.6 KB a 384-dimension vector, 20,000 sentences ≈
30 MB at most. What neither holds (a passage ingested before its job ran, a passage the
guard rewrote) is embedded on the spot.
"""

from __future__ import annotations

import hashlib
import re
import struct
import threading
import weakref
from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np

from onebox.embeddings.base import Embedder, Vectors

MAX_SENTENCES = 20_000
MAX_SENTENCE_CHARS = 400
MIN_SENTENCE_WORDS = 3  # shorter ones are never quoted as support
_PACKED = b"OBS1"
_HEADER = struct.Struct("<4sHIH")  # magic, model name bytes, rows, dimension
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


def passage_sentences(text: str) -> list[str]:
    """The rerank's units: the sentences, or the whole passage folded when it has none."""
    return split_sentences(text) or [" ".join(text.split())]


def in_context(heading: str, sentence: str) -> str:
    """A sentence as the support scores it, under its heading ("shutil.rmtree(): Recursively
    delete a directory tree."): the section it belongs to is often the answer."""
    return f"{heading}: {sentence}" if heading else sentence


def support_sentences(text: str) -> list[str]:
    """The sentences the support may quote."""
    return [s for s in split_sentences(text) if len(s.split()) >= MIN_SENTENCE_WORDS]


def stored_texts(text: str, heading: str, document: str) -> list[str]:
    """Every text the query path embeds for one passage: the rerank's sentences, the
    support's sentences under the heading, and the heading (or the document's name)."""
    wanted = passage_sentences(text)
    wanted += [in_context(heading, s) for s in support_sentences(text)]
    wanted.append(heading or document)
    return list(dict.fromkeys(wanted))


def digest(text: str) -> bytes:
    return hashlib.blake2b(text.encode("utf-8"), digest_size=16).digest()


def pack(model: str, texts: Sequence[str], vectors: Vectors | Sequence[Any]) -> bytes:
    """``texts``' vectors from ``model``, for ``chunks.sentences``: keyed by digest, stored
    as float16 (cosines move by about 1e-3)."""
    name = model.encode("utf-8")
    matrix = np.asarray(vectors, dtype=np.float16)
    if matrix.ndim != 2 or matrix.shape[0] != len(texts):
        raise ValueError("one vector per text expected")
    header = _HEADER.pack(_PACKED, len(name), matrix.shape[0], matrix.shape[1])
    digests = b"".join(digest(text) for text in texts)
    return header + name + digests + matrix.astype("<f2").tobytes()


def unpack(blob: bytes, model: str) -> tuple[list[bytes], np.ndarray[Any, Any]] | None:
    """The digests and vectors packed by :func:`pack`, or None when they came from another
    model or are not a packed blob."""
    if len(blob) < _HEADER.size:
        return None
    magic, name_size, rows, dimension = _HEADER.unpack_from(blob)
    at = _HEADER.size
    if magic != _PACKED or blob[at : at + name_size] != model.encode("utf-8"):
        return None
    at += name_size
    if len(blob) != at + rows * 16 + rows * dimension * 2:
        return None
    digests = [blob[at + 16 * i : at + 16 * (i + 1)] for i in range(rows)]
    at += 16 * rows
    matrix = np.frombuffer(blob, dtype="<f2", count=rows * dimension, offset=at)
    return digests, matrix.reshape(rows, dimension).astype(np.float32)


class SentenceCache:
    def __init__(self, size: int = MAX_SENTENCES) -> None:
        self.size = size
        self._rows: OrderedDict[bytes, np.ndarray[Any, Any]] = OrderedDict()
        self._lock = threading.Lock()
        self.hits = 0
        self.misses = 0

    def __len__(self) -> int:
        return len(self._rows)

    def clear(self) -> None:
        with self._lock:
            self._rows.clear()

    def remember(self, digests: Sequence[bytes], rows: Vectors) -> None:
        """Stored rows (:func:`unpack`), so the next lookups of their texts need no model."""
        with self._lock:
            for key, row in zip(digests, rows, strict=True):
                self._rows[key] = row
                self._rows.move_to_end(key)
            while len(self._rows) > self.size:
                self._rows.popitem(last=False)

    async def embed(self, embedder: Embedder, texts: Sequence[str]) -> Vectors:
        """Rows for ``texts`` (kind "document"), in order; only the unknown ones are sent."""
        out: np.ndarray[Any, Any] | None = None
        missing: dict[str, list[int]] = {}
        keys = [digest(text) for text in texts]
        with self._lock:
            found = [self._rows.get(key) for key in keys]
            for key, row in zip(keys, found, strict=True):
                if row is not None:
                    self._rows.move_to_end(key)
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
                    key = digest(text)
                    self._rows[key] = np.array(row, dtype=np.float32)  # a copy, not a view
                    self._rows.move_to_end(key)
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


def remember_stored(embedder: Embedder, blobs: Sequence[bytes | None]) -> int:
    """Hands stored ``chunks.sentences`` blobs of ``embedder``'s model to its cache; the
    number of rows taken (a blob from another model, or none, is skipped)."""
    cache, taken = cache_for(embedder), 0
    for blob in blobs:
        found = unpack(blob, embedder.name) if blob else None
        if found is not None:
            cache.remember(*found)
            taken += len(found[0])
    return taken
