"""Vector indexes for chunks: dense + keyword (BM25) search fused with RRF, filtered by
collection inside the query."""
