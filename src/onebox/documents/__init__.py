"""Documents: collections, uploads and URLs, parsing, chunking, indexing, retrieval."""
