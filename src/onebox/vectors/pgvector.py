"""PostgreSQL with pgvector: dense by cosine distance over an HNSW index, keyword by the
built-in full-text search (``to_tsvector('english')``, GIN); hybrid runs both and fuses them
in Python (vectors/fusion.py), like every backend.

The keyword side matches any query term (OR), as BM25 does, not all of them as
``plainto_tsquery`` would; ``ts_rank_cd`` has no inverse document frequency, so rare terms
weigh less here than in the Qdrant backends.

Filtered HNSW: pgvector 0.8+ keeps scanning the graph until ``LIMIT`` rows pass the filter
(``hnsw.iterative_scan``); older versions stop after ``hnsw.ef_search`` candidates, so that
is raised for deep searches. A selective filter usually makes the planner skip HNSW for the
btree on collection_id and an exact sort, which is right too.
"""

from __future__ import annotations

import contextlib
import logging
import re
from collections.abc import Iterator, Sequence
from typing import Any

import asyncpg  # type: ignore[import-untyped]
import numpy as np
import numpy.typing as npt

from onebox.vectors.base import (
    DEFAULT_KEYWORD_WEIGHT,
    IndexError_,
    IndexPoint,
    SearchHit,
    SearchMode,
    VectorIndex,
)

log = logging.getLogger(__name__)

DEFAULT_EF_SEARCH = 100
MAX_EF_SEARCH = 1000  # pgvector's ceiling
MAX_VECTOR_INDEX_DIM = 2000  # HNSW on vector; halfvec (16-bit) goes to 4000
MAX_HALFVEC_INDEX_DIM = 4000
_SCHEMA_LOCK = 0x6F6E65626F78  # "onebox": replicas opening at once create the schema once
# SQL text takes only this checked table name, constants and placeholder numbers (the
# "noqa: S608" lines); every value travels as a bind parameter.
_IDENTIFIER = re.compile(r"[a-z_][a-z0-9_]{0,50}")

# A tsquery that matches any lexeme of the query text, normalised by the same 'english'
# configuration as the stored bodies. Lexemes are quoted for the tsquery parser, which
# reads backslash escapes and doubled quotes.
_ANY_TERM = (
    "string_agg('''' || replace(replace(lexeme, '\\', '\\\\'), '''', '''''') || '''', ' | ')"
    "::tsquery"
)


