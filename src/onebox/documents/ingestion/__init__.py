"""Ingestion: from bytes or a URL to indexed passages. Its face is the job task
``tasks.ingest_document`` (run by ``jobs/``); below it, ``fetching`` (SSRF-safe URLs and
sitemaps), ``parsing`` (type detection and parsers into blocks), ``chunking``
(structure-aware passages) and ``indexing`` (embed in batches, write to the vector index)."""
