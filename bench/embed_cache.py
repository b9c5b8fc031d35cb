"""An opt-in disk cache of embeddings for iterating on the quality benchmark on a slow
machine (``ONEBOX_BENCH_EMBED_CACHE=/tmp/file.pkl``): the same text and kind give the same
vector, so only new passages are embedded. Never used unless the variable is set."""

from __future__ import annotations

import hashlib
import os
import pickle
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import numpy as np

from onebox.embeddings.base import InputKind, Vectors


def install(embedder: Any) -> Path | None:
    """Wraps ``embedder.embed`` with the cache; returns the file to :func:`save` to."""
    name = os.environ.get("ONEBOX_BENCH_EMBED_CACHE")
    if not name:
        return None
    path = Path(name)
    # The file this benchmark wrote, at a path the person running it chose.
    cache: dict[str, np.ndarray] = pickle.loads(path.read_bytes()) if path.is_file() else {}  # noqa: S301
    original = embedder.embed

    async def embed(texts: Sequence[str], *, kind: InputKind = "document") -> Vectors:
        keys = [hashlib.sha1(f"{kind}\0{t}".encode()).hexdigest() for t in texts]  # noqa: S324
        missing = [i for i, key in enumerate(keys) if key not in cache]
        if missing:
            fresh = await original([texts[i] for i in missing], kind=kind)
            for row, i in enumerate(missing):
                cache[keys[i]] = fresh[row]
        return np.stack([cache[key] for key in keys]).astype(np.float32)

    embedder.embed = embed
    embedder._bench_cache = cache
    return path


def save(embedder: Any, path: Path | None) -> None:
    if path is not None:
        path.write_bytes(pickle.dumps(embedder._bench_cache))