class PgVectorIndex(VectorIndex):
    name = "pgvector"

    def __init__(
        self,
        url: str,
        *,
        table: str = "onebox_vectors",
        min_pool: int = 1,
        max_pool: int = 10,
        keyword_weight: float = DEFAULT_KEYWORD_WEIGHT,
    ) -> None:
        if not _IDENTIFIER.fullmatch(table):
            raise IndexError_(f"Invalid pgvector table name {table!r}")
        self.dsn = postgres_dsn(url)
        self.keyword_weight = float(keyword_weight)
        self.table = table
        self.dimension = 0
        self._pool_size = (min_pool, max_pool)
        self._pool: Any = None
        self._embedding = "embedding"  # the indexed expression, a halfvec cast for big dims
        self._vector_type = "vector"

    async def open(self, dimension: int) -> None:
        if self._pool is not None:
            raise IndexError_("The pgvector index is already open")
        self.dimension = dimension
        if dimension > MAX_VECTOR_INDEX_DIM:
            self._embedding = f"(embedding::halfvec({dimension}))"
            self._vector_type = f"halfvec({dimension})"
        else:
            self._vector_type = f"vector({dimension})"
        try:
            connection = await asyncpg.connect(self.dsn, timeout=10)
        except Exception as exc:
            raise IndexError_(f"Cannot connect to PostgreSQL for pgvector: {exc}") from exc
        try:
            with _errors("prepare the pgvector table"):
                version = await self._prepare(connection, dimension)
        finally:
            await connection.close()
        # Startup parameters, not SET: the pool's RESET ALL on release falls back to them.
        settings = {"hnsw.ef_search": str(DEFAULT_EF_SEARCH)}
        if _version(version) >= (0, 8):
            settings["hnsw.iterative_scan"] = "relaxed_order"
        with _errors("open a pgvector connection pool"):
            self._pool = await asyncpg.create_pool(
                self.dsn,
                min_size=self._pool_size[0],
                max_size=self._pool_size[1],
                server_settings=settings,
            )

    async def _prepare(self, connection: Any, dimension: int) -> str:
        t = self.table
        async with connection.transaction():
            await connection.execute("SELECT pg_advisory_xact_lock($1)", _SCHEMA_LOCK)
            version = await connection.fetchval(
                "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
            )
            if version is None:
                try:
                    await connection.execute("CREATE EXTENSION IF NOT EXISTS vector")
                except asyncpg.InsufficientPrivilegeError as exc:
                    raise IndexError_(
                        "The pgvector extension is not installed in this database and this "
                        "user may not install it: run CREATE EXTENSION vector as an admin"
                    ) from exc
                version = await connection.fetchval(
                    "SELECT extversion FROM pg_extension WHERE extname = 'vector'"
                )
            built = await connection.fetchval(
                "SELECT atttypmod FROM pg_attribute WHERE attrelid = to_regclass($1) "
                "AND attname = 'embedding' AND NOT attisdropped",
                t,
            )
            if built is not None and built != dimension:
                raise IndexError_(
                    f"The pgvector table {t} holds {built}-dimension vectors but the embedding "
                    f"model makes {dimension}-dimension ones. Re-index with the model it was "
                    "built with, or drop that table and ingest the documents again."
                )
            await connection.execute(
                f"CREATE TABLE IF NOT EXISTS {t} ("
                "chunk_id uuid PRIMARY KEY, document_id text NOT NULL, "
                f"collection_id text NOT NULL, embedding vector({dimension}) NOT NULL, "
                "body text NOT NULL, tsv tsvector GENERATED ALWAYS AS "
                "(to_tsvector('english', body)) STORED)"
            )
            if dimension <= MAX_HALFVEC_INDEX_DIM:
                ops = (
                    "vector_cosine_ops"
                    if dimension <= MAX_VECTOR_INDEX_DIM
                    else "halfvec_cosine_ops"
                )
                await connection.execute(
                    f"CREATE INDEX IF NOT EXISTS {t}_embedding_hnsw ON {t} "
                    f"USING hnsw ({self._embedding} {ops})"
                )
            else:
                log.warning("pgvector has no HNSW index for %d dimensions: exact scans", dimension)
            await connection.execute(
                f"CREATE INDEX IF NOT EXISTS {t}_tsv_gin ON {t} USING gin (tsv)"
            )
            for column in ("collection_id", "document_id"):
                await connection.execute(
                    f"CREATE INDEX IF NOT EXISTS {t}_{column} ON {t} ({column})"
                )
        return str(version)

    async def upsert(self, points: Sequence[IndexPoint]) -> None:
        if not points:
            return
        rows = [
            (
                p.chunk_id,
                p.document_id,
                p.collection_id,
                _vector_text(p.dense),
                p.text.replace("\x00", ""),  # PostgreSQL text cannot hold NUL
            )
            for p in points
        ]
        t = self.table
        pool = self._require()
        with _errors("write to pgvector"):
            async with pool.acquire() as connection, connection.transaction():
                await connection.executemany(
                    f"INSERT INTO {t} (chunk_id, document_id, collection_id, embedding, body) "  # noqa: S608
                    "VALUES ($1::uuid, $2, $3, $4::vector, $5) ON CONFLICT (chunk_id) DO UPDATE "
                    "SET document_id = EXCLUDED.document_id, "
                    "collection_id = EXCLUDED.collection_id, "
                    "embedding = EXCLUDED.embedding, body = EXCLUDED.body",
                    rows,
                )

    async def delete_documents(self, document_ids: Sequence[str]) -> None:
        if not document_ids:
            return
        pool = self._require()
        with _errors("delete from pgvector"):
            await pool.execute(
                f"DELETE FROM {self.table} WHERE document_id = ANY($1::text[])",  # noqa: S608
                list(document_ids),
            )

    async def search(
        self,
        *,
        dense: npt.NDArray[np.float32] | None,
        text: str,
        collection_ids: Sequence[str],
        limit: int,
        candidates: int = 40,
        mode: SearchMode = "hybrid",
    ) -> list[SearchHit]:
        if not collection_ids or limit <= 0:
            return []
        if mode == "hybrid":
            if dense is not None:
                return await self._hybrid(dense, text, collection_ids, limit, candidates)
            mode = "keyword"  # without a vector, hybrid is the keyword side alone
        vector = dense if mode != "keyword" else None
        use_keyword = mode != "dense" and bool(text.strip())
        if vector is None and not use_keyword:
            return []
        depth = limit
        params: list[Any] = [list(collection_ids), depth]
        t = self.table
        if vector is not None:
            params.append(_vector_text(vector))
            sql = (
                "SELECT chunk_id::text, document_id, collection_id, "  # noqa: S608
                f"(1 - ({self._embedding} <=> $3::{self._vector_type}))::float8 AS score "
                f"FROM {t} WHERE collection_id = ANY($1::text[]) "
                f"ORDER BY {self._embedding} <=> $3::{self._vector_type} LIMIT $2"
            )
        else:
            params.append(text)
            sql = (
                f"WITH terms AS (SELECT {_ANY_TERM} AS query "  # noqa: S608
                "FROM unnest(to_tsvector('english', $3::text))) "
                "SELECT chunk_id::text, document_id, collection_id, "
                "ts_rank_cd(tsv, (SELECT query FROM terms), 1)::float8 AS score "
                f"FROM {t} WHERE collection_id = ANY($1::text[]) "
                "AND tsv @@ (SELECT query FROM terms) ORDER BY score DESC, chunk_id LIMIT $2"
            )
        rows = await self._fetch(sql, params, depth if vector is not None else 0)
        return [
            SearchHit(
                chunk_id=row[0], document_id=row[1], collection_id=row[2], score=float(row[3])
            )
            for row in rows
        ]

    async def _fetch(self, sql: str, params: list[Any], dense_depth: int) -> list[Any]:
        pool = self._require()
        with _errors("search pgvector"):
            if dense_depth <= DEFAULT_EF_SEARCH:
                return list(await pool.fetch(sql, *params))
            # More candidates than the graph search keeps by default: widen it for this one.
            async with pool.acquire() as connection, connection.transaction():
                ef = min(dense_depth, MAX_EF_SEARCH)
                await connection.execute(f"SET LOCAL hnsw.ef_search = {ef}")
                return list(await connection.fetch(sql, *params))

    async def count(self) -> int:
        pool = self._require()
        with _errors("count pgvector rows"):
            return int(await pool.fetchval(f"SELECT count(*) FROM {self.table}"))  # noqa: S608

    async def close(self) -> None:
        pool, self._pool = self._pool, None
        if pool is not None:
            await pool.close()

    def _require(self) -> Any:
        if self._pool is None:
            raise IndexError_("The pgvector index is not open")
        return self._pool


