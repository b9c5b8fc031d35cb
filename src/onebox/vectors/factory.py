"""Builds the configured vector index; each backend's engine is imported only when chosen."""

from __future__ import annotations

from onebox.core.settings import Settings
from onebox.vectors.base import IndexError_, VectorIndex

_PACKAGES = {
    "edge": "qdrant-edge-py",
    "qdrant": "qdrant-client",
    "pgvector": "asyncpg (pip install 'onebox[postgres]')",
}


def build_index(settings: Settings) -> VectorIndex:
    index = _build(settings)
    index.fusion = settings.hybrid_fusion
    return index


def _build(settings: Settings) -> VectorIndex:
    backend = settings.vector_backend
    weight = settings.hybrid_keyword_weight
    try:
        if backend == "edge":
            from onebox.vectors.edge import EdgeIndex

            return EdgeIndex(settings.index_dir / "edge", keyword_weight=weight)
        if backend == "qdrant":
            from onebox.vectors.qdrant_server import QdrantServerIndex

            if not settings.qdrant_url:
                raise IndexError_("ONEBOX_VECTOR_BACKEND=qdrant needs ONEBOX_QDRANT_URL")
            key = settings.qdrant_api_key
            return QdrantServerIndex(
                settings.qdrant_url,
                api_key=key.get_secret_value() if key else None,
                collection=settings.qdrant_collection,
                keyword_weight=weight,
            )
        if backend == "pgvector":
            from onebox.vectors.pgvector import PgVectorIndex

            return PgVectorIndex(
                settings.pgvector_url or settings.resolved_database_url, keyword_weight=weight
            )
    except ImportError as exc:
        raise IndexError_(
            f"ONEBOX_VECTOR_BACKEND={backend} needs the {_PACKAGES[backend]} package, which "
            f"cannot be imported ({exc}); install it or choose another backend"
        ) from exc
    raise IndexError_(f"Unknown ONEBOX_VECTOR_BACKEND {backend!r}")
