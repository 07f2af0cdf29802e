"""Knowledge documents: upload, index (in a job), list, delete, re-index, search, FAQ entries.

`ingest_texts` and `search_assistant` are the entry points for code that runs without HTTP
(benchmarks, scripts): they take a `Runtime` and do the whole real path.
"""

from __future__ import annotations

import asyncio
import hashlib
import unicodedata
from collections.abc import Awaitable, Callable, Iterator
from contextlib import contextmanager
from dataclasses import asdict, dataclass
from datetime import datetime
from typing import Literal

import asyncpg
import numpy as np
import structlog
from pydantic import BaseModel, ConfigDict, Field, field_validator

from backend.database import transaction
from backend.errors import Invalid, NotFound, TooLarge, Unavailable, Unprocessable, Unsupported
from backend.http import Page
from backend.runtime import Runtime
from backend.services.assistants import Assistant, get_assistant
from backend.settings import Settings
from backend.store import documents as store
from backend.store import golden as golden_store
from backend.store.documents import DocumentRow
from backend.store.jobs import enqueue_job
from rag import retrieval
from rag import store as chunk_store
from rag.chunking import Chunk
from rag.embedders import Embedder
from rag.errors import (
    CorruptDocument,
    DocumentError,
    DocumentTooComplex,
    DocumentTooLarge,
    EmbeddingError,
    EmptyDocument,
    LLMUnavailable,
)
from rag.indexing import chunk_configs, chunk_document, embed_chunks, embed_texts, text_search_configs
from rag.languages import LANGUAGES, text_search_of
from rag.loaders import Block, LoadedDocument, load_document
from rag.sentences import SentenceVectors, embed_sentences, store_document_sentences

log = structlog.get_logger(__name__)

INDEX_JOB = "index_document"
REEMBED_JOB = "reembed_assistant"
# Chunks re-embedded per round (a transaction and a progress report each): a few of the embedder's batches.
REEMBED_ROUND_BATCHES = 4
TERM_STATS_JOB = "refresh_term_stats"
# A burst of uploads or deletions gives one refresh: the queued (delayed) job absorbs the next ones.
TERM_STATS_DELAY_SECONDS = 5.0


class Document(BaseModel):
    id: int
    assistant_id: int
    filename: str
    content_type: str
    size_bytes: int
    sha256: str
    status: Literal["pending", "indexing", "ready", "failed"]
    percent: int = Field(description="Indexing progress, 0-100")
    error: str | None
    chunk_count: int
    embedding_model: str | None = Field(description="The embedding model of its chunks")
    reindex_needed: bool = Field(
        description="Its vectors are another embedding model's than the one configured: being re-embedded in the background"
    )
    created_at: datetime
    updated_at: datetime


class Reembedding(BaseModel):
    """An assistant's documents being re-embedded after a change of embedding model."""

    model: str = Field(description="The configured embedding model, whose vectors are being computed")
    searching_with: str = Field(description="The model whose vectors searches compare until every chunk has its new one")
    done: int = Field(description="Chunks that have their new vector")
    total: int
    percent: int
    status: Literal["queued", "running", "failed", "not_started"] = Field(description="The re-embedding job's state")
    error: str | None


class UploadedDocument(Document):
    duplicate: bool = Field(description="The same file (sha256) was already uploaded: nothing new is indexed")
    message: str


class DocumentPage(BaseModel):
    items: list[Document]
    total: int
    limit: int
    offset: int
    reindex_needed: bool
    notice: str | None
    reembedding: Reembedding | None = Field(description="Progress of a re-embedding after a change of embedding model")


class UploadResult(BaseModel):
    items: list[UploadedDocument]


class ReindexResult(BaseModel):
    queued: list[int]


class ReembedResult(BaseModel):
    reembedding: Reembedding | None = Field(description="None: every document already has the configured model's vectors")


class SearchRequest(BaseModel):
    model_config = ConfigDict(extra="forbid")
    query: str = Field(min_length=1, max_length=4000)
    top_k: int = Field(default=8, ge=1, le=50)
    mode: Literal["hybrid", "dense", "lexical"] = "hybrid"


class SearchHit(BaseModel):
    rank: int
    chunk_id: int
    document_id: int
    filename: str
    position: int
    heading: str
    text: str
    score: float
    dense_score: float | None
    lexical_score: float | None
    dense_rank: int | None
    lexical_rank: int | None