def postgres_dsn(url: str) -> str:
    """A libpq/asyncpg URL from a SQLAlchemy one (``postgresql+asyncpg://`` and friends)."""
    scheme, sep, rest = url.partition("://")
    base = scheme.split("+", 1)[0]
    if not sep or base not in ("postgresql", "postgres"):
        raise IndexError_(
            "ONEBOX_VECTOR_BACKEND=pgvector needs a PostgreSQL URL: set ONEBOX_PGVECTOR_URL "
            "or a postgresql+asyncpg:// ONEBOX_DATABASE_URL"
        )
    return f"postgresql://{rest}"


@contextlib.contextmanager
def _errors(action: str) -> Iterator[None]:
    try:
        yield
    except IndexError_:
        raise
    except Exception as exc:
        # asyncpg raises PostgresError subclasses, InterfaceError and OSError alike.
        raise IndexError_(f"Could not {action}: {exc}") from exc


def _vector_text(vector: npt.NDArray[np.float32]) -> str:
    # 9 significant digits give a float32 back exactly.
    return "[" + ",".join(f"{x:.9g}" for x in np.asarray(vector, dtype=np.float32).tolist()) + "]"


def _version(text: str) -> tuple[int, ...]:
    return tuple(int(part) for part in re.findall(r"\d+", text)[:3])
