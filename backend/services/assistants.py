"""Assistants: what they are, and creating, reading, changing and deleting them."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Literal

from databases import Database
from pydantic import BaseModel, ConfigDict, Field

from backend.errors import Invalid, NotFound
from backend.http import Page
from backend.services.policies import ReplyPolicy, parse_policy
from backend.store import assistants as store
from backend.store import golden as golden_store
from backend.store.assistants import AssistantRow

# PostgreSQL text-search configurations shipped with the server.
LANGUAGES = (
    "simple", "arabic", "armenian", "basque", "catalan", "danish", "dutch", "english", "finnish",
    "french", "german", "greek", "hindi", "hungarian", "indonesian", "irish", "italian",
    "lithuanian", "nepali", "norwegian", "portuguese", "romanian", "russian", "serbian",
    "spanish", "swedish", "tamil", "turkish", "yiddish",
)  # fmt: skip


# A change to one of these queues a run of the assistant's golden questions (backend.services.golden).
ANSWER_INPUTS = ("instructions", "engine", "model")

Engine = Literal["default", "auto", "ollama", "openai", "embedded"]
ENGINE_HELP = (
    "default = the server's LLM_PROVIDER; auto = Ollama when it has the model, else the embedded model; "
    "ollama, openai (an OpenAI-compatible server) or embedded (llama.cpp in the backend) force one"
)


class AssistantFields(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str = Field(min_length=1, max_length=200)
    instructions: str = Field(default="You are a helpful assistant. Answer from the sources.", max_length=20000)
    engine: Engine = Field(default="default", description=ENGINE_HELP)
    model: str | None = Field(
        default=None,
        min_length=1,
        max_length=200,
        description="Model of the Ollama or OpenAI-compatible engine; default OLLAMA_MODEL",
    )
    temperature: float = Field(default=0.2, ge=0, le=2)
    fallback_message: str = Field(default="Sorry, I don't know that yet. A person from our team will follow up.", max_length=4000)
    language: str = Field(default="english", description="Full-text search language", pattern="^[a-z]+$")
    policies: ReplyPolicy = Field(default_factory=ReplyPolicy)


class AssistantPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    instructions: str | None = Field(default=None, max_length=20000)
    engine: Engine | None = Field(default=None, description=ENGINE_HELP)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    temperature: float | None = Field(default=None, ge=0, le=2)
    fallback_message: str | None = Field(default=None, max_length=4000)
    language: str | None = Field(default=None, pattern="^[a-z]+$")
    policies: ReplyPolicy | None = None


class Assistant(BaseModel):
    id: int
    name: str
    instructions: str
    engine: Engine
    model: str
    temperature: float
    fallback_message: str
    language: str
    policies: ReplyPolicy
    created_at: datetime
    updated_at: datetime


class AssistantPage(BaseModel):
    items: list[Assistant]
    total: int
    limit: int
    offset: int


def _check_language(language: str | None) -> None:
    if language is not None and language not in LANGUAGES:
        raise Invalid(
            f"Unknown language '{language}'.",
            details=[{"field": "language", "message": f"one of {', '.join(LANGUAGES)}"}],
        )


def to_assistant(record: AssistantRow) -> Assistant:
    """The API's view of a stored assistant; its stored settings read tolerantly (`parse_policy`)."""
    values = asdict(record)
    policies = parse_policy(values.pop("settings"))
    return Assistant(**values, policies=policies)


def _not_found(assistant_id: int) -> NotFound:
    return NotFound(f"Assistant {assistant_id} does not exist.", code="assistant_not_found")


async def create_assistant(db: Database, fields: AssistantFields, default_model: str) -> Assistant:
    _check_language(fields.language)
    values = fields.model_dump(exclude={"policies"})
    values["model"] = values["model"] or default_model
    return to_assistant(await store.insert_assistant(db, **values, settings=fields.policies.model_dump()))


async def get_assistant(db: Database, assistant_id: int) -> Assistant:
    record = await store.find_assistant(db, assistant_id)
    if record is None:
        raise _not_found(assistant_id)
    return to_assistant(record)


async def list_assistants(db: Database, page: Page) -> tuple[list[Assistant], int]:
    records, total = await store.list_assistants(db, page.limit, page.offset)
    return [to_assistant(r) for r in records], total


async def update_assistant(db: Database, assistant_id: int, patch: AssistantPatch) -> Assistant:
    _check_language(patch.language)
    changes = patch.model_dump(exclude_unset=True, exclude={"policies"})
    changes = {key: value for key, value in changes.items() if value is not None}
    if patch.policies is not None:
        changes["settings"] = patch.policies.model_dump()
    before = await store.find_assistant(db, assistant_id)
    record = await store.update_assistant(db, assistant_id, changes) if before is not None else None
    if record is None:
        raise _not_found(assistant_id)
    # What its answers depend on changed: ask its golden questions again.
    changed = [key for key in ANSWER_INPUTS if getattr(before, key) != getattr(record, key)]
    if changed:
        await golden_store.queue_run(db, assistant_id, changed)
    return to_assistant(record)


async def delete_assistant(db: Database, assistant_id: int) -> None:
    if not await store.delete_assistant(db, assistant_id):
        raise _not_found(assistant_id)
