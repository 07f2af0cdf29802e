"""Golden questions: what an assistant must keep answering right, run through the real answer path.

A golden question names the facts its answer must contain (and may name some it must not). A run asks
every question of the assistant as a customer would (its engine, model, instructions and documents; no
WhatsApp) and keeps each answer with its verdict. A question that fails now but passed in an earlier
run (with the same checks) is a regression. Runs start on request, and by themselves after the documents,
instructions, engine or model change (`backend.store.golden.queue_run`).
"""

from __future__ import annotations

from collections.abc import Awaitable, Callable
from datetime import datetime
from typing import Annotated, Any, Literal

import asyncpg
import structlog
from databases import Database
from pydantic import BaseModel, ConfigDict, Field, StringConstraints

from backend.errors import Conflict, Invalid, NotFound
from backend.http import Page
from backend.runtime import Runtime
from backend.services.answers import answer_question
from backend.services.assistants import get_assistant
from backend.store import golden as store
from backend.store import messages as message_store
from backend.store.golden import GoldenQuestionRow, GoldenResultRow, GoldenRunRow
from rag.grounding import extract_facts, states_fact
from rag.types import Answer

log = structlog.get_logger(__name__)

MAX_QUESTIONS = 200  # per assistant: a run asks every one, so this bounds its cost

FactText = Annotated[str, StringConstraints(strip_whitespace=True, min_length=1, max_length=200)]
Facts = Annotated[list[FactText], Field(max_length=20)]
FACTS_HELP = (
    "Prices, times, dates, phone numbers, e-mails and URLs compare by value (1.80 = 1,80; 7:30 = 7.30 am); "
    "other words must appear as whole words, ignoring case and punctuation"
)


