"""The embedding provider interface."""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Sequence
from typing import Literal

import numpy as np
import numpy.typing as npt

Vectors = npt.NDArray[np.float32]
InputKind = Literal["document", "query"]


class EmbeddingError(Exception):
    """The embedding backend failed (upstream down, bad response, model missing)."""


class Embedder(ABC):
    """Turns texts into L2-normalised float32 vectors, one row per text."""

    name: str
    dimension: int
    max_batch: int = 64

    async def start(self) -> None:
        """Load the model or probe the upstream; sets ``dimension``."""

    @abstractmethod
    async def embed(self, texts: Sequence[str], *, kind: InputKind = "document") -> Vectors:
        """Rows are unit length, shape ``(len(texts), dimension)``."""

    async def embed_background(
        self, texts: Sequence[str], *, kind: InputKind = "document"
    ) -> Vectors:
        """:meth:`embed` for work nobody waits on (a job after ingestion): a backend that
        keeps a fast lane for interactive calls keeps this off it."""
        return await self.embed(texts, kind=kind)

    def count_tokens(self, text: str) -> int:
        """For usage accounting; a heuristic unless the backend knows better."""
        return max(1, len(text) // 4)

    def window(self) -> tuple[str, int] | None:
        """(path of a ``tokenizers`` tokenizer.json, the encoder's window in its tokens)
        when passages must fit a known window (text beyond it is silently cut); None when
        unknown. Ingestion splits passages that would not fit."""
        return None

    async def close(self) -> None:
        pass
