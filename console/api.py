"""A typed HTTP client for the backend API: the console's only way to the data.

Every failure becomes an `ApiError` carrying a message an operator can act on: the backend being
down, a session that expired, a feature this backend does not have yet, or the backend's own
`{"error": {"code", "message", "details"}}`.
"""

from __future__ import annotations

import base64
from datetime import datetime
from typing import Any

import httpx
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from console.config import GENERATE_TIMEOUT_SECONDS, REQUEST_TIMEOUT_SECONDS


class ApiError(Exception):
    """A call that did not work, with a message fit for the operator."""

    def __init__(self, message: str, *, status: int = 0, code: str = "error", details: Any = None) -> None:
        super().__init__(message)
        self.message = message
        self.status = status
        self.code = code
        self.details = details

    def field_problems(self) -> list[str]:
        """`field: message` lines from a 400's details, for forms."""
        if not isinstance(self.details, list):
            return []
        lines = []
        for item in self.details:
            if isinstance(item, dict) and item.get("message"):
                field = item.get("field") or ".".join(str(p) for p in item.get("loc", []))
                lines.append(f"{field}: {item['message']}" if field else str(item["message"]))
        return lines


class BackendUnreachable(ApiError):
    """Nothing answered at BACKEND_URL (down, restarting, wrong address)."""


class SessionExpired(ApiError):
    """The token is missing, expired or no longer valid: log in again."""


class FeatureMissing(ApiError):
    """The backend has no such route (an older backend, or one still being built)."""


class _Model(BaseModel):
    # The backend may add fields; the console keeps working and ignores what it does not show.
    model_config = ConfigDict(extra="allow", populate_by_name=True)


class SignIn(_Model):
    token: str
    expires_in: int | None = None  # seconds; an older backend does not say


class Operator(_Model):
    id: int
    email: str
    role: str = "operator"
    created_at: datetime | None = None


class Assistant(_Model):
    id: int
    name: str
    instructions: str = ""
    engine: str = "default"
    model: str = ""
    temperature: float = 0.2
    fallback_message: str = ""
    language: str = "english"
    languages: list[str] = Field(default_factory=list)  # as set; empty = automatic
    served_languages: list[str] = Field(default_factory=lambda: ["en"])  # in use now, main first
    document_languages: list[str] = Field(default_factory=list)
    policies: dict[str, Any] = Field(default_factory=dict)
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Document(_Model):
    id: int
    filename: str = ""
    content_type: str | None = None
    size_bytes: int | None = None
    status: str = "pending"
    percent: int = 0
    error: str | None = None
    chunk_count: int = 0
    reindex_needed: bool = False
    duplicate: bool = False
    message: str | None = None
    created_at: datetime | None = None
    updated_at: datetime | None = None


class Reembedding(_Model):
    model: str = ""
    searching_with: str = ""
    done: int = 0
    total: int = 0
    percent: int = 0
    status: str = "queued"
    error: str | None = None


class DocumentList(_Model):
    items: list[Document] = Field(default_factory=list)
    total: int = 0
    reindex_needed: bool = False
    notice: str | None = None
    reembedding: Reembedding | None = None


class Passage(_Model):
    text: str = ""
    score: float | None = None
    dense_score: float | None = None
    lexical_score: float | None = None
    document_id: int | None = None
    filename: str | None = None
    heading: str | None = None
    position: int | None = None
    rank: int | None = None


class SearchResult(_Model):
    items: list[Passage] = Field(default_factory=list)
    notice: str | None = None
    timings_ms: dict[str, float] = Field(default_factory=dict)


class Answer(_Model):
    answer: str = ""
    sources: list[dict[str, Any]] = Field(default_factory=list)
    degraded: bool = False
    degraded_reason: str | None = None
    used_fallback: bool = False
    ungrounded: bool = False
    engine: str | None = None
    model: str | None = None
    top_score: float | None = None
    timings_ms: dict[str, float] = Field(default_factory=dict)
    trace: dict[str, Any] = Field(default_factory=dict)


