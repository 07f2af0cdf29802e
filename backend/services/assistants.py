"""Assistants: what they are, and creating, reading, changing and deleting them."""

from __future__ import annotations

from dataclasses import asdict
from datetime import datetime
from typing import Literal

from databases import Database
from pydantic import BaseModel, ConfigDict, Field, computed_field, field_validator

from backend.errors import Invalid, NotFound
from backend.http import Page
from backend.services.languages import served_languages
from backend.services.policies import LanguageCode, ReplyPolicy, parse_policy
from backend.services.texts import KEYS, SHIPPED, SHIPPED_WORDS
from backend.store import assistants as store
from backend.store import golden as golden_store
from backend.store.assistants import AssistantRow
from rag.languages import LANGUAGES as SERVED_LANGUAGES
from rag.languages import code_of_text_search, text_search_of

# PostgreSQL text-search configurations shipped with the server.
LANGUAGES = (
    "simple", "arabic", "armenian", "basque", "catalan", "danish", "dutch", "english", "finnish",
    "french", "german", "greek", "hindi", "hungarian", "indonesian", "irish", "italian",
    "lithuanian", "nepali", "norwegian", "portuguese", "romanian", "russian", "serbian",
    "spanish", "swedish", "tamil", "turkish", "yiddish",
)  # fmt: skip
LANGUAGE_HELP = (
    "Older API: the full-text search configuration of its documents and questions (PostgreSQL's). "
    "Follows the main language when `languages` is set; for an automatic assistant its language comes after its documents'."
)
LANGUAGES_HELP = (
    "The languages it answers in (ISO 639-1 codes), its main language first: a customer in another language is answered "
    "in the main one. Empty: automatic (its documents' languages, then English)."
)


def _distinct_languages(codes: list[str] | None) -> list[str] | None:
    if codes is not None and len(set(codes)) != len(codes):
        raise ValueError("each language at most once")
    return codes


# A change to one of these queues a run of the assistant's golden questions (backend.services.golden).
ANSWER_INPUTS = ("instructions", "engine", "model", "languages")

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
    fallback_message: str = Field(
        default="", max_length=4000, description="Older API: the fallback text in the main language (see policies.texts)"
    )
    language: str | None = Field(default=None, description=LANGUAGE_HELP + " Default: english", pattern="^[a-z]+$")
    languages: list[LanguageCode] = Field(default_factory=list, max_length=20, description=LANGUAGES_HELP)
    policies: ReplyPolicy = Field(default_factory=ReplyPolicy)

    _languages_once = field_validator("languages")(_distinct_languages)


class AssistantPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    instructions: str | None = Field(default=None, max_length=20000)
    engine: Engine | None = Field(default=None, description=ENGINE_HELP)
    model: str | None = Field(default=None, min_length=1, max_length=200)
    temperature: float | None = Field(default=None, ge=0, le=2)
    fallback_message: str | None = Field(default=None, max_length=4000)
    language: str | None = Field(default=None, pattern="^[a-z]+$", description=LANGUAGE_HELP)
    languages: list[LanguageCode] | None = Field(default=None, max_length=20, description=LANGUAGES_HELP)
    policies: ReplyPolicy | None = None

    _languages_once = field_validator("languages")(_distinct_languages)


class Assistant(BaseModel):
    id: int
    name: str
    instructions: str
    engine: Engine
    model: str
    temperature: float
    fallback_message: str
    language: str = Field(description=LANGUAGE_HELP)
    languages: list[str] = Field(description=LANGUAGES_HELP)
    document_languages: list[str] = Field(description="The languages of its documents, the most passages first")
    policies: ReplyPolicy
    created_at: datetime
    updated_at: datetime

    @computed_field(description="The languages it answers in now, main first: `languages`, or the automatic ones")
    @property
    def served_languages(self) -> list[str]:
        return served_languages(self.languages, self.document_languages, self.language)


class LanguageDefaults(BaseModel):
    code: str
    name: str = Field(description="In English, as a prompt asks for it")
    native: str = Field(description="As its speakers write it")
    texts: dict[str, str] = Field(description="The shipped fixed texts (key → text); none for a language without them")
    words: dict[str, list[str]] = Field(description="The shipped command words (handoff, opt_out, opt_in)")


class LanguageCatalog(BaseModel):
    items: list[LanguageDefaults]
    text_keys: list[str] = Field(description="The fixed texts an assistant sends on its own")


def language_catalog() -> LanguageCatalog:
    """Every language an assistant can serve, with what it ships (the console shows them as placeholders)."""
    return LanguageCatalog(
        items=[
            LanguageDefaults(
                code=code,
                name=language.name,
                native=language.native,
                texts={key: by_code[code] for key, by_code in SHIPPED.items() if code in by_code},
                words={kind: list(by_code.get(code, [])) for kind, by_code in SHIPPED_WORDS.items()},
            )
            for code, language in SERVED_LANGUAGES.items()
        ],
        text_keys=list(KEYS),
    )


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


def _text_search_of_main(languages: list[str]) -> str | None:
    """The full-text configuration that follows a main language set through `languages`."""
    return text_search_of(languages[0]) if languages else None


def to_assistant(record: AssistantRow) -> Assistant:
    """The API's view of a stored assistant; its stored settings read tolerantly (`parse_policy`)."""
    values = asdict(record)
    policies = parse_policy(values.pop("settings"))
    # Passages whose language has no PostgreSQL stemmer (`simple`) name no language.
    documents = [code for code in map(code_of_text_search, values.pop("document_languages")) if code]
    return Assistant(**values, document_languages=list(dict.fromkeys(documents)), policies=policies)


def _not_found(assistant_id: int) -> NotFound:
    return NotFound(f"Assistant {assistant_id} does not exist.", code="assistant_not_found")


async def create_assistant(db: Database, fields: AssistantFields, default_model: str) -> Assistant:
    _check_language(fields.language)
    values = fields.model_dump(exclude={"policies"})
    values["model"] = values["model"] or default_model
    values["language"] = fields.language or _text_search_of_main(fields.languages) or "english"
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
    if patch.languages and patch.language is None:
        changes["language"] = _text_search_of_main(patch.languages) or "simple"
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
