"""Ingestion's follow-up job: the vectors of every passage's sentences, stored with the chunk.

The rerank and the quoted support score the retrieved passages sentence by sentence; without
stored vectors each question embeds about a hundred sentences (at 100k passages, every query
cold, a search took p50 425 ms). The ingestion job queues this one in the commit that makes
its document ready, without waking a worker: a polling worker claims it only when no other
job is due (``jobs/registry.BACKGROUND``; in-process: within seconds of the queue emptying),
Celery gets it at the app's next sweep. It never delays a document becoming searchable; until
it has run, the query path embeds what it needs.
"""

from __future__ import annotations

import logging
from collections.abc import Iterator, Sequence

from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from onebox.core.settings import Settings
from onebox.documents.ingestion.indexing import HEADING_JOINER
from onebox.documents.models import Chunk, Document, DocumentStatus
from onebox.documents.repository import SENTENCES_JOB, DocumentRepository
from onebox.documents.search.sentence_vectors import pack, stored_texts, unpack
from onebox.jobs.base import JobContext
from onebox.jobs.service import enqueue

logger = logging.getLogger(__name__)

TEXTS_PER_CALL = 512
RETRIES_AT_START = 3  # failed jobs after which a start stops queueing another


async def queue_sentences(session: AsyncSession, document_id: str, settings: Settings) -> None:
    """Adds the follow-up job to the caller's transaction (a system job: no owner)."""
    await enqueue(
        session, SENTENCES_JOB, {"document_id": document_id},
        subject_id=document_id, settings=settings,
    )  # fmt: skip


async def queue_missing_sentences(
    sessionmaker: async_sessionmaker[AsyncSession], settings: Settings
) -> int:
    """At start: queues the job for ready documents ingested before it existed, so an
    upgraded install gets its sentence vectors too, and again for one whose job failed for
    good, up to ``RETRIES_AT_START`` failures: every CLI command starts too, and a document
    the job cannot embed must not gain a failed job at each."""
    async with sessionmaker() as session:
        repository = DocumentRepository(session)
        missing = await repository.documents_missing_sentences(max_failed=RETRIES_AT_START)
        for document_id in missing:
            await queue_sentences(session, document_id, settings)
        await session.commit()
    if missing:
        logger.info("Queued sentence vectors for %d documents that lack them", len(missing))
    return len(missing)


def passage_calls(
    pending: Sequence[tuple[str, list[str]]], size: int = TEXTS_PER_CALL
) -> Iterator[list[tuple[str, list[str]]]]:
    """Whole passages, about ``size`` texts a call (a failure keeps what is stored): one
    large call rather than many small ones, which the embedder sorts by length (less
    padding). The calls go to ``embed_background``: the local model runs them on its
    document lane, never on the quick lane that searches and turns wait on."""
    batch: list[tuple[str, list[str]]] = []
    count = 0
    for chunk_id, texts in pending:
        if batch and count + len(texts) > size:
            yield batch
            batch, count = [], 0
        batch.append((chunk_id, texts))
        count += len(texts)
    if batch:
        yield batch


def chunk_texts(chunk: Chunk, document: Document) -> list[str]:
    return stored_texts(
        chunk.text, HEADING_JOINER.join(chunk.heading_path or []), document.filename
    )


async def embed_sentences(ctx: JobContext) -> None:
    document_id = str(ctx.payload["document_id"])
    services = ctx.services
    embedder = services.embedder
    async with services.sessionmaker() as session:
        repository = DocumentRepository(session)
        document = await repository.document_for_job(document_id)
        if document is None or document.status != DocumentStatus.READY:
            return  # deleted, or being ingested again (which queues this job again)
        pending = [
            (chunk.id, chunk_texts(chunk, document))
            for chunk in await repository.chunks_for_sentences(document_id)
            if not chunk.sentences or unpack(chunk.sentences, embedder.name) is None
        ]
    if not pending:
        return
    done = 0
    for batch in passage_calls(pending):
        unique = list(dict.fromkeys(text for _, texts in batch for text in texts))
        vectors = await embedder.embed_background(unique, kind="document")
        row_of = {text: row for text, row in zip(unique, vectors, strict=True)}
        async with services.sessionmaker() as session:
            repository = DocumentRepository(session)
            for chunk_id, texts in batch:
                packed = pack(embedder.name, texts, [row_of[text] for text in texts])
                await repository.store_sentences(chunk_id, packed)
            await session.commit()
        done += len(batch)
        await ctx.progress(done / len(pending), f"Sentence vectors {done}/{len(pending)}")
    logger.info("Stored sentence vectors for %d passages of %s", len(pending), document_id)