class ModelList(_Model):
    reachable: bool = False
    reason: str | None = None
    message: str | None = None
    host: str = ""
    models: list[dict[str, Any]] = Field(default_factory=list)
    configured_model: str = ""
    missing_models: list[str] = Field(default_factory=list)

    @property
    def names(self) -> list[str]:
        return [str(m.get("name") or m.get("model")) for m in self.models if m.get("name") or m.get("model")]


class PullStatus(_Model):
    job_id: int
    model: str
    status: str = "queued"
    percent: int = 0
    error: str | None = None


class Channel(_Model):
    id: int
    assistant_id: int
    provider: str = "sandbox"
    status: str = "pending_qr"
    detail: str | None = None
    qr: str | None = None
    phone_number: str | None = None
    phone_number_id: str | None = None
    webhook_url: str | None = None
    last_error: str | None = None
    connected_at: datetime | None = None
    updated_at: datetime | None = None


class LastMessage(_Model):
    text: str = ""
    direction: str = "in"
    author: str = "customer"
    status: str | None = None
    created_at: datetime | None = None


class Contact(_Model):
    id: int
    channel_id: int | None = None
    assistant_id: int | None = None
    chat_id: str = ""
    phone_number: str | None = None
    name: str | None = None
    owner: str = "bot"
    paused_until: datetime | None = None
    paused_by: str | None = None
    opted_out: bool = False
    last_message_at: datetime | None = None
    last_message: LastMessage | None = None
    language: str | None = None
    language_name: str | None = None
    language_source: str | None = None  # detected | operator

    @property
    def number(self) -> str:
        return self.phone_number or self.chat_id.split("@")[0] or f"contact {self.id}"

    @property
    def label(self) -> str:
        return f"{self.name} ({self.number})" if self.name else self.number


class LanguageDefaults(_Model):
    code: str
    name: str = ""
    native: str = ""
    texts: dict[str, str] = Field(default_factory=dict)  # shipped: key → text
    words: dict[str, list[str]] = Field(default_factory=dict)  # shipped: handoff/opt_out/opt_in → words


class LanguageCatalog(_Model):
    items: list[LanguageDefaults] = Field(default_factory=list)
    text_keys: list[str] = Field(default_factory=list)

    def of(self, code: str) -> LanguageDefaults | None:
        return next((item for item in self.items if item.code == code), None)


class MessageMedia(_Model):
    kind: str
    mimetype: str | None = None
    transcript_model: str | None = None
    audio_seconds: float | None = None
    transcribe_seconds: float | None = None
    error: str | None = None
    url: str = ""


class Message(_Model):
    id: int
    direction: str = "in"
    author: str = "customer"
    text: str = ""
    status: str | None = None
    reason: str | None = None
    error: str | None = None
    sources: list[dict[str, Any]] | None = None
    trace: dict[str, Any] | None = None
    degraded: bool = False
    latency_ms: int | None = None
    created_at: datetime | None = None
    sent_at: datetime | None = None
    provider_message_id: str | None = None
    media: MessageMedia | None = None
    reactions: list[dict[str, Any]] = Field(default_factory=list)  # [{emoji, sentiment}]


class Thread(_Model):
    contact: Contact
    items: list[Message] = Field(default_factory=list)
    total: int = 0


class Gap(_Model):
    question: str
    count: int = 1
    examples: list[str] = Field(default_factory=list)
    message_ids: list[int] = Field(default_factory=list)
    fallback_count: int = 0
    best_score: float | None = None
    last_asked_at: datetime | None = None


