"""Errors `rag` raises; each carries a short machine-readable `code` next to its message."""

from __future__ import annotations


class RagError(Exception):
    code = "rag_error"

    def __init__(self, message: str, *, code: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        if code:
            self.code = code


class DocumentError(RagError):
    """A document we cannot index: unsupported, corrupt, empty or too large."""


class UnsupportedDocument(DocumentError):
    code = "unsupported_document"


class CorruptDocument(DocumentError):
    code = "corrupt_document"


class DocumentTooLarge(DocumentError):
    code = "document_too_large"


class DocumentTooComplex(DocumentError):
    """Small on disk but too costly to read: too deep, too many drawing instructions, too slow."""

    code = "document_too_complex"


class EmptyDocument(DocumentError):
    code = "empty_document"


class LLMUnavailable(RagError):
    """Ollama could not answer. `code`: ollama_unreachable, model_not_found, timeout, ollama_error."""

    code = "ollama_error"


class EmbeddingError(RagError):
    code = "embedding_failed"
