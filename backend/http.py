"""What every route handler shares: body/query parsing, auth checks, JSON responses."""

from __future__ import annotations

import json
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Annotated, Any, TypeVar

from pydantic import BaseModel, ConfigDict, Field, ValidationError
from sanic import Request
from sanic.response import HTTPResponse
from sanic.response import json as json_response

from backend.errors import Invalid, TooLarge, Unavailable

M = TypeVar("M", bound=BaseModel)

MAX_ID = 2**63 - 1  # PostgreSQL bigint
# An id of ours in a body or query: anything else is a 400, never a database error.
DbId = Annotated[int, Field(ge=1, le=MAX_ID)]


class Page(BaseModel):
    model_config = ConfigDict(extra="forbid")
    limit: int = Field(default=50, ge=1, le=500)
    offset: int = Field(default=0, ge=0, le=10**9)


def _find_nul(value: Any, path: str = "") -> str | None:
    """Where a NUL character hides in decoded JSON (PostgreSQL text cannot hold one)."""
    if isinstance(value, str):
        return path or "body" if "\x00" in value else None
    if isinstance(value, dict):
        items = value.items()
    elif isinstance(value, list):
        items = enumerate(value)
    else:
        return None
    for key, item in items:
        if isinstance(key, str) and "\x00" in key:
            return f"{path}.{key}".lstrip(".")
        found = _find_nul(item, f"{path}.{key}".lstrip("."))
        if found:
            return found
    return None


def _refuse_nul(data: Any) -> None:
    field = _find_nul(data)
    if field is not None:
        raise Invalid(
            "Text may not contain NUL characters.",
            details=[{"field": field, "message": "contains a NUL (\\u0000) character"}],
        )


def _validation_details(exc: ValidationError) -> list[dict[str, Any]]:
    return [
        {"field": ".".join(str(part) for part in err["loc"]) or "body", "message": err["msg"]}
        for err in exc.errors(include_url=False, include_input=False)
    ]


def request_id(request: Request) -> str:
    """This request's id as text, for logs, jobs and the response (Sanic's `request.id`, from the
    REQUEST_ID_HEADER or made up; a caller's is cut to 64 characters)."""
    return str(request.id)[:64]


def parse_body(request: Request, model: type[M]) -> M:
    """Validate a JSON body; malformed JSON and wrong fields are 400 with field details."""
    raw = request.body or b""
    try:
        data = json.loads(raw) if raw.strip() else None
    except (ValueError, UnicodeDecodeError) as exc:
        raise Invalid("The request body is not valid JSON.", code="malformed_json") from exc
    except RecursionError as exc:  # `[[[[...` a few kilobytes deep
        raise Invalid("The request body is nested too deeply.", code="malformed_json") from exc
    if data is None:
        raise Invalid("A JSON object is required in the request body.", code="missing_body")
    _refuse_nul(data)
    try:
        return model.model_validate(data)
    except ValidationError as exc:
        raise Invalid("The request body has invalid fields.", details=_validation_details(exc)) from exc


class BodyBudget:
    """Bytes of request bodies being read at once, across one process: beyond the budget a caller gets 503 at
    once (its gateway retries), so parallel large bodies cannot take the memory of every customer's replies."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.in_flight = 0

    @contextmanager
    def reserve(self, size: int) -> Iterator[None]:
        if self.in_flight + size > self.limit:
            raise Unavailable("Too many large requests are being read right now; try again shortly.", code="busy")
        self.in_flight += size  # the event loop's thread alone changes it: no lock needed
        try:
            yield
        finally:
            self.in_flight -= size


async def read_body(request: Request, limit: int, setting: str) -> bytes:
    """The body of a streaming route (`stream=True`), read only now that the caller is known and
    never beyond `limit` bytes (Sanic lifts its own limit for such routes). A body that declares a
    larger length is refused before any of it is read (a client sending `Expect: 100-continue`,
    as curl does for large bodies, then sends none of it)."""
    too_large = TooLarge(f"The request body is larger than {limit // (1024 * 1024) or 1} MB ({setting}).")
    declared = request.headers.get("content-length", "")
    if declared.isdigit() and int(declared) > limit:
        raise too_large
    chunks, size = [], 0
    while (chunk := await request.stream.read()) is not None:
        size += len(chunk)
        if size > limit:
            raise too_large
        chunks.append(chunk)
    request.body = b"".join(chunks)
    return request.body


def parse_query(request: Request, model: type[M]) -> M:
    values = {key: request.args.get(key) for key in request.args}
    _refuse_nul(values)
    try:
        return model.model_validate(values)
    except ValidationError as exc:
        raise Invalid("The query string has invalid parameters.", details=_validation_details(exc)) from exc


def to_json(value: Any) -> Any:
    if isinstance(value, BaseModel):
        return value.model_dump(mode="json")
    if isinstance(value, (list, tuple)):
        return [to_json(item) for item in value]
    if isinstance(value, dict):
        return {key: to_json(item) for key, item in value.items()}
    return value


def ok(value: Any, status: int = 200) -> HTTPResponse:
    return json_response(to_json(value), status=status, default=str)


def page_of(items: list[Any], total: int, page: Page) -> dict[str, Any]:
    return {"items": to_json(items), "total": total, "limit": page.limit, "offset": page.offset}