class GoldenResult(_Model):
    """One golden question's answer in a run, and its verdict."""

    run_id: int
    question_id: int | None = None
    question: str = ""
    must_contain: list[str] = Field(default_factory=list)
    must_not_contain: list[str] = Field(default_factory=list)
    passed: bool = False
    missing: list[str] = Field(default_factory=list)
    forbidden: list[str] = Field(default_factory=list)
    regression: bool = False
    answer: str = ""
    sources: list[dict[str, Any]] = Field(default_factory=list)
    engine: str | None = None
    model: str | None = None
    degraded_reason: str | None = None
    timings_ms: dict[str, float] = Field(default_factory=dict)


class GoldenQuestion(_Model):
    id: int
    question: str = ""
    must_contain: list[str] = Field(default_factory=list)
    must_not_contain: list[str] = Field(default_factory=list)
    reply_id: int | None = None
    last_result: GoldenResult | None = None


class GoldenRun(_Model):
    id: int
    assistant_id: int = 0
    reasons: list[str] = Field(default_factory=list)
    status: str = "queued"
    error: str | None = None
    total: int = 0
    answered: int = 0
    passed: int = 0
    failed: int = 0
    regressions: int = 0
    created_at: datetime | None = None
    finished_at: datetime | None = None
    duration_ms: float | None = None
    results: list[GoldenResult] = Field(default_factory=list)  # only on one run read by its id


class Regression(_Model):
    assistant_id: int
    assistant_name: str = ""
    run: GoldenRun
    questions: list[str] = Field(default_factory=list)


class Stats(_Model):
    days: int = 7
    per_day: list[dict[str, Any]] = Field(default_factory=list)
    inbound: int = 0
    outbound: int = 0
    failed: int = 0
    unanswered: int = 0
    degraded: int = 0
    median_latency_ms: float | None = None
    waiting_for_person: int = 0
    waiting_by_reason: dict[str, int] = Field(default_factory=dict)
    longest_wait_seconds: int | None = None


class WaitingContact(_Model):
    """A customer waiting for a person, and why (`handoff`, `failed_send` or `fallback`)."""

    contact: Contact
    reason: str = "handoff"
    reasons: list[str] = Field(default_factory=list)
    waiting_since: datetime | None = None
    waited_seconds: int = 0


class Inbox(_Model):
    items: list[WaitingContact] = Field(default_factory=list)
    total: int = 0
    by_reason: dict[str, int] = Field(default_factory=dict)


def _items(payload: Any, *keys: str) -> list[Any]:
    """A list from either a bare JSON list or an object holding it under one of `keys`."""
    if isinstance(payload, list):
        return payload
    if isinstance(payload, dict):
        for key in (*keys, "items"):
            if isinstance(payload.get(key), list):
                return payload[key]
    return []


def forwarded(client_address: str | None, secret: str | None) -> dict[str, str]:
    """The RFC 7239 `Forwarded` header naming the operator's browser, proven with the secret shared with the
    backend (Sanic's FORWARDED_SECRET); none when either is missing."""
    if not client_address or not secret:
        return {}
    node = f"[{client_address}]" if ":" in client_address else client_address  # IPv6 goes in brackets
    return {"Forwarded": f'for="{node}";secret="{secret}"'}


def _error_of(response: httpx.Response) -> tuple[str, str, Any]:
    try:
        error = response.json().get("error") or {}
    except (ValueError, AttributeError):
        error = {}
    if not isinstance(error, dict):
        error = {}
    message = error.get("message") or f"The backend answered {response.status_code} {response.reason_phrase}."
    return str(error.get("code") or "error"), str(message), error.get("details")


