"""Text embeddings: a local sentence-transformers model or an OpenAI-compatible upstream."""
