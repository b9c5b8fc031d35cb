from __future__ import annotations

from datetime import datetime

from pydantic import BaseModel, ConfigDict, Field

from onebox.core.inputs import Text
from onebox.jobs.schemas import JobOut


class CollectionCreate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text = Field(min_length=1, max_length=200)
    description: Text = Field(default="", max_length=2000)


class CollectionUpdate(BaseModel):
    model_config = ConfigDict(extra="forbid")

    name: Text | None = Field(default=None, min_length=1, max_length=200)
    description: Text | None = Field(default=None, max_length=2000)


class CollectionOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    name: str
    description: str
    document_count: int = 0
    chunk_count: int = 0
    created_at: datetime
    updated_at: datetime


class CollectionList(BaseModel):
    items: list[CollectionOut]


class DocumentOut(BaseModel):
    model_config = ConfigDict(from_attributes=True)

    id: str
    collection_id: str
    filename: str
    source: str
    source_uri: str
    media_type: str
    size_bytes: int
    status: str
    error: str | None
    pages: int | None
    chunk_count: int
    created_at: datetime
    updated_at: datetime
    job: JobOut | None = None


class Duplicate(BaseModel):
    filename: str
    document_id: str


class Skipped(BaseModel):
    filename: str
    reason: str


class IngestResult(BaseModel):
    documents: list[DocumentOut]
    duplicates: list[Duplicate] = Field(default_factory=list)
    skipped: list[Skipped] = Field(default_factory=list)


class UrlIngest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    url: Text = Field(min_length=1, max_length=2000)
    sitemap: bool = Field(default=False, description="The URL is a sitemap: ingest its pages")


class ChunkOut(BaseModel):
    id: str
    document_id: str
    collection_id: str
    filename: str
    ordinal: int
    text: str
    page: int | None
    heading_path: list[str]
    start_offset: int
    end_offset: int


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")

    query: Text = Field(min_length=1, max_length=4000)
    collection_ids: list[Text] = Field(min_length=1, max_length=50)
    limit: int = Field(default=5, ge=1, le=50)
    mode: Text = Field(default="hybrid", pattern="^(hybrid|dense|keyword)$")


class SourceOut(BaseModel):
    number: int
    chunk_id: str
    document_id: str
    collection_id: str
    document: str
    page: int | None
    heading: str
    snippet: str
    score: float
    used: bool | None = None


class SearchResult(BaseModel):
    sources: list[SourceOut]
