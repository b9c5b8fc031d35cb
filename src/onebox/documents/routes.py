"""HTTP for collections, documents, passages and search. Logic lives in service.py."""

from __future__ import annotations

import asyncio
import logging
from collections.abc import Sequence

from fastapi import APIRouter, Query, Request, Response
from starlette.datastructures import FormData, UploadFile

from onebox.core.errors import APIError, BadRequestError, PayloadTooLargeError
from onebox.core.inputs import PageOffset
from onebox.core.pagination import Page
from onebox.core.settings import Settings
from onebox.deps import CurrentPrincipal, CurrentUserId, SessionDep, StateDep
from onebox.documents.filenames import safe_filename, upload_filename
from onebox.documents.ingestion.fetching import (
    BlockedURLError,
    FetchError,
    check_url,
    fetch_sitemap,
)
from onebox.documents.ingestion.parsing import ParseError, UnsupportedTypeError, expand_upload
from onebox.documents.ingestion.parsing.base import SourceFile
from onebox.documents.ingestion.tasks import fetch_policy_for
from onebox.documents.schemas import (
    ChunkOut,
    CollectionCreate,
    CollectionList,
    CollectionOut,
    CollectionUpdate,
    DocumentOut,
    IngestResult,
    SearchRequest,
    SearchResult,
    Skipped,
    SourceOut,
    UrlIngest,
)
from onebox.documents.service import Added, DocumentService, parse_limits
from onebox.state import AppState
from onebox.vectors.base import SearchMode

logger = logging.getLogger(__name__)

router = APIRouter(prefix="/api", tags=["documents"])

MAX_FILES_PER_UPLOAD = 1000


async def after_commit(
    state: AppState, added: Added | None = None, deleted: Sequence[str] = ()
) -> None:
    """Jobs reach workers, and index entries go, only once the transaction is durable."""
    if added is not None and added.job_ids:
        state.jobs.notify(added.job_ids)
    if deleted:
        try:
            await state.index.delete_documents(list(deleted))
        except Exception:
            # The rows are gone, so retrieval already ignores these entries.
            logger.exception("Could not remove %d documents from the index", len(deleted))


async def ingest_result(service: DocumentService, added: Added) -> IngestResult:
    return IngestResult(
        documents=await service.documents_out(added.documents),
        duplicates=added.duplicates,
        skipped=added.skipped,
    )


@router.get("/collections", response_model=CollectionList)
async def list_collections(
    session: SessionDep, user_id: CurrentUserId, state: StateDep
) -> CollectionList:
    return CollectionList(
        items=await DocumentService(session, state.settings).list_collections(user_id)
    )


@router.post("/collections", response_model=CollectionOut, status_code=201)
async def create_collection(
    body: CollectionCreate, session: SessionDep, user_id: CurrentUserId, state: StateDep
) -> CollectionOut:
    service = DocumentService(session, state.settings)
    collection = await service.create_collection(user_id, body)
    await session.commit()
    return await service.collection_out(collection)


@router.get("/collections/{collection_id}", response_model=CollectionOut)
async def get_collection(
    collection_id: str, session: SessionDep, user_id: CurrentUserId, state: StateDep
) -> CollectionOut:
    service = DocumentService(session, state.settings)
    return await service.collection_out(await service.get_collection(user_id, collection_id))


@router.patch("/collections/{collection_id}", response_model=CollectionOut)
async def update_collection(
    collection_id: str,
    body: CollectionUpdate,
    session: SessionDep,
    user_id: CurrentUserId,
    state: StateDep,
) -> CollectionOut:
    service = DocumentService(session, state.settings)
    collection = await service.update_collection(user_id, collection_id, body)
    await session.commit()
    return await service.collection_out(collection)