class Api:
    """One operator's view of the backend. Cheap to build: one per script run."""

    def __init__(self, base_url: str, token: str | None = None, *, timeout: float = REQUEST_TIMEOUT_SECONDS) -> None:
        self.base_url = base_url.rstrip("/")
        self.token = token
        headers = {"Authorization": f"Bearer {token}"} if token else {}
        self._http = httpx.Client(base_url=self.base_url, headers=headers, timeout=timeout)

    def close(self) -> None:
        self._http.close()

    def __enter__(self) -> Api:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- plumbing ---------------------------------------------------------------------------

    def request(self, method: str, path: str, **kwargs: Any) -> Any:
        try:
            response = self._http.request(method, path, **kwargs)
        except httpx.TimeoutException as exc:
            raise BackendUnreachable(
                f"The backend at {self.base_url} took too long to answer. Try again in a moment.", code="timeout"
            ) from exc
        except httpx.TransportError as exc:
            raise BackendUnreachable(
                f"The backend at {self.base_url} is not reachable. Check that it is running (`python -m backend`)"
                " and that BACKEND_URL points at it.",
                code="backend_down",
            ) from exc
        if response.status_code == 204 or not response.content:
            if response.is_success:
                return None
        if response.is_success:
            try:
                return response.json()
            except ValueError as exc:
                raise ApiError("The backend sent an answer the console cannot read.", status=response.status_code) from exc
        code, message, details = _error_of(response)
        status = response.status_code
        if status == 401 and path != "/api/auth/login":
            if code == "token_revoked":
                ended = "Your session has ended: you logged out, or a password or role was changed. Please log in again."
                raise SessionExpired(ended, status=status, code=code)
            raise SessionExpired("Your session has expired. Please log in again.", status=status, code=code)
        if status in (404, 405) and code in ("not_found", "method_not_allowed") and message.startswith("No route"):
            raise FeatureMissing(
                "This part of the backend is not available yet. Update the backend, then try again.",
                status=status,
                code=code,
            )
        if status == 503 and code == "not_ready":
            message = f"The backend is starting up: {message} Try again in a moment."
        elif status >= 500 and code == "internal":
            message = "The backend hit an unexpected problem. Try again; if it persists, check the backend's logs."
        raise ApiError(message, status=status, code=code, details=details)

    def _parse(self, model: type[BaseModel], value: Any) -> Any:
        try:
            return model.model_validate(value)
        except ValidationError as exc:
            raise ApiError(f"The backend sent an unexpected {model.__name__.lower()}.", code="bad_payload") from exc

    def _parse_list(self, model: type[BaseModel], payload: Any, *keys: str) -> list[Any]:
        return [self._parse(model, item) for item in _items(payload, *keys)]

    # -- auth and health ----------------------------------------------------------------------

    def login(self, email: str, password: str, client_address: str | None = None, forwarded_secret: str | None = None) -> SignIn:
        """A token; with an address and the shared secret, the backend throttles this operator's browser, not the console."""
        body = {"email": email, "password": password}
        headers = forwarded(client_address, forwarded_secret)
        return self._parse(SignIn, self.request("POST", "/api/auth/login", json=body, headers=headers))

    def me(self) -> dict[str, Any]:
        return self.request("GET", "/api/auth/me")

    def sign_out(self) -> None:
        """End every session of this operator, in every browser."""
        self.request("POST", "/api/auth/logout")

    def change_password(
        self, current: str, new: str, client_address: str | None = None, forwarded_secret: str | None = None
    ) -> SignIn:
        """The new password's token (the operator's other sessions end)."""
        body = {"current_password": current, "new_password": new}
        headers = forwarded(client_address, forwarded_secret)  # a wrong current password counts like a failed login
        return self._parse(SignIn, self.request("POST", "/api/auth/password", json=body, headers=headers))

    # -- operators (admins only) ----------------------------------------------------------------

    def operators(self) -> list[Operator]:
        return self._parse_list(Operator, self.request("GET", "/api/operators"))

    def create_operator(self, email: str, password: str, role: str = "operator") -> Operator:
        payload = self.request("POST", "/api/operators", json={"email": email, "password": password, "role": role})
        return self._parse(Operator, payload)

    def update_operator(self, operator_id: int, role: str | None = None, password: str | None = None) -> Operator:
        changes = {key: value for key, value in (("role", role), ("password", password)) if value is not None}
        return self._parse(Operator, self.request("PATCH", f"/api/operators/{operator_id}", json=changes))

    def delete_operator(self, operator_id: int) -> None:
        self.request("DELETE", f"/api/operators/{operator_id}")

    def status(self) -> dict[str, Any]:
        return self.request("GET", "/api/status") or {}

    def stats(self, assistant_id: int | None = None, days: int = 14) -> Stats:
        params: dict[str, Any] = {"days": days}
        if assistant_id:
            params["assistant_id"] = assistant_id
        return self._parse(Stats, self.request("GET", "/api/stats", params=params))

    # -- assistants ---------------------------------------------------------------------------

    def assistants(self) -> list[Assistant]:
        found: list[Assistant] = []
        while True:
            page = self.request("GET", "/api/assistants", params={"limit": 500, "offset": len(found)})
            batch = self._parse_list(Assistant, page)
            found.extend(batch)
            if not batch or len(found) >= int(page.get("total", 0)):
                return found

    def assistant(self, assistant_id: int) -> Assistant:
        return self._parse(Assistant, self.request("GET", f"/api/assistants/{assistant_id}"))

    def create_assistant(self, fields: dict[str, Any]) -> Assistant:
        return self._parse(Assistant, self.request("POST", "/api/assistants", json=fields))

    def update_assistant(self, assistant_id: int, changes: dict[str, Any]) -> Assistant:
        return self._parse(Assistant, self.request("PATCH", f"/api/assistants/{assistant_id}", json=changes))

    def languages(self) -> LanguageCatalog:
        """The languages an assistant can serve, with their shipped texts and command words."""
        return self._parse(LanguageCatalog, self.request("GET", "/api/assistants/languages"))

    def delete_assistant(self, assistant_id: int) -> None:
        self.request("DELETE", f"/api/assistants/{assistant_id}")

    def generate(self, assistant_id: int, question: str) -> Answer:
        path = f"/api/assistants/{assistant_id}/generate"
        payload = self.request("POST", path, json={"question": question}, timeout=GENERATE_TIMEOUT_SECONDS)
        return self._parse(Answer, payload)

    def search(self, assistant_id: int, query: str, top_k: int = 5) -> SearchResult:
        payload = self.request("POST", f"/api/assistants/{assistant_id}/search", json={"query": query, "top_k": top_k})
        return self._parse(SearchResult, payload)

    # -- knowledge ----------------------------------------------------------------------------

    def documents(self, assistant_id: int) -> DocumentList:
        payload = self.request("GET", f"/api/assistants/{assistant_id}/documents", params={"limit": 500})
        return self._parse(DocumentList, payload)

    def upload_documents(self, assistant_id: int, files: list[tuple[str, bytes, str]]) -> list[Document]:
        parts = [("files", (name, content, mime or "application/octet-stream")) for name, content, mime in files]
        payload = self.request("POST", f"/api/assistants/{assistant_id}/documents", files=parts)
        return self._parse_list(Document, payload)

    def delete_document(self, assistant_id: int, document_id: int) -> None:
        self.request("DELETE", f"/api/assistants/{assistant_id}/documents/{document_id}")

    def reembed(self, assistant_id: int) -> Reembedding | None:
        payload = self.request("POST", f"/api/assistants/{assistant_id}/reembed", json={})
        return self._parse(Reembedding, payload["reembedding"]) if payload.get("reembedding") else None

    def reindex_document(self, assistant_id: int, document_id: int) -> Document:
        payload = self.request("POST", f"/api/assistants/{assistant_id}/documents/{document_id}/reindex", json={})
        return self._parse(Document, payload)

    def gaps(self, assistant_id: int) -> list[Gap]:
        return self._parse_list(Gap, self.request("GET", f"/api/assistants/{assistant_id}/gaps"))

    def add_faq(self, assistant_id: int, question: str, answer: str) -> Document:
        payload = self.request("POST", f"/api/assistants/{assistant_id}/faq", json={"question": question, "answer": answer})
        return self._parse(Document, payload)

    def answer_gap(self, assistant_id: int, gap: Gap, question: str, answer: str) -> Document:
        """Save the answer as an FAQ entry and mark the gap's questions answered."""
        body = {"question": question, "answer": answer, "message_ids": gap.message_ids}
        return self._parse(Document, self.request("POST", f"/api/assistants/{assistant_id}/gaps/answer", json=body))

    # -- golden questions ---------------------------------------------------------------------

    def golden_questions(self, assistant_id: int) -> list[GoldenQuestion]:
        payload = self.request("GET", f"/api/assistants/{assistant_id}/golden", params={"limit": 500})
        return self._parse_list(GoldenQuestion, payload)

    def add_golden(self, assistant_id: int, fields: dict[str, Any]) -> GoldenQuestion:
        """`fields`: question, must_contain, must_not_contain; or reply_id and verdict (right/wrong) to save from a thread."""
        return self._parse(GoldenQuestion, self.request("POST", f"/api/assistants/{assistant_id}/golden", json=fields))

    def update_golden(self, assistant_id: int, question_id: int, changes: dict[str, Any]) -> GoldenQuestion:
        path = f"/api/assistants/{assistant_id}/golden/{question_id}"
        return self._parse(GoldenQuestion, self.request("PATCH", path, json=changes))

    def delete_golden(self, assistant_id: int, question_id: int) -> None:
        self.request("DELETE", f"/api/assistants/{assistant_id}/golden/{question_id}")

    def run_golden(self, assistant_id: int) -> GoldenRun:
        return self._parse(GoldenRun, self.request("POST", f"/api/assistants/{assistant_id}/golden/run", json={}))

    def golden_runs(self, assistant_id: int, limit: int = 50) -> list[GoldenRun]:
        payload = self.request("GET", f"/api/assistants/{assistant_id}/golden/runs", params={"limit": limit})
        return self._parse_list(GoldenRun, payload)

    def golden_run(self, assistant_id: int, run_id: int) -> GoldenRun:
        return self._parse(GoldenRun, self.request("GET", f"/api/assistants/{assistant_id}/golden/runs/{run_id}"))

    def golden_regressions(self) -> list[Regression]:
        return self._parse_list(Regression, self.request("GET", "/api/golden/regressions"))

    # -- models -------------------------------------------------------------------------------

    def models(self) -> ModelList:
        return self._parse(ModelList, self.request("GET", "/api/models"))

    def pull_model(self, name: str) -> PullStatus:
        return self._parse(PullStatus, self.request("POST", "/api/models/pull", json={"model": name}))

    def pull_status(self, job_id: int) -> PullStatus:
        return self._parse(PullStatus, self.request("GET", f"/api/models/pull/{job_id}"))

    # -- WhatsApp -----------------------------------------------------------------------------

    def channels(self, assistant_id: int | None = None) -> list[Channel]:
        params: dict[str, Any] = {"limit": 500}
        if assistant_id:
            params["assistant_id"] = assistant_id
        return self._parse_list(Channel, self.request("GET", "/api/channels", params=params))

    def channel(self, channel_id: int) -> Channel:
        return self._parse(Channel, self.request("GET", f"/api/channels/{channel_id}"))

    def connect(self, assistant_id: int, provider: str | None = None, config: dict[str, str] | None = None) -> Channel:
        body: dict[str, Any] = {"assistant_id": assistant_id}
        if provider:
            body["provider"] = provider
        if config:
            body["config"] = config
        return self._parse(Channel, self.request("POST", "/api/channels", json=body))

    def pairing_code(self, channel_id: int, phone_number: str) -> str:
        answer = self.request("POST", f"/api/channels/{channel_id}/pairing-code", json={"phone_number": phone_number})
        return str((answer or {}).get("code") or "")

    def file(self, path: str) -> bytes:
        """A stored file (a message's voice note or image), as bytes."""
        try:
            response = self._http.get(path)
        except httpx.HTTPError as exc:
            raise BackendUnreachable(f"The backend at {self.base_url} is not reachable.", code="backend_down") from exc
        if not response.is_success:
            code, message, _ = _error_of(response)
            raise ApiError(message, status=response.status_code, code=code)
        return response.content

    def reconnect(self, channel_id: int) -> Channel:
        return self._parse(Channel, self.request("POST", f"/api/channels/{channel_id}/reconnect", json={}))

    def logout(self, channel_id: int) -> Channel:
        return self._parse(Channel, self.request("POST", f"/api/channels/{channel_id}/logout", json={}))

    def delete_channel(self, channel_id: int) -> None:
        self.request("DELETE", f"/api/channels/{channel_id}")

    def sandbox_scan(self, channel_id: int, phone_number: str | None = None) -> Channel:
        body = {"phone_number": phone_number} if phone_number else {}
        return self._parse(Channel, self.request("POST", f"/api/channels/{channel_id}/sandbox/scan", json=body))

    def sandbox_message(
        self, channel_id: int, sender: str, text: str, media: tuple[bytes, str, str | None] | None = None
    ) -> dict[str, Any]:
        """A customer's message; `media`: (bytes, mimetype, filename) sent with it."""
        body: dict[str, Any] = {"from": sender, "text": text}
        if media is not None:
            data, mimetype, filename = media
            body |= {"media_base64": base64.b64encode(data).decode(), "mimetype": mimetype, "filename": filename}
        return self.request("POST", f"/api/channels/{channel_id}/sandbox/messages", json=body)

    def sandbox_reaction(self, channel_id: int, sender: str, message_id: str, emoji: str) -> dict[str, Any]:
        body = {"from": sender, "message_id": message_id, "emoji": emoji}
        return self.request("POST", f"/api/channels/{channel_id}/sandbox/reactions", json=body)

    # -- conversations ------------------------------------------------------------------------

    def contacts(
        self,
        assistant_id: int | None = None,
        q: str | None = None,
        status: str | None = None,
        channel_id: int | None = None,
        limit: int = 200,
    ) -> list[Contact]:
        params: dict[str, Any] = {"limit": limit}
        for key, value in (("assistant_id", assistant_id), ("channel_id", channel_id), ("q", q), ("status", status)):
            if value:
                params[key] = value
        return self._parse_list(Contact, self.request("GET", "/api/contacts", params=params))

    def thread(self, contact_id: int, limit: int = 500) -> Thread:
        return self._parse(Thread, self.request("GET", f"/api/contacts/{contact_id}/messages", params={"limit": limit}))

    def pause(self, contact_id: int) -> Contact:
        return self._parse(Contact, self.request("POST", f"/api/contacts/{contact_id}/pause", json={}))

    def resume(self, contact_id: int) -> Contact:
        return self._parse(Contact, self.request("POST", f"/api/contacts/{contact_id}/resume", json={}))

    def set_contact_language(self, contact_id: int, language: str | None) -> Contact:
        """An operator's language for the contact; None gives it back to detection."""
        return self._parse(Contact, self.request("PATCH", f"/api/contacts/{contact_id}", json={"language": language}))

    def inbox(self, assistant_id: int | None = None, limit: int = 100) -> Inbox:
        """Customers waiting for a person, the longest waiting first."""
        params: dict[str, Any] = {"limit": limit}
        if assistant_id:
            params["assistant_id"] = assistant_id
        return self._parse(Inbox, self.request("GET", "/api/inbox", params=params))

    def reply(self, contact_id: int, text: str) -> Message:
        return self._parse(Message, self.request("POST", f"/api/contacts/{contact_id}/reply", json={"text": text}))
