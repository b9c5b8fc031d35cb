"""Search: from a question to passages a model may read. Its face is
``retrieval.Retriever`` (embed, hybrid search filtered to readable collections, hydrate,
screen) and ``answering`` (fence passages into the prompt, read ``[n]`` citations back);
``rerank`` re-scores the fused top by its best sentence, from the sentence vectors ingestion
stored (``sentence_vectors``)."""