class SearchResponse(BaseModel):
    query: str
    mode: str
    items: list[SearchHit]
    embedding_model: str
    reindex_needed: bool
    stale_document_ids: list[int]
    notice: str | None
    timings_ms: dict[str, float]


class FaqEntry(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str = Field(min_length=1, max_length=2000)
    answer: str = Field(min_length=1, max_length=20000)

    @field_validator("question", "answer")
    @classmethod
    def _has_words(cls, value: str) -> str:
        # Unicode spaces alone (NBSP, ideographic space...) would index an empty entry.
        if not any(character.isalnum() for character in value):
            raise ValueError("must contain words")
        return value.strip()


def _reindex_notice(count: int) -> str | None:
    if not count:
        return None
    return (
        f"{count} document(s) hold another embedding model's vectors than the one searches use and are left out "
        "of searches until their re-embedding is swapped in."
    )


def _reembedding_notice(reembedding: Reembedding | None) -> str | None:
    if reembedding is None:
        return None
    if reembedding.status == "failed":
        return (
            f"Re-embedding with {reembedding.model} failed: {reembedding.error}. Answers still use {reembedding.searching_with}."
        )
    return (
        f"Re-embedding with {reembedding.model}: {reembedding.done} of {reembedding.total} passages "
        f"({reembedding.percent}%). Answers use {reembedding.searching_with} until all are ready."
    )


def text_search_config(language: str | None) -> str:
    """An assistant's full-text fallback configuration: from its language code, or the configuration name
    assistants stored before they had codes ("english")."""
    if language in LANGUAGES:
        return text_search_of(language)
    return language or "simple"


def to_document(record: DocumentRow, embedding_model: str) -> Document:
    """The API's view of a stored document; `embedding_model` is the one configured now."""
    values = asdict(record)
    progress = values.pop("progress")
    return Document(
        **values,
        percent=round((progress or 0) * 100),
        reindex_needed=record.embedding_model is not None and record.embedding_model != embedding_model,
    )


def _uploaded(record: DocumentRow, model: str, *, duplicate: bool, message: str) -> UploadedDocument:
    return UploadedDocument(**to_document(record, model).model_dump(), duplicate=duplicate, message=message)


def _model_name(rt: Runtime) -> str:
    return rt.embedding_model


def document_limits(settings: Settings, max_bytes: int) -> dict[str, int]:
    """What reading one document may cost (`rag.loaders.load_document`'s limits), from the settings."""
    return {
        "max_bytes": max_bytes,
        "max_pages": settings.rag_max_pages,
        "max_chars": settings.rag_max_chars,
        "max_html_depth": settings.rag_max_html_depth,
        "max_docx_paragraphs": settings.rag_max_docx_paragraphs,
        "max_pdf_content_bytes": settings.rag_max_pdf_content_mb * 1024 * 1024,
    }


async def read_document(rt: Runtime, filename: str, data: bytes, max_bytes: int) -> LoadedDocument:
    """Parse in a child process under the CPU, memory and time limits of the settings."""
    return await rt.document_reader.read(filename, data, **document_limits(rt.settings, max_bytes))


async def _check(rt: Runtime, filename: str, data: bytes) -> LoadedDocument:
    """Parse now so a bad file is refused at upload, not discovered later by a job."""
    try:
        return await read_document(rt, filename, data, rt.settings.max_upload_bytes)
    except DocumentTooComplex as exc:
        raise Unprocessable(exc.message, code=exc.code, details={"filename": filename}) from exc
    except DocumentTooLarge as exc:
        raise TooLarge(exc.message, code=exc.code, details={"filename": filename}) from exc
    except (CorruptDocument, EmptyDocument) as exc:
        raise Invalid(exc.message, code=exc.code, details={"filename": filename}) from exc
    except DocumentError as exc:
        raise Unsupported(exc.message, code=exc.code, details={"filename": filename}) from exc


async def upload_documents(rt: Runtime, assistant_id: int, files: list[tuple[str, bytes]]) -> list[UploadedDocument]:
    """Every file is checked first; then all rows and their index jobs are written in one transaction."""
    await get_assistant(rt.db, assistant_id)
    if not files:
        raise Invalid("Send one or more files in the multipart field 'files' (or one in 'file').", code="no_files")
    checked = []
    for filename, data in files:
        name = (filename or "").strip().replace("\\", "/").rsplit("/", 1)[-1][:255] or "document"
        loaded = await _check(rt, name, data)
        checked.append((name, data, loaded))
    results: list[UploadedDocument] = []
    model = _model_name(rt)
    async with transaction(rt.db):
        for name, data, loaded in checked:
            record, duplicate = await _insert_document(rt, assistant_id, name, data, loaded.content_type)
            if duplicate:
                message = f"'{name}' was already uploaded as document {record.id} ('{record.filename}'); not indexed again."
                results.append(_uploaded(record, model, duplicate=True, message=message))
                continue
            await _enqueue_index(rt, record.id)
            results.append(_uploaded(record, model, duplicate=False, message="Queued for indexing."))
    log.info("documents.uploaded", assistant=assistant_id, files=len(files), new=sum(not r.duplicate for r in results))
    return results


async def _enqueue_index(rt: Runtime, document_id: int) -> None:
    await enqueue_job(
        rt.db,
        INDEX_JOB,
        {"document_id": document_id},
        dedup_key=f"{INDEX_JOB}:{document_id}",
        serial_key=f"document:{document_id}",
        max_attempts=rt.settings.job_max_attempts,
    )


async def _enqueue_term_stats(rt: Runtime, assistant_id: int) -> None:
    """The lexical search's word statistics follow the assistant's chunks (`rag.store.refresh_term_stats`)."""
    await enqueue_job(
        rt.db,
        TERM_STATS_JOB,
        {"assistant_id": assistant_id},
        dedup_key=f"{TERM_STATS_JOB}:{assistant_id}",
        serial_key=f"{TERM_STATS_JOB}:{assistant_id}",
        delay_seconds=TERM_STATS_DELAY_SECONDS,
        max_attempts=rt.settings.job_max_attempts,
    )


async def _queue_golden_run(rt: Runtime, assistant_id: int) -> None:
    """The documents changed: ask the golden questions again once none is left to index."""
    await golden_store.queue_run(rt.db, assistant_id, ["documents"])


async def list_documents(rt: Runtime, assistant_id: int, page: Page) -> DocumentPage:
    await get_assistant(rt.db, assistant_id)
    records, total = await store.list_documents(rt.db, assistant_id, page.limit, page.offset)
    stale = await chunk_store.stale_documents(rt.db, assistant_id, _model_name(rt))
    reembedding = await reembedding_of(rt, assistant_id) if stale else None
    return DocumentPage(
        items=[to_document(r, _model_name(rt)) for r in records],
        total=total,
        limit=page.limit,
        offset=page.offset,
        reindex_needed=bool(stale),
        notice=_reembedding_notice(reembedding),
        reembedding=reembedding,
    )


async def get_document(rt: Runtime, assistant_id: int, document_id: int) -> Document:
    record = await store.find_document(rt.db, assistant_id, document_id)
    if record is None:
        await get_assistant(rt.db, assistant_id)
        raise NotFound(f"Document {document_id} does not exist for assistant {assistant_id}.", code="document_not_found")
    return to_document(record, _model_name(rt))


async def delete_document(rt: Runtime, assistant_id: int, document_id: int) -> None:
    if not await store.delete_document(rt.db, assistant_id, document_id):
        await get_assistant(rt.db, assistant_id)
        raise NotFound(f"Document {document_id} does not exist for assistant {assistant_id}.", code="document_not_found")
    await _enqueue_term_stats(rt, assistant_id)
    await _queue_golden_run(rt, assistant_id)
    log.info("documents.deleted", assistant=assistant_id, document=document_id)


async def reindex_document(rt: Runtime, assistant_id: int, document_id: int) -> Document:
    await get_document(rt, assistant_id, document_id)
    async with transaction(rt.db):
        await store.mark_pending(rt.db, document_id)
        await _enqueue_index(rt, document_id)
    return await get_document(rt, assistant_id, document_id)


async def reindex_assistant(rt: Runtime, assistant_id: int) -> list[int]:
    """Queue a re-index of every document (after a change of embedding model, say)."""
    await get_assistant(rt.db, assistant_id)
    ids = await store.list_document_ids(rt.db, assistant_id)
    async with transaction(rt.db):
        for document_id in ids:
            await store.mark_pending(rt.db, document_id)
            await _enqueue_index(rt, document_id)
    return ids


async def index_document(rt: Runtime, document_id: int, on_progress=None) -> int | None:
    """Load, chunk, embed and store one document; its chunks are swapped in one transaction.
    Returns the chunk count, or None when the document was deleted meanwhile.
    Raises `DocumentError` for a file that cannot be read, or costs more to read than the settings allow."""
    document = await store.find_document_to_index(rt.db, document_id)
    if document is None:
        return None
    await store.mark_indexing(rt.db, document_id, 0.0)
    content = document.content
    loaded = await read_document(rt, document.filename, content, max(rt.settings.max_upload_bytes, len(content)))
    return await _store_blocks(rt, document.id, document.assistant_id, document.language, loaded.blocks, on_progress)


@dataclass(frozen=True)
class EmbeddedChunks:
    """A document's chunk vectors and its chunks' sentence vectors (`rag.sentences`), by one model."""

    vectors: np.ndarray
    sentences: list[SentenceVectors]


async def embed_document(
    embedder: Embedder, chunks: list[Chunk], progress: Callable[[float], Awaitable[None]] | None = None
) -> EmbeddedChunks:
    async def share(start: float, done: float) -> None:
        if progress is not None:
            await progress(start + done / 2)

    vectors = await embed_chunks(chunks, embedder, on_progress=lambda done: share(0, done))
    # Each chunk's sentences with their own vectors, for quoted answers (rag.sentences): embedded now, never at question time.
    sentences = await embed_sentences(
        embedder, [(c.heading, c.text) for c in chunks], batch_size=embedder.batch_size, on_progress=lambda d: share(0.5, d)
    )
    return EmbeddedChunks(vectors, sentences)


async def _store_blocks(
    rt: Runtime,
    document_id: int,
    assistant_id: int,
    language: str,
    blocks: list[Block],
    on_progress=None,
) -> int | None:
    embedder = rt.embedder
    chunks = await chunk_document(
        blocks, embedder, max_tokens=rt.settings.rag_chunk_tokens, overlap=rt.settings.rag_chunk_overlap_tokens
    )
    if not chunks:
        raise EmptyDocument("The document has no text to index.")
    configs = await chunk_configs(chunks, rt.language_detector, text_search_config(language))
    # While the assistant is re-embedded, searches compare the old model's vectors: the document gets those too,
    # so it answers at once, and the new model's wait beside them for the swap.
    searching_with = await chunk_store.search_model(rt.db, assistant_id, embedder.name)
    models = [embedder.name] if searching_with == embedder.name else [embedder.name, searching_with]
    embedded: dict[str, EmbeddedChunks] = {}
    for step, model in enumerate(models):

        async def progress(done: float, step: int = step) -> None:
            fraction = 0.05 + 0.9 * (step + done) / len(models)
            await store.mark_indexing(rt.db, document_id, fraction)
            if on_progress is not None:
                await on_progress(fraction)

        try:
            embedded[model] = await embed_document(rt.embedder_named(model), chunks, progress)
        except (EmbeddingError, LLMUnavailable) as exc:
            if model == embedder.name:
                raise
            # The old model is gone (a server down, a model removed): the document joins searches at the swap.
            log.warning("documents.old_model_unavailable", document=document_id, model=model, error=exc.message)
    try:
        async with transaction(rt.db):
            async with rt.db.connection() as connection:
                await chunk_store.lock_chunk_writes(connection.raw_connection, assistant_id)
            # Asked again under the lock: a swap may have happened while we embedded.
            searching_with = await chunk_store.search_model(rt.db, assistant_id, embedder.name)
            model = searching_with if searching_with in embedded else embedder.name
            following = embedded[embedder.name] if model != embedder.name else None
            await chunk_store.replace_chunks(
                rt.db,
                document_id=document_id,
                assistant_id=assistant_id,
                chunks=_rows(chunks, configs),
                vectors=embedded[model].vectors,
                next_vectors=following.vectors if following is not None else None,
                next_model=embedder.name if following is not None else None,
            )
            for name, stored in embedded.items():
                await store_document_sentences(rt.db, document_id, stored.sentences, name)  # quoted answers
            await store.mark_ready(rt.db, document_id, len(chunks), model)
            await _enqueue_term_stats(rt, assistant_id)
            await _queue_golden_run(rt, assistant_id)
    except asyncpg.ForeignKeyViolationError:
        return None  # deleted while we were embedding
    return len(chunks)


def _rows(chunks: list[Chunk], configs: list[str]) -> list[tuple[int, str, str, int, str]]:
    """What `rag.store.replace_chunks` stores of each chunk."""
    return [(c.position, c.heading, c.text, c.token_count, config) for c, config in zip(chunks, configs, strict=True)]


async def search_assistant(
    rt: Runtime, assistant: Assistant, query: str, *, top_k: int = 8, mode: str = "hybrid"
) -> retrieval.SearchResult:
    """Search with the model whose vectors the assistant's chunks hold: the configured one, or the old one
    while a re-embedding is under way (the question is embedded by the same model as the passages)."""
    model = await chunk_store.search_model(rt.db, assistant.id, rt.embedding_model)
    embedder = None if mode == "lexical" else rt.embedder_named(model)
    return await retrieval.search(
        rt.db,
        embedder,
        assistant.id,
        query,
        top_k=top_k,
        language=text_search_config(assistant.language),
        mode=mode,
        embedding_model=model,
    )


def _reembed_key(assistant_id: int, model: str) -> str:
    return f"{REEMBED_JOB}:{assistant_id}:{model}"


async def start_reembedding(rt: Runtime, assistant_id: int | None = None) -> list[int]:
    """Queue a re-embedding with the configured model for every assistant (or this one) whose documents hold
    another model's vectors; at start-up and on demand. Returns the assistants queued (a queued job is kept)."""
    model = rt.embedding_model
    stale = await chunk_store.assistants_to_reembed(rt.db, model)
    queued = [a for a in stale if assistant_id is None or a == assistant_id]
    for each in queued:
        await enqueue_job(
            rt.db,
            REEMBED_JOB,
            {"assistant_id": each, "model": model},
            dedup_key=_reembed_key(each, model),
            serial_key=f"{REEMBED_JOB}:{each}",
            max_attempts=rt.settings.job_max_attempts,
        )
    if queued:
        log.info("reembedding.queued", assistants=queued, model=model)
    return queued


async def reembed(rt: Runtime, assistant_id: int) -> Reembedding | None:
    """`POST /api/assistants/{id}/reembed`: start (or restart, after a failure) the assistant's re-embedding."""
    await get_assistant(rt.db, assistant_id)
    await start_reembedding(rt, assistant_id)
    return await reembedding_of(rt, assistant_id)


async def reembedding_of(rt: Runtime, assistant_id: int) -> Reembedding | None:
    """How far the assistant's re-embedding with the configured model is; None when none is needed."""
    model = rt.embedding_model
    searching_with = await chunk_store.search_model(rt.db, assistant_id, model)
    done, total = await chunk_store.reembed_progress(rt.db, assistant_id, model)
    if searching_with == model and not total:
        return None
    job = await store.latest_job(rt.db, REEMBED_JOB, _reembed_key(assistant_id, model))
    # A job done while vectors are still missing (documents changed since): none is running now.
    status = "not_started" if job is None or job.status == "done" else "queued" if job.status == "cancelled" else job.status
    return Reembedding(
        model=model,
        searching_with=searching_with,
        done=done,
        total=total,
        percent=round(100 * done / total) if total else 100,
        status=status,
        error=job.last_error if job is not None and job.status == "failed" else None,
    )


async def reembed_assistant(rt: Runtime, assistant_id: int, on_progress: Callable[[float], Awaitable[None]]) -> int:
    """Give every chunk (and its sentences) of the assistant the configured model's vector beside its current one,
    a round at a time with progress; then swap them all in at once. Searches meanwhile compare the old model's
    vectors only. Returns how many documents were switched to the new model."""
    assistant = await get_assistant(rt.db, assistant_id)
    embedder = rt.embedder
    fallback = text_search_config(assistant.language)
    while True:
        rows = await chunk_store.chunks_to_reembed(
            rt.db, assistant_id, embedder.name, embedder.batch_size * REEMBED_ROUND_BATCHES
        )
        if not rows:
            switched = await chunk_store.swap_embeddings(rt.db, assistant_id, embedder.name)
            if switched is not None:
                break
            continue  # a document indexed meanwhile without the new vectors: embed its chunks too
        texts = [Chunk(0, row["heading"], row["text"], 0).embedding_text for row in rows]  # what indexing embedded
        vectors = await embed_texts(texts, embedder)
        sentences = await embed_sentences(
            embedder, [(row["heading"], row["text"]) for row in rows], batch_size=embedder.batch_size
        )
        configs = await asyncio.to_thread(text_search_configs, texts, rt.language_detector, fallback)
        ids = [row["chunk_id"] for row in rows]
        async with transaction(rt.db):
            await chunk_store.store_next_vectors(rt.db, list(zip(ids, vectors, configs, strict=True)), embedder.name)
            await chunk_store.replace_sentences(rt.db, list(zip(ids, sentences, strict=True)), embedder.name)
        done, total = await chunk_store.reembed_progress(rt.db, assistant_id, embedder.name)
        await on_progress(done / total if total else 1.0)
    await _enqueue_term_stats(rt, assistant_id)  # the chunks' languages were read again
    await _queue_golden_run(rt, assistant_id)
    log.info("reembedding.swapped", assistant=assistant_id, model=embedder.name, documents=switched)
    return switched


@contextmanager
def _embedder_errors_as_unavailable() -> Iterator[None]:
    """A remote (Ollama) embedder that is down is the client's 503, not our 500."""
    try:
        yield
    except (LLMUnavailable, EmbeddingError) as exc:
        raise Unavailable(exc.message, code="embeddings_unavailable") from exc


async def search(rt: Runtime, assistant_id: int, request: SearchRequest) -> SearchResponse:
    assistant = await get_assistant(rt.db, assistant_id)
    with _embedder_errors_as_unavailable():
        found = await search_assistant(rt, assistant, request.query, top_k=request.top_k, mode=request.mode)
    return SearchResponse(
        query=request.query,
        mode=request.mode,
        items=[SearchHit(rank=i, **p.__dict__) for i, p in enumerate(found.passages, start=1)],
        embedding_model=found.embedding_model,
        reindex_needed=found.reindex_needed,
        stale_document_ids=found.stale_document_ids,
        notice=_reindex_notice(len(found.stale_document_ids)),
        timings_ms=found.timings_ms,
    )


async def _insert_document(
    rt: Runtime, assistant_id: int, filename: str, data: bytes, content_type: str
) -> tuple[DocumentRow, bool]:
    """(the new row, False), or (the row this assistant already has with the same bytes, True)."""
    sha = hashlib.sha256(data).hexdigest()
    record = await store.insert_document(
        rt.db, assistant_id=assistant_id, filename=filename, content_type=content_type, content=data, sha256=sha
    )
    if record is None:
        return await store.find_document_by_sha256(rt.db, assistant_id, sha), True
    return record, False


FAQ_SLUG_CHARACTERS = 60


def faq_slug(question: str) -> str:
    """ "what-are-your-opening-hours" for "What are your opening hours?": its words (any script, accents
    dropped) joined by hyphens, cut at a word so the name stays readable."""
    letters = unicodedata.normalize("NFKD", question.casefold())
    letters = unicodedata.normalize("NFC", "".join(c for c in letters if not unicodedata.combining(c)))
    slug = "-".join("".join(c if c.isalnum() else " " for c in letters).split())
    if len(slug) > FAQ_SLUG_CHARACTERS:
        cut = slug[: FAQ_SLUG_CHARACTERS + 1]
        slug = cut.rsplit("-", 1)[0] if "-" in cut else cut[:FAQ_SLUG_CHARACTERS]
    return slug or "entry"


async def _faq_filename(rt: Runtime, assistant_id: int, question: str) -> str:
    """`faq-<question's words>.md`, with `-2`, `-3`... when another FAQ of this assistant has that name."""
    stem = f"faq-{faq_slug(question)}"
    taken = await store.filenames_starting_with(rt.db, assistant_id, stem)
    number = 1
    while (name := f"{stem}.md" if number == 1 else f"{stem}-{number}.md") in taken:
        number += 1
    return name


async def add_faq(rt: Runtime, assistant_id: int, entry: FaqEntry) -> UploadedDocument:
    """A question and its answer as a small Markdown document, indexed before this returns."""
    assistant = await get_assistant(rt.db, assistant_id)
    question = " ".join(entry.question.split())
    text = f"# {question}\n\n{entry.answer.strip()}\n"
    filename = await _faq_filename(rt, assistant.id, question)
    record, duplicate = await _insert_document(rt, assistant.id, filename, text.encode("utf-8"), "text/markdown")
    if not duplicate:
        blocks = [Block(question, 1), *[Block(p.strip()) for p in entry.answer.split("\n\n") if p.strip()]]
        try:
            with _embedder_errors_as_unavailable():
                await _store_blocks(rt, record.id, assistant.id, assistant.language, blocks)
        except Unavailable:
            await store.delete_document(rt.db, assistant.id, record.id)  # nothing half-written
            raise
        record = await store.find_document(rt.db, assistant.id, record.id)
    message = "This FAQ entry already exists." if duplicate else "Indexed."
    return _uploaded(record, _model_name(rt), duplicate=duplicate, message=message)


class IngestedIds(list[int]):
    """The document ids `ingest_texts` returns, in input order, plus `skipped`: the id of each text
    that could not be read → why (its row is kept with status 'failed' and that reason)."""

    def __init__(self, ids: list[int], skipped: dict[int, str]) -> None:
        super().__init__(ids)
        self.skipped = skipped


async def ingest_texts(rt: Runtime, assistant_id: int, texts: list[tuple[str, str]], *, sentences: bool = True) -> IngestedIds:
    """Index (filename, text) pairs for an assistant right away, through the real load/chunk/embed/store
    path but without the job queue (benchmarks, scripts); the chunks of all texts are embedded
    together in large batches. A text that cannot be read is skipped (logged, marked failed,
    reported in `skipped`) without stopping the others. Returns the document ids, in order.
    `sentences=False` leaves out the sentence vectors of quoted answers (retrieval benchmarks need none)."""
    assistant = await get_assistant(rt.db, assistant_id)
    embedder = rt.embedder
    ids: list[int] = []
    skipped: dict[int, str] = {}
    pending: list[tuple[int, list]] = []
    for filename, text in texts:
        data = text.encode("utf-8")
        record, duplicate = await _insert_document(rt, assistant.id, filename, data, "text/plain")
        ids.append(record.id)
        if duplicate:
            if record.status == "failed":
                skipped[record.id] = record.error or "failed"
            continue
        try:
            loaded = await asyncio.to_thread(load_document, filename, data, max_bytes=len(data) + 1)
        except DocumentError as exc:
            log.warning("documents.ingest_skipped", assistant=assistant.id, document=record.id, reason=exc.code)
            await store.mark_failed(rt.db, record.id, exc.message)
            skipped[record.id] = exc.message
            continue
        chunks = await chunk_document(
            loaded.blocks, embedder, max_tokens=rt.settings.rag_chunk_tokens, overlap=rt.settings.rag_chunk_overlap_tokens
        )
        pending.append((record.id, chunks))
    every = [c for _, chunks in pending for c in chunks]
    configs = await chunk_configs(every, rt.language_detector, text_search_config(assistant.language))
    vectors = await embed_chunks(every, embedder)
    if sentences:  # quoted answers
        sentence_vectors = await embed_sentences(embedder, [(c.heading, c.text) for c in every], batch_size=embedder.batch_size)
    offset = 0
    for document_id, chunks in pending:
        part = slice(offset, offset + len(chunks))
        async with transaction(rt.db):
            await chunk_store.replace_chunks(
                rt.db,
                document_id=document_id,
                assistant_id=assistant.id,
                chunks=_rows(chunks, configs[part]),
                vectors=vectors[part],
            )
            if sentences:
                await store_document_sentences(rt.db, document_id, sentence_vectors[part], embedder.name)
            await store.mark_ready(rt.db, document_id, len(chunks), embedder.name)
        offset += len(chunks)
    if pending:  # no job queue here: refresh the word statistics once for the whole batch
        await chunk_store.refresh_term_stats(rt.db, assistant.id)
    return IngestedIds(ids, skipped)
