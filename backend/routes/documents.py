"""Knowledge documents of an assistant: upload, list, read, delete, re-index; FAQ entries."""

from __future__ import annotations

from sanic import Blueprint, Request
from sanic.response import empty

from backend.http import Page, ok, parse_body, parse_query, read_body
from backend.openapi import doc
from backend.routes.deps import runtime_of, settings_of
from backend.services import knowledge as service
from backend.services.knowledge import (
    Document,
    DocumentPage,
    FaqEntry,
    ReembedResult,
    ReindexResult,
    UploadedDocument,
    UploadResult,
)

bp = Blueprint("documents", url_prefix="/api/assistants/<assistant_id:int>")

# Room for multipart headers and boundaries around files of up to MAX_UPLOAD_MB (each file is checked alone).
MULTIPART_SLACK = 1024 * 1024
UPLOAD_SCHEMA = {
    "type": "object",
    "properties": {
        "files": {"type": "array", "items": {"type": "string", "format": "binary"}},
        "file": {"type": "string", "format": "binary", "description": "One file, as `curl -F file=@x.pdf` sends it"},
    },
}


@bp.post("/documents", stream=True)
@doc("Upload documents (multipart field `files`, one or several, or `file`); each is indexed in the background",
     multipart=UPLOAD_SCHEMA, response=UploadResult, status=201)  # fmt: skip
async def upload_documents(request: Request, assistant_id: int):
    # Streamed: the operator's token is checked before a byte of the upload is held.
    await read_body(request, settings_of(request).max_upload_bytes + MULTIPART_SLACK, "MAX_UPLOAD_MB")
    sent = [f for field in ("files", "file") for f in (request.files.getlist(field) or [] if request.files else [])]
    files = [(f.name, f.body) for f in sent]
    items = await service.upload_documents(runtime_of(request), assistant_id, files)
    status = 201 if any(not item.duplicate for item in items) else 200
    return ok({"items": [item.model_dump(mode="json") for item in items]}, status=status)


@bp.get("/documents")
@doc("List documents with their indexing status", query=Page, response=DocumentPage)
async def list_documents(request: Request, assistant_id: int):
    page = parse_query(request, Page)
    return ok(await service.list_documents(runtime_of(request), assistant_id, page))


@bp.get("/documents/<document_id:int>")
@doc("Read a document's status", response=Document)
async def get_document(request: Request, assistant_id: int, document_id: int):
    return ok(await service.get_document(runtime_of(request), assistant_id, document_id))


@bp.delete("/documents/<document_id:int>")
@doc("Delete a document and its chunks", status=204, admin=True)
async def delete_document(request: Request, assistant_id: int, document_id: int):
    await service.delete_document(runtime_of(request), assistant_id, document_id)
    return empty()


@bp.post("/documents/<document_id:int>/reindex")
@doc("Index a document again", response=Document, status=202)
async def reindex_document(request: Request, assistant_id: int, document_id: int):
    return ok(await service.reindex_document(runtime_of(request), assistant_id, document_id), status=202)


@bp.post("/reindex")
@doc("Index all documents of an assistant again (e.g. after changing the embedding model)",
     response=ReindexResult, status=202, admin=True)  # fmt: skip
async def reindex_assistant(request: Request, assistant_id: int):
    return ok({"queued": await service.reindex_assistant(runtime_of(request), assistant_id)}, status=202)


@bp.post("/reembed")
@doc("Re-embed the documents with the configured embedding model in the background (done at start-up after a change "
     "of EMBEDDING_MODEL; this restarts one that failed). Searches use the old vectors until all new ones are ready",
     response=ReembedResult, status=202, admin=True)  # fmt: skip
async def reembed(request: Request, assistant_id: int):
    return ok({"reembedding": await service.reembed(runtime_of(request), assistant_id)}, status=202)


@bp.post("/faq")
@doc("Add a question and its answer as a small document, indexed at once", body=FaqEntry, response=UploadedDocument, status=201)
async def add_faq(request: Request, assistant_id: int):
    entry = parse_body(request, FaqEntry)
    document = await service.add_faq(runtime_of(request), assistant_id, entry)
    return ok(document, status=200 if document.duplicate else 201)