@router.delete("/collections/{collection_id}", status_code=204)
async def delete_collection(
    collection_id: str, session: SessionDep, user_id: CurrentUserId, state: StateDep
) -> Response:
    deleted = await DocumentService(session, state.settings).delete_collection(
        user_id, collection_id
    )
    await session.commit()
    await after_commit(state, deleted=deleted)
    return Response(status_code=204)


@router.get("/collections/{collection_id}/documents", response_model=Page[DocumentOut])
async def list_documents(
    collection_id: str,
    session: SessionDep,
    user_id: CurrentUserId,
    state: StateDep,
    limit: int = Query(default=100, ge=1, le=500),
    offset: PageOffset = 0,
) -> Page[DocumentOut]:
    service = DocumentService(session, state.settings)
    rows = await service.list_documents(user_id, collection_id, limit=limit + 1, offset=offset)
    return Page[DocumentOut].from_rows(await service.documents_out(rows), limit, offset)


async def _read_upload(upload: UploadFile, name: str, limit: int) -> bytes:
    data = await upload.read(limit + 1)
    if len(data) > limit:
        raise PayloadTooLargeError(
            f"{name} is larger than the limit of {limit // (1024 * 1024)} MB",
            param="files",
        )
    return data


# The route reads the form itself (streamed, bounded); this tells clients its shape.
UPLOAD_BODY = {
    "requestBody": {
        "required": True,
        "content": {
            "multipart/form-data": {
                "schema": {
                    "type": "object",
                    "required": ["files"],
                    "properties": {
                        "files": {
                            "type": "array",
                            "items": {"type": "string", "format": "binary"},
                            "description": "The files; zip archives expand into theirs",
                        }
                    },
                }
            }
        },
    }
}


@router.post(
    "/collections/{collection_id}/documents",
    response_model=IngestResult,
    status_code=202,
    openapi_extra=UPLOAD_BODY,
)
async def upload_documents(
    collection_id: str,
    request: Request,
    session: SessionDep,
    user_id: CurrentUserId,
    state: StateDep,
) -> IngestResult:
    """Multipart upload (field ``files``, many at once); zips expand into their files.
    Returns at once: each document is parsed and indexed by a background job."""
    settings = state.settings
    service = DocumentService(session, settings)
    collection = await service.get_collection(user_id, collection_id)
    try:
        form = await request.form(max_files=MAX_FILES_PER_UPLOAD, max_fields=10)
    except Exception as exc:
        raise BadRequestError(f"Could not read the multipart upload: {exc}") from exc
    try:
        files, skipped, errors = await _expand_uploads(form, settings)
    finally:
        await form.close()
    added = await service.add_files(user_id, collection, files, source="upload")
    added.skipped[:0] = skipped
    if not added.documents and not added.duplicates:
        _raise_nothing_added(added.skipped, errors)
    await session.commit()
    await after_commit(state, added)
    return await ingest_result(service, added)


async def _expand_uploads(
    form: FormData, settings: Settings
) -> tuple[list[SourceFile], list[Skipped], list[Exception]]:
    uploads = [f for f in form.getlist("files") if isinstance(f, UploadFile)]
    if not uploads:
        raise BadRequestError("Send one or more files in the multipart field 'files'")
    files: list[SourceFile] = []
    skipped: list[Skipped] = []
    errors: list[Exception] = []
    limits = parse_limits(settings)
    for upload in uploads:
        name = upload_filename(upload.filename)
        try:
            data = await _read_upload(upload, name, settings.max_upload_bytes)
            # Decompressing and sniffing up to hundreds of MB: not on the event loop.
            expanded = await asyncio.to_thread(expand_upload, name, data, limits)
        except (PayloadTooLargeError, ParseError) as exc:
            skipped.append(Skipped(filename=name, reason=getattr(exc, "message", str(exc))))
            errors.append(exc)
            continue
        files.extend(expanded.files)
        skipped.extend(Skipped(filename=safe_filename(n), reason=r) for n, r in expanded.skipped)
    return files, skipped, errors


