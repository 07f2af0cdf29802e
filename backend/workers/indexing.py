"""Indexing jobs: load, chunk, embed and store a document's chunks."""

from __future__ import annotations

HANDLERS: dict = {}
