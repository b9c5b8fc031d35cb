"""Vector indexes for chunks: dense + keyword (BM25) search, each filtered by collection
inside the query, fused by score (``fusion.py``)."""