def _raise_nothing_added(skipped: list[Skipped], errors: Sequence[object]) -> None:
    reasons = "; ".join(f"{s.filename}: {s.reason}" for s in skipped[:5]) or "no files"
    if any(isinstance(e, PayloadTooLargeError) for e in errors):
        raise PayloadTooLargeError(reasons, param="files")
    if errors and not all(isinstance(e, UnsupportedTypeError) for e in errors):
        raise APIError(422, reasons, "invalid_request_error", param="files")
    raise APIError(415, reasons, "unsupported_media_type", param="files")


@router.post("/collections/{collection_id}/urls", response_model=IngestResult, status_code=202)
async def add_urls(
    collection_id: str,
    body: UrlIngest,
    session: SessionDep,
    user_id: CurrentUserId,
    state: StateDep,
) -> IngestResult:
    """One web page, or every page of a sitemap; pages are fetched by background jobs."""
    settings = state.settings
    service = DocumentService(session, settings)
    collection = await service.get_collection(user_id, collection_id)
    policy = fetch_policy_for(settings)
    url = body.url.strip()
    try:
        await check_url(url, policy)
        urls = (
            await fetch_sitemap(url, policy, max_urls=settings.sitemap_max_urls)
            if body.sitemap
            else [url]
        )
    except BlockedURLError as exc:
        raise BadRequestError(str(exc), param="url", code="url_blocked") from exc
    except FetchError as exc:
        raise APIError(422, str(exc), "invalid_request_error", param="url") from exc
    if not urls:
        raise APIError(422, "The sitemap lists no pages", "invalid_request_error", param="url")
    added = await service.add_urls(user_id, collection, urls)
    await session.commit()
    await after_commit(state, added)
    return await ingest_result(service, added)


@router.get("/documents/{document_id}", response_model=DocumentOut)
async def get_document(
    document_id: str, session: SessionDep, user_id: CurrentUserId, state: StateDep
) -> DocumentOut:
    service = DocumentService(session, state.settings)
    document = await service.get_document(user_id, document_id)
    return (await service.documents_out([document]))[0]


@router.delete("/documents/{document_id}", status_code=204)
async def delete_document(
    document_id: str, session: SessionDep, user_id: CurrentUserId, state: StateDep
) -> Response:
    deleted = await DocumentService(session, state.settings).delete_document(user_id, document_id)
    await session.commit()
    await after_commit(state, deleted=[deleted])
    return Response(status_code=204)


@router.post("/documents/{document_id}/retry", response_model=DocumentOut, status_code=202)
async def retry_document(
    document_id: str, session: SessionDep, user_id: CurrentUserId, state: StateDep
) -> DocumentOut:
    service = DocumentService(session, state.settings)
    document, job_id = await service.retry_document(user_id, document_id)
    await session.commit()
    state.jobs.notify([job_id])
    return (await service.documents_out([document]))[0]


@router.get("/chunks/{chunk_id}", response_model=ChunkOut)
async def get_chunk(
    chunk_id: str, session: SessionDep, user_id: CurrentUserId, state: StateDep
) -> ChunkOut:
    return await DocumentService(session, state.settings).get_chunk(user_id, chunk_id)


@router.post("/search", response_model=SearchResult)
async def search(
    body: SearchRequest, session: SessionDep, principal: CurrentPrincipal, state: StateDep
) -> SearchResult:
    service = DocumentService(session, state.settings)
    allowed = principal.key.collections if principal.key else None
    mode: SearchMode = body.mode  # type: ignore[assignment]
    async with state.retriever.query_embedding(body.query, mode) as embedding:
        ids = await service.resolve_collections(principal.user_id, body.collection_ids, allowed)
        found = await state.retriever.retrieve(
            session,
            body.query,
            ids,
            limit=body.limit,
            mode=mode,
            query_vector=embedding,
            with_context=False,  # the answer lists passages; no model reads them
        )
    return SearchResult(sources=[SourceOut.model_validate(s.public()) for s in found.sources])
