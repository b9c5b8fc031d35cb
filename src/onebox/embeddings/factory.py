"""The embedder the settings ask for. Imports are lazy: the local provider pulls in torch
(seconds, hundreds of MB), which an upstream-only deployment never needs."""

from __future__ import annotations

import httpx

from onebox.core.settings import Settings
from onebox.embeddings.base import Embedder


def build_embedder(settings: Settings, http: httpx.AsyncClient) -> Embedder:
    """Not started: the caller awaits ``start()`` (loads the model or probes the upstream)."""
    provider = settings.embedding_provider
    if provider == "local":
        from onebox.embeddings.local import SentenceTransformerEmbedder

        return SentenceTransformerEmbedder.from_settings(settings)
    if provider == "openai":
        from onebox.embeddings.upstream import OpenAICompatibleEmbedder

        return OpenAICompatibleEmbedder.from_settings(settings, http)
    raise ValueError(f"Unknown embedding provider {provider!r}: use 'local' or 'openai'")