class GoldenFields(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str | None = Field(default=None, min_length=1, max_length=4000, description="Required unless `reply_id` gives it")
    must_contain: Facts = Field(default_factory=list, description=FACTS_HELP)
    must_not_contain: Facts = Field(default_factory=list, description=FACTS_HELP)
    reply_id: int | None = Field(
        default=None,
        description="Save from a thread: a bot reply of this assistant. Its customer's message is the question and, "
        "when both lists are empty, the facts the reply states become must_contain (verdict right) or "
        "must_not_contain (verdict wrong)",
    )
    verdict: Literal["right", "wrong"] = Field(default="right", description="With `reply_id`: was that answer right?")


class GoldenPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    question: str | None = Field(default=None, min_length=1, max_length=4000)
    must_contain: Facts | None = Field(default=None, description=FACTS_HELP)
    must_not_contain: Facts | None = Field(default=None, description=FACTS_HELP)


class GoldenResult(BaseModel):
    run_id: int
    question_id: int | None = Field(description="None once the question was deleted")
    question: str
    must_contain: list[str]
    must_not_contain: list[str]
    passed: bool
    missing: list[str] = Field(description="Facts of must_contain the answer lacks")
    forbidden: list[str] = Field(description="Facts of must_not_contain the answer states")
    regression: bool = Field(description="Fails now, passed in an earlier run with the same checks")
    answer: str
    sources: list[dict[str, Any]]
    engine: str | None
    model: str | None
    degraded_reason: str | None
    timings_ms: dict[str, float]
    created_at: datetime


class GoldenQuestion(BaseModel):
    id: int
    assistant_id: int
    question: str
    must_contain: list[str]
    must_not_contain: list[str]
    reply_id: int | None
    created_at: datetime
    updated_at: datetime
    last_result: GoldenResult | None = Field(description="Its result in the latest finished run that asked it")


class GoldenPage(BaseModel):
    items: list[GoldenQuestion]
    total: int
    limit: int
    offset: int


class GoldenRun(BaseModel):
    id: int
    assistant_id: int
    reasons: list[str] = Field(description="Why it ran: manual, documents, instructions, engine, model")
    status: Literal["queued", "running", "done", "failed"]
    error: str | None
    total: int
    answered: int
    passed: int
    failed: int
    regressions: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None
    duration_ms: float | None


class GoldenRunDetail(GoldenRun):
    results: list[GoldenResult] = Field(description="Regressions first, then the other failures")


class GoldenRunPage(BaseModel):
    items: list[GoldenRun]
    total: int
    limit: int
    offset: int


class Regression(BaseModel):
    assistant_id: int
    assistant_name: str
    run: GoldenRun
    questions: list[str]


class RegressionList(BaseModel):
    items: list[Regression] = Field(description="Assistants whose latest finished run has regressions")


def _question_of(record: GoldenQuestionRow, last: GoldenResultRow | None) -> GoldenQuestion:
    return GoldenQuestion(**vars(record), last_result=GoldenResult(**vars(last)) if last else None)


def _run_of(record: GoldenRunRow) -> GoldenRun:
    duration = None
    if record.started_at and record.finished_at:
        duration = round((record.finished_at - record.started_at).total_seconds() * 1000, 1)
    failed = record.answered - record.passed if record.status == "done" else 0
    return GoldenRun(**vars(record), failed=failed, duration_ms=duration)


def _not_found(question_id: int) -> NotFound:
    return NotFound(f"Golden question {question_id} does not exist.", code="golden_not_found")


def _exists(question: str) -> Conflict:
    return Conflict(f"This assistant already has the golden question '{question}'.", code="golden_exists")


def _check(question: str, must_contain: list[str], must_not_contain: list[str]) -> None:
    if not must_contain and not must_not_contain:
        raise Invalid(
            "Say what a right answer must contain (or must not contain).",
            code="golden_without_checks",
            details=[{"field": "must_contain", "message": "give at least one fact here or in must_not_contain"}],
        )
    if not question.strip():
        raise Invalid("The question is empty.", details=[{"field": "question", "message": "give the question"}])


async def _from_reply(db: Database, assistant_id: int, fields: GoldenFields) -> tuple[str, list[str], list[str]]:
    """The question and checks of a golden question saved from the bot reply `fields.reply_id`."""
    found = await message_store.find_answered_question(db, assistant_id, fields.reply_id)
    if found is None:
        raise NotFound(f"Message {fields.reply_id} is not a reply of assistant {assistant_id}.", code="reply_not_found")
    question = fields.question or found.question
    must, must_not = fields.must_contain, fields.must_not_contain
    if not must and not must_not:
        stated = list(dict.fromkeys(fact.text for fact in extract_facts(found.answer)))[:20]
        must, must_not = (stated, []) if fields.verdict == "right" else ([], stated)
    return question, must, must_not


async def create_question(db: Database, assistant_id: int, fields: GoldenFields) -> GoldenQuestion:
    await get_assistant(db, assistant_id)
    if fields.reply_id is not None:
        question, must, must_not = await _from_reply(db, assistant_id, fields)
    elif fields.question is None:
        details = [{"field": "question", "message": "required"}]
        raise Invalid("Give the question (or the reply it is saved from).", details=details)
    else:
        question, must, must_not = fields.question, fields.must_contain, fields.must_not_contain
    question = question.strip()
    _check(question, must, must_not)
    if await store.count_questions(db, assistant_id) >= MAX_QUESTIONS:
        raise Conflict(f"An assistant has at most {MAX_QUESTIONS} golden questions.", code="golden_limit")
    record = await store.insert_question(db, assistant_id, question, must, must_not, fields.reply_id)
    if record is None:
        raise _exists(question)
    return _question_of(record, None)


async def list_questions(db: Database, assistant_id: int, page: Page) -> GoldenPage:
    await get_assistant(db, assistant_id)
    records, total = await store.list_questions(db, assistant_id, page.limit, page.offset)
    last = await store.latest_results(db, [r.id for r in records])
    items = [_question_of(r, last.get(r.id)) for r in records]
    return GoldenPage(items=items, total=total, limit=page.limit, offset=page.offset)


async def update_question(db: Database, assistant_id: int, question_id: int, patch: GoldenPatch) -> GoldenQuestion:
    current = await store.find_question(db, assistant_id, question_id)
    if current is None:
        await get_assistant(db, assistant_id)
        raise _not_found(question_id)
    changes = {key: value for key, value in patch.model_dump(exclude_unset=True).items() if value is not None}
    if "question" in changes:
        changes["question"] = changes["question"].strip()
    merged = {**vars(current), **changes}
    _check(merged["question"], merged["must_contain"], merged["must_not_contain"])
    try:
        record = await store.update_question(db, assistant_id, question_id, changes) if changes else current
    except asyncpg.UniqueViolationError as exc:
        raise _exists(merged["question"]) from exc
    if record is None:
        raise _not_found(question_id)
    return _question_of(record, (await store.latest_results(db, [record.id])).get(record.id))


async def delete_question(db: Database, assistant_id: int, question_id: int) -> None:
    if not await store.delete_question(db, assistant_id, question_id):
        await get_assistant(db, assistant_id)
        raise _not_found(question_id)


async def request_run(db: Database, assistant_id: int) -> GoldenRun:
    """Run the golden questions now (joining a run already queued)."""
    await get_assistant(db, assistant_id)
    run_id = await store.queue_run(db, assistant_id, ["manual"])
    if run_id is None:
        raise Conflict("This assistant has no golden questions to run yet.", code="golden_empty")
    return _run_of(await store.find_run(db, assistant_id, run_id))


async def list_runs(db: Database, assistant_id: int, page: Page) -> GoldenRunPage:
    await get_assistant(db, assistant_id)
    records, total = await store.list_runs(db, assistant_id, page.limit, page.offset)
    return GoldenRunPage(items=[_run_of(r) for r in records], total=total, limit=page.limit, offset=page.offset)


async def get_run(db: Database, assistant_id: int, run_id: int) -> GoldenRunDetail:
    record = await store.find_run(db, assistant_id, run_id)
    if record is None:
        await get_assistant(db, assistant_id)
        raise NotFound(f"Golden run {run_id} does not exist for assistant {assistant_id}.", code="golden_run_not_found")
    results = [GoldenResult(**vars(r)) for r in await store.run_results(db, run_id)]
    return GoldenRunDetail(**_run_of(record).model_dump(), results=results)


async def regressions(db: Database) -> RegressionList:
    items = []
    for found in await store.latest_runs_with_regressions(db):
        name = found.pop("assistant_name")
        results = await store.run_results(db, found["id"])
        run = _run_of(GoldenRunRow(**found))
        questions = [r.question for r in results if r.regression]
        items.append(Regression(assistant_id=run.assistant_id, assistant_name=name, run=run, questions=questions))
    return RegressionList(items=items)


def verdict_of(question: GoldenQuestionRow, answer: Answer) -> dict[str, Any]:
    """Judge what the customer would have received: every must-contain fact stated, no must-not-contain one."""
    missing = [fact for fact in question.must_contain if not states_fact(answer.text, fact)]
    forbidden = [fact for fact in question.must_not_contain if states_fact(answer.text, fact)]
    return {
        "passed": not missing and not forbidden,
        "missing": missing,
        "forbidden": forbidden,
        "answer": answer.text,
        "sources": answer.sources,
        "engine": answer.trace.get("engine"),
        "model": answer.trace.get("model"),
        "degraded_reason": answer.degraded_reason,
        "timings_ms": answer.trace.get("timings_ms", {}),
    }


async def run_questions(rt: Runtime, run_id: int, heartbeat: Callable[[float], Awaitable[None]]) -> None:
    """Ask each golden question of the run's assistant and keep its result; a retried run resumes
    after the questions it already answered. Then count it and flag its regressions."""
    run = await store.start_run(rt.db, run_id)
    if run is None:
        return  # finished meanwhile, or deleted with its assistant
    assistant = await get_assistant(rt.db, run.assistant_id)
    questions = await store.all_questions(rt.db, run.assistant_id)
    answered = await store.answered_question_ids(rt.db, run_id)
    for number, question in enumerate(questions, start=1):
        if question.id in answered:
            continue
        answer = await answer_question(rt, assistant, question.question, [])
        try:
            await store.insert_result(rt.db, run_id, question, verdict_of(question, answer))
        except asyncpg.ForeignKeyViolationError:
            continue  # the question was deleted while it was asked
        await heartbeat(number / len(questions))
    counts = await store.finish_run(rt.db, run_id)
    await store.prune_runs(rt.db, run.assistant_id, rt.settings.golden_runs_kept)
    log.info("golden.run_done", assistant=run.assistant_id, run=run_id, reasons=run.reasons, **(counts or {}))
