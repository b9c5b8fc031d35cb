"""Collections and documents. Services flush but never commit: the request owns the
transaction, and jobs are dispatched (and index entries removed) only after it commits."""

from __future__ import annotations

import asyncio
import hashlib
from collections.abc import Sequence
from dataclasses import dataclass, field

from sqlalchemy.ext.asyncio import AsyncSession

from onebox.core.errors import APIError, BadRequestError, ConflictError, NotFoundError
from onebox.core.settings import Settings
from onebox.documents.filenames import safe_filename
from onebox.documents.ingestion.parsing import ParseError, detect_media_type
from onebox.documents.ingestion.parsing.base import ParseLimits, SourceFile
from onebox.documents.models import Collection, Document, DocumentStatus
from onebox.documents.repository import INGEST_JOB, DocumentRepository
from onebox.documents.schemas import (
    ChunkOut,
    CollectionCreate,
    CollectionOut,
    CollectionUpdate,
    DocumentOut,
    Duplicate,
    Skipped,
)
from onebox.jobs.models import Job, JobStatus
from onebox.jobs.schemas import JobOut
from onebox.jobs.service import enqueue


def content_hash(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()


def identify(name: str, data: bytes) -> tuple[str, str]:
    """Media type and content hash: reads every byte of a file that may be 50 MB, so
    callers on an event loop run it in a thread."""
    return detect_media_type(name, data), content_hash(data)


def url_placeholder_hash(url: str) -> str:
    # Until a URL is fetched its content is unknown; the job swaps in the real hash.
    return "url:" + hashlib.sha256(url.encode()).hexdigest()[:60]


def parse_limits(settings: Settings) -> ParseLimits:
    return ParseLimits(
        max_file_bytes=settings.max_upload_bytes,
        max_zip_entries=settings.max_zip_entries,
        max_zip_total_bytes=settings.max_zip_total_bytes,
        max_zip_ratio=settings.max_zip_ratio,
        max_html_depth=settings.parse_max_html_depth,
        max_pdf_page_content_bytes=settings.parse_max_pdf_page_content_bytes,
    )


@dataclass
class Added:
    documents: list[Document] = field(default_factory=list)
    duplicates: list[Duplicate] = field(default_factory=list)
    skipped: list[Skipped] = field(default_factory=list)
    job_ids: list[str] = field(default_factory=list)


def document_out(document: Document, job: Job | None) -> DocumentOut:
    out = DocumentOut.model_validate(document)
    if job is not None:
        out.job = JobOut.model_validate(job)
        # A job that gave up (e.g. its worker died too often) settles the document too.
        if job.status == JobStatus.FAILED and document.status != DocumentStatus.READY:
            out.status = DocumentStatus.FAILED
            out.error = out.error or job.error
    return out


class DocumentService:
    def __init__(self, session: AsyncSession, settings: Settings) -> None:
        self.repository = DocumentRepository(session)
        self.settings = settings

    # Collections ------------------------------------------------------------------------

    async def create_collection(self, owner_id: str, body: CollectionCreate) -> Collection:
        name = body.name.strip()
        if not name:
            raise BadRequestError("name must not be blank", param="name")
        if await self.repository.collection_by_name(owner_id, name) is not None:
            raise ConflictError(f"You already have a collection named {name!r}", param="name")
        collection = Collection(owner_id=owner_id, name=name, description=body.description)
        await self.repository.add(collection)
        return collection

    async def get_collection(self, owner_id: str, collection_id: str) -> Collection:
        collection = await self.repository.get_collection(owner_id, collection_id)
        if collection is None:
            raise NotFoundError(f"Collection {collection_id!r} not found")
        return collection

    async def collection_out(self, collection: Collection) -> CollectionOut:
        counts = await self.repository.collection_counts([collection.id])
        documents, chunks = counts.get(collection.id, (0, 0))
        out = CollectionOut.model_validate(collection)
        out.document_count, out.chunk_count = documents, chunks
        return out

    async def list_collections(self, owner_id: str) -> list[CollectionOut]:
        rows = await self.repository.list_collections(owner_id)
        counts = await self.repository.collection_counts([row.id for row in rows])
        items = []
        for row in rows:
            out = CollectionOut.model_validate(row)
            out.document_count, out.chunk_count = counts.get(row.id, (0, 0))
            items.append(out)
        return items

    async def update_collection(
        self, owner_id: str, collection_id: str, body: CollectionUpdate
    ) -> Collection:
        collection = await self.get_collection(owner_id, collection_id)
        if body.name is not None:
            name = body.name.strip()
            existing = await self.repository.collection_by_name(owner_id, name)
            if not name:
                raise BadRequestError("name must not be blank", param="name")
            if existing is not None and existing.id != collection.id:
                raise ConflictError(f"You already have a collection named {name!r}", param="name")
            collection.name = name
        if body.description is not None:
            collection.description = body.description
        await self.repository.session.flush()
        return collection

    async def delete_collection(self, owner_id: str, collection_id: str) -> list[str]:
        collection = await self.get_collection(owner_id, collection_id)
        return await self.repository.delete_collection(collection)

    async def resolve_collections(
        self, owner_id: str, refs: Sequence[str], allowed: Sequence[str] | None = None
    ) -> list[str]:
        """Collection ids or names the caller owns (and its API key may read), in order."""
        ids: list[str] = []
        for ref in dict.fromkeys(refs):
            collection = await self.repository.get_collection(owner_id, ref)
            if collection is None:
                collection = await self.repository.collection_by_name(owner_id, ref)
            if collection is None:
                raise NotFoundError(f"Collection {ref!r} not found", param="collections")
            if allowed is not None and not {collection.id, collection.name} & set(allowed):
                raise APIError(
                    403,
                    f"This API key may not read collection {collection.name!r}",
                    "permission_error",
                    param="collections",
                )
            ids.append(collection.id)
        return ids

    async def readable_collection_ids(
        self, owner_id: str, ids: Sequence[str], allowed: Sequence[str] | None = None
    ) -> list[str]:
        """The subset of ``ids`` the caller still owns (collections may have been deleted
        since a conversation chose them) and its API key, if any, may read."""
        owned = await self.repository.owned_collections(owner_id, ids)
        if allowed is not None:
            permitted = set(allowed)
            owned = [c for c in owned if c.id in permitted or c.name in permitted]
        keep = {c.id for c in owned}
        return [cid for cid in ids if cid in keep]

    # Documents --------------------------------------------------------------------------

    async def add_files(
        self,
        owner_id: str,
        collection: Collection,
        files: Sequence[SourceFile],
        *,
        source: str,
        source_uris: Sequence[str] | None = None,
    ) -> Added:
        added = Added()
        for position, file in enumerate(files):
            uri = source_uris[position] if source_uris else ""
            name = safe_filename(file.name)
            try:
                media_type, digest = await asyncio.to_thread(identify, name, file.data)
            except ParseError as exc:
                added.skipped.append(Skipped(filename=name, reason=str(exc)))
                continue
            existing = await self.repository.by_hash(collection.id, digest)
            if existing is not None:
                added.duplicates.append(Duplicate(filename=name, document_id=existing.id))
                continue
            document = Document(
                collection_id=collection.id,
                owner_id=owner_id,
                filename=name,
                source=source,
                source_uri=uri,
                media_type=media_type,
                size_bytes=len(file.data),
                content_hash=digest,
                status=DocumentStatus.QUEUED,
            )
            await self.repository.add(document)
            await self.repository.set_blob(document.id, file.data)
            await self._enqueue(owner_id, document, added)
        return added

    async def add_urls(self, owner_id: str, collection: Collection, urls: Sequence[str]) -> Added:
        added = Added()
        for url in dict.fromkeys(urls):
            placeholder = url_placeholder_hash(url)
            existing = await self.repository.by_source_uri(collection.id, url)
            if existing is not None:
                added.duplicates.append(Duplicate(filename=url, document_id=existing.id))
                continue
            document = Document(
                collection_id=collection.id,
                owner_id=owner_id,
                filename=safe_filename(url, limit=500),  # a sitemap's <loc> is raw text
                source="url",
                source_uri=url,
                content_hash=placeholder,
                status=DocumentStatus.QUEUED,
            )
            await self.repository.add(document)
            await self._enqueue(owner_id, document, added)
        return added

    async def _enqueue(self, owner_id: str, document: Document, added: Added) -> None:
        job = await enqueue(
            self.repository.session,
            INGEST_JOB,
            {"document_id": document.id},
            subject_id=document.id,
            owner_id=owner_id,
            settings=self.settings,
        )
        added.documents.append(document)
        added.job_ids.append(job.id)

    async def get_document(self, owner_id: str, document_id: str) -> Document:
        document = await self.repository.get_document(owner_id, document_id)
        if document is None:
            raise NotFoundError(f"Document {document_id!r} not found")
        return document

    async def delete_document(self, owner_id: str, document_id: str) -> str:
        document = await self.get_document(owner_id, document_id)
        await self.repository.delete_document(document)
        return document.id

    async def retry_document(self, owner_id: str, document_id: str) -> tuple[Document, str]:
        document = await self.get_document(owner_id, document_id)
        job = (await self.repository.latest_jobs([document.id])).get(document.id)
        failed = document.status == DocumentStatus.FAILED or (
            job is not None and job.status == JobStatus.FAILED
        )
        if not failed:
            raise ConflictError(f"{document.filename} has not failed; nothing to retry")
        document.status = DocumentStatus.QUEUED
        document.error = None
        added = Added()
        await self._enqueue(owner_id, document, added)
        return document, added.job_ids[0]

    async def documents_out(self, documents: Sequence[Document]) -> list[DocumentOut]:
        jobs = await self.repository.latest_jobs([d.id for d in documents])
        return [document_out(d, jobs.get(d.id)) for d in documents]

    async def list_documents(
        self, owner_id: str, collection_id: str, *, limit: int, offset: int
    ) -> list[Document]:
        await self.get_collection(owner_id, collection_id)
        rows = await self.repository.list_documents(collection_id, limit=limit, offset=offset)
        return list(rows)

    async def get_chunk(self, owner_id: str, chunk_id: str) -> ChunkOut:
        found = await self.repository.get_chunk(owner_id, chunk_id)
        if found is None:
            raise NotFoundError(f"Passage {chunk_id!r} not found")
        chunk, document = found
        return ChunkOut(
            id=chunk.id,
            document_id=chunk.document_id,
            collection_id=chunk.collection_id,
            filename=document.filename,
            ordinal=chunk.ordinal,
            text=chunk.text,
            page=chunk.page,
            heading_path=list(chunk.heading_path or []),
            start_offset=chunk.start_offset,
            end_offset=chunk.end_offset,
        )
