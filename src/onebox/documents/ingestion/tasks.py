"""The ingestion job: fetch (URLs) → parse → chunk → embed → index → ready. The same
function runs in the in-process worker and in Celery workers."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Callable
from typing import Any, TypeVar

from onebox.core.settings import Settings
from onebox.documents.ingestion.fetching import FetchError, FetchPolicy, fetch_url
from onebox.documents.ingestion.indexing import embed_and_index
from onebox.documents.ingestion.parsing import ParseError, detect_media_type
from onebox.documents.ingestion.preparing import prepare_document
from onebox.documents.ingestion.sentences import queue_sentences
from onebox.documents.models import Document, DocumentStatus
from onebox.documents.repository import DocumentRepository
from onebox.documents.service import content_hash, parse_limits
from onebox.embeddings.base import Embedder
from onebox.embeddings.batching import CoalescingEmbedder
from onebox.guard.service import Guard
from onebox.jobs.base import JobContext, PermanentJobError
from onebox.jobs.sandbox import SandboxLimitError

T = TypeVar("T")

logger = logging.getLogger(__name__)


def fetch_policy(ctx: JobContext) -> FetchPolicy:
    return fetch_policy_for(ctx.services.settings)


def fetch_policy_for(settings: Settings) -> FetchPolicy:
    return FetchPolicy(
        timeout=settings.fetch_timeout_seconds,
        max_bytes=settings.max_upload_bytes,
        allow_private=settings.fetch_allow_private,
    )


async def ingest_document(ctx: JobContext) -> None:
    document_id = str(ctx.payload["document_id"])
    try:
        await _ingest(ctx, document_id)
    except (ParseError, PermanentJobError) as exc:
        await _settle(ctx, document_id, DocumentStatus.FAILED, str(exc))
        raise PermanentJobError(str(exc)) from exc
    except Exception as exc:
        # The runner retries; the document says so, and fails with the job's last reason.
        final = ctx.is_last_attempt
        reason = str(exc) or type(exc).__name__
        await _settle(
            ctx,
            document_id,
            DocumentStatus.FAILED if final else DocumentStatus.QUEUED,
            reason if final else f"Retrying after: {reason}",
        )
        raise


async def _settle(ctx: JobContext, document_id: str, status: str, error: str | None) -> None:
    async with ctx.services.sessionmaker() as session:
        document = await DocumentRepository(session).document_for_job(document_id)
        if document is not None:
            document.status = status
            document.error = error
            await session.commit()


async def _ingest(ctx: JobContext, document_id: str) -> None:
    services = ctx.services
    settings = services.settings
    async with services.sessionmaker() as session:
        repository = DocumentRepository(session)
        document = await repository.document_for_job(document_id)
        if document is None:
            return  # deleted while queued: nothing to do
        document.status = DocumentStatus.PROCESSING
        document.error = None
        await session.commit()
        data = await repository.blob(document_id)
        common_lines = await repository.common_lines(document.collection_id)

    if data is None:
        if document.source != "url":
            raise PermanentJobError("The uploaded file's contents are missing")
        await ctx.progress(0.02, "Downloading")
        data = await _download(ctx, document)
        if data is None:
            return  # identical content already in the collection

    await ctx.progress(0.05, "Parsing")
    prepared = await _sandboxed(
        ctx,
        document,
        prepare_document,
        parse_name(document),
        data,
        parse_limits(settings),
        settings.chunk_size,
        settings.chunk_overlap,
        common_lines,
        services.embedder.window(),
        settings.chunk_min_lead,
    )
    drafts = prepared.drafts
    if not drafts:
        raise PermanentJobError(f"{document.filename} contains no text")
    await ctx.progress(0.1, f"Embedding {len(drafts)} passages")

    # A retry or a resumed job starts from a clean slate for this document.
    await services.index.delete_documents([document_id])

    async def embedded(done: int) -> None:
        await ctx.progress(0.1 + 0.85 * done / len(drafts), f"Embedded {done}/{len(drafts)}")

    embedder = _embedder(ctx)
    rows = await embed_and_index(
        drafts,
        document_id=document_id,
        collection_id=document.collection_id,
        embedder=embedder,
        index=services.index,
        batch_size=settings.embedding_batch_size,
        on_batch=embedded,
        title=prepared.title,
        # Jobs embedding beside this one need not wait for its index and database writes.
        on_embedded=_release(ctx),
        screen=_screen(settings),
    )
    async with services.sessionmaker() as session:
        repository = DocumentRepository(session)
        current = await repository.document_for_job(document_id)
        if current is None:
            # Deleted while we worked: take our index entries back out.
            await services.index.delete_documents([document_id])
            return
        await repository.delete_chunks(document_id)
        await repository.add_chunks(rows)
        await repository.count_lines(current.collection_id, prepared.lines)
        current.status = DocumentStatus.READY
        current.error = None
        current.chunk_count = len(rows)
        current.pages = prepared.pages
        current.media_type = prepared.media_type
        await queue_sentences(session, current.id, settings)
        await session.commit()
    await ctx.progress(1.0, f"Ready: {len(rows)} passages")


def _release(ctx: JobContext) -> Callable[[], None] | None:
    """For a grouped job: tells the group this job needs no more embedding."""
    group = ctx.group
    if group is None:
        return None
    return lambda: group.release(ctx.job_id)


_guards: dict[tuple[str, float], Guard] = {}


def _screen(settings: Settings) -> Callable[[str], str | None]:
    """The injection screen that marks clean passages, one guard per policy and process."""
    policy = (settings.injection_action, settings.injection_threshold)
    if policy not in _guards:
        _guards[policy] = Guard(settings)
    return _guards[policy].clean_mark


def _embedder(ctx: JobContext) -> Embedder:
    """The process's embedder; for jobs claimed together, one shared wrapper over it that
    embeds their passages in common batches (small pages have a handful each)."""
    group, embedder = ctx.group, ctx.services.embedder
    if group is None:
        return embedder
    shared = group.shared.get("embedder")
    if not isinstance(shared, CoalescingEmbedder):
        shared = CoalescingEmbedder(
            embedder, lambda: group.active, ctx.services.settings.embedding_batch_size
        )
        group.on_change(shared.wake)
        group.shared["embedder"] = shared
    return shared


async def _sandboxed(
    ctx: JobContext, document: Document, function: Callable[..., T], *args: Any
) -> T:
    """Parsing-type work runs in the sandbox pool, off the event loop and under its limits;
    a file that crosses one fails with the reason."""
    try:
        return await ctx.services.sandbox.run(function, *args)
    except SandboxLimitError as exc:
        raise PermanentJobError(f"{document.filename} could not be read: {exc}") from exc


async def _download(ctx: JobContext, document: Document) -> bytes | None:
    """Fetches a URL document's bytes and stores them; ``None`` when the same content is
    already in the collection (this document is then removed as a no-op)."""
    try:
        fetched = await fetch_url(document.source_uri, fetch_policy(ctx))
    except FetchError as exc:
        if not exc.retryable:
            raise PermanentJobError(str(exc)) from exc
        raise
    try:
        media_type = await _sandboxed(
            ctx, document, detect_media_type, fetched.filename, fetched.data
        )
    except ParseError as exc:
        raise PermanentJobError(str(exc)) from exc
    digest = await asyncio.to_thread(content_hash, fetched.data)
    async with ctx.services.sessionmaker() as session:
        repository = DocumentRepository(session)
        current = await repository.document_for_job(document.id)
        if current is None:
            return None
        duplicate = await repository.by_hash(current.collection_id, digest)
        if duplicate is not None and duplicate.id != current.id:
            await repository.delete_document(current)
            await session.commit()
            await ctx.progress(1.0, f"Same content as {duplicate.filename}: nothing to add")
            return None
        current.content_hash = digest
        current.media_type = media_type
        current.size_bytes = len(fetched.data)
        await repository.set_blob(current.id, fetched.data)
        await session.commit()
        document.media_type = media_type
    return fetched.data


_EXTENSIONS = {
    "text/html": ".html",
    "text/markdown": ".md",
    "text/csv": ".csv",
    "application/json": ".json",
    "application/pdf": ".pdf",
    "text/plain": ".txt",
}


def parse_name(document: Document) -> str:
    """URL documents are named by their URL; the parser wants a file name whose extension
    matches the content that was detected when it was fetched."""
    if document.source != "url":
        return document.filename
    return "page" + _EXTENSIONS.get(document.media_type, "")
