"""SQL for golden questions, their runs and each run's results."""

from __future__ import annotations

from dataclasses import dataclass, fields
from datetime import datetime
from typing import Any

import asyncpg
from databases import Database

from backend.database import assignments, execute, fetch, fetchrow, fetchval, transaction
from backend.store.jobs import enqueue_job

RUN_JOB = "golden_run"
# After a change, a run waits this long: further changes join it, and the lexical search statistics
# are refreshed first (backend.services.knowledge.TERM_STATS_DELAY_SECONDS).
AUTO_RUN_DELAY_SECONDS = 6.0


@dataclass(frozen=True)
class GoldenQuestionRow:
    id: int
    assistant_id: int
    question: str
    must_contain: list[str]
    must_not_contain: list[str]
    reply_id: int | None
    created_at: datetime
    updated_at: datetime


@dataclass(frozen=True)
class GoldenRunRow:
    id: int
    assistant_id: int
    reasons: list[str]  # manual, documents, instructions, engine, model
    status: str  # queued, running, done, failed
    error: str | None
    total: int  # questions to ask, counted when the run starts
    answered: int
    passed: int
    regressions: int
    created_at: datetime
    started_at: datetime | None
    finished_at: datetime | None


@dataclass(frozen=True)
class GoldenResultRow:
    run_id: int
    question_id: int | None  # None once the question is deleted; its text stays
    question: str
    must_contain: list[str]
    must_not_contain: list[str]
    passed: bool
    missing: list[str]
    forbidden: list[str]
    regression: bool  # fails in this run, passed in an earlier one (with the same checks)
    answer: str
    sources: list[dict[str, Any]]
    engine: str | None
    model: str | None
    degraded_reason: str | None
    timings_ms: dict[str, float]
    created_at: datetime


QUESTION_COLUMNS = ", ".join(f.name for f in fields(GoldenQuestionRow))
RUN_COLUMNS = ", ".join(f.name for f in fields(GoldenRunRow))
RESULT_COLUMNS = ", ".join(f.name for f in fields(GoldenResultRow))
QUESTION_EDITABLE = ("question", "must_contain", "must_not_contain")


def _question(record: asyncpg.Record | None) -> GoldenQuestionRow | None:
    return GoldenQuestionRow(**record) if record is not None else None


def _run(record: asyncpg.Record | None) -> GoldenRunRow | None:
    return GoldenRunRow(**record) if record is not None else None


# Questions.


async def insert_question(
    db: Database, assistant_id: int, question: str, must_contain: list[str], must_not_contain: list[str], reply_id: int | None
) -> GoldenQuestionRow | None:
    """The new question, or None when the assistant already has it (compared ignoring case)."""
    return _question(
        await fetchrow(
            db,
            f"""
            INSERT INTO golden_questions (assistant_id, question, must_contain, must_not_contain, reply_id)
            VALUES ($1, $2, $3, $4, $5)
            ON CONFLICT (assistant_id, lower(question)) DO NOTHING
            RETURNING {QUESTION_COLUMNS}
            """,
            assistant_id,
            question,
            must_contain,
            must_not_contain,
            reply_id,
        )
    )


async def count_questions(db: Database, assistant_id: int) -> int:
    return await fetchval(db, "SELECT count(*) FROM golden_questions WHERE assistant_id = $1", assistant_id)


async def find_question(db: Database, assistant_id: int, question_id: int) -> GoldenQuestionRow | None:
    return _question(
        await fetchrow(
            db, f"SELECT {QUESTION_COLUMNS} FROM golden_questions WHERE assistant_id = $1 AND id = $2", assistant_id, question_id
        )
    )


async def list_questions(db: Database, assistant_id: int, limit: int, offset: int) -> tuple[list[GoldenQuestionRow], int]:
    records = await fetch(
        db,
        f"SELECT {QUESTION_COLUMNS} FROM golden_questions WHERE assistant_id = $1 ORDER BY id LIMIT $2 OFFSET $3",
        assistant_id,
        limit,
        offset,
    )
    return [_question(r) for r in records], await count_questions(db, assistant_id)


async def update_question(db: Database, assistant_id: int, question_id: int, changes: dict[str, Any]) -> GoldenQuestionRow | None:
    """Set the given columns (of `QUESTION_EDITABLE`); None when the question does not exist.
    Raises asyncpg.UniqueViolationError when the new text is another question's."""
    sets, values = assignments(QUESTION_EDITABLE, changes, 3)
    return _question(
        await fetchrow(
            db,
            f"""
            UPDATE golden_questions SET {sets}updated_at = now() WHERE assistant_id = $1 AND id = $2
            RETURNING {QUESTION_COLUMNS}
            """,
            assistant_id,
            question_id,
            *values,
        )
    )


async def delete_question(db: Database, assistant_id: int, question_id: int) -> bool:
    deleted = await fetchval(
        db, "DELETE FROM golden_questions WHERE assistant_id = $1 AND id = $2 RETURNING id", assistant_id, question_id
    )
    return deleted is not None


async def all_questions(db: Database, assistant_id: int) -> list[GoldenQuestionRow]:
    sql = f"SELECT {QUESTION_COLUMNS} FROM golden_questions WHERE assistant_id = $1 ORDER BY id"
    records = await fetch(db, sql, assistant_id)
    return [_question(r) for r in records]


async def latest_results(db: Database, question_ids: list[int]) -> dict[int, GoldenResultRow]:
    """Each question's result in the latest finished run that asked it."""
    records = await fetch(
        db,
        f"""
        SELECT DISTINCT ON (x.question_id) {", ".join(f"x.{c}" for c in RESULT_COLUMNS.split(", "))}
        FROM golden_results x JOIN golden_runs r ON r.id = x.run_id
        WHERE x.question_id = ANY(CAST($1 AS bigint[])) AND r.status = 'done'
        ORDER BY x.question_id, x.run_id DESC
        """,
        question_ids,
    )
    return {r["question_id"]: GoldenResultRow(**r) for r in records}


# Runs.

QUEUE_RUN = """
WITH wanted AS (
    SELECT CAST($1 AS bigint) AS assistant_id
    WHERE EXISTS (SELECT FROM golden_questions WHERE assistant_id = $1)
      AND ($3 OR NOT EXISTS (SELECT FROM documents WHERE assistant_id = $1 AND status IN ('pending', 'indexing')))
)
INSERT INTO golden_runs (assistant_id, reasons)
SELECT assistant_id, CAST($2 AS text[]) FROM wanted
ON CONFLICT (assistant_id) WHERE status = 'queued'
DO UPDATE SET reasons = ARRAY(SELECT DISTINCT unnest(golden_runs.reasons || EXCLUDED.reasons) ORDER BY 1)
RETURNING id, xmax = 0 AS inserted
"""


async def queue_run(db: Database, assistant_id: int, reasons: list[str]) -> int | None:
    """Queue a run of the assistant's golden questions, for `reasons`; its id. A run already queued
    takes the new reasons instead, so a burst of changes is one run. None when the assistant has no
    golden questions. A change (any reason but `manual`) waits until no document of the assistant is
    left to index (the last one to finish queues the run), then a few seconds more."""
    manual = reasons == ["manual"]
    async with transaction(db):
        # Two documents finishing at once each see the other still indexing; under this lock (held to
        # the commit) the second one sees the first's commit, so one of them queues the run.
        await execute(db, "SELECT pg_advisory_xact_lock(hashtextextended('golden:' || $1, 0))", str(assistant_id))
        queued = await fetchrow(db, QUEUE_RUN, assistant_id, reasons, manual)
        if queued is None:
            return None
        if queued["inserted"]:
            await enqueue_job(
                db,
                RUN_JOB,
                {"run_id": queued["id"]},
                dedup_key=f"{RUN_JOB}:{queued['id']}",
                serial_key=f"{RUN_JOB}:{assistant_id}",
                delay_seconds=0 if manual else AUTO_RUN_DELAY_SECONDS,
                max_attempts=3,
            )
        return queued["id"]


async def find_run(db: Database, assistant_id: int, run_id: int) -> GoldenRunRow | None:
    sql = f"SELECT {RUN_COLUMNS} FROM golden_runs WHERE assistant_id = $1 AND id = $2"
    return _run(await fetchrow(db, sql, assistant_id, run_id))


async def list_runs(db: Database, assistant_id: int, limit: int, offset: int) -> tuple[list[GoldenRunRow], int]:
    records = await fetch(
        db,
        f"SELECT {RUN_COLUMNS} FROM golden_runs WHERE assistant_id = $1 ORDER BY id DESC LIMIT $2 OFFSET $3",
        assistant_id,
        limit,
        offset,
    )
    total = await fetchval(db, "SELECT count(*) FROM golden_runs WHERE assistant_id = $1", assistant_id)
    return [_run(r) for r in records], total


async def start_run(db: Database, run_id: int) -> GoldenRunRow | None:
    """Mark a queued (or, after a lost worker, running) run as running; None when it is gone or over."""
    return _run(
        await fetchrow(
            db,
            f"""
            UPDATE golden_runs SET status = 'running', started_at = coalesce(started_at, now()),
                   total = (SELECT count(*) FROM golden_questions q WHERE q.assistant_id = golden_runs.assistant_id)
            WHERE id = $1 AND status IN ('queued', 'running')
            RETURNING {RUN_COLUMNS}
            """,
            run_id,
        )
    )


async def answered_question_ids(db: Database, run_id: int) -> set[int]:
    """The questions this run already has a result for (a retried run resumes after them)."""
    records = await fetch(db, "SELECT question_id FROM golden_results WHERE run_id = $1 AND question_id IS NOT NULL", run_id)
    return {r["question_id"] for r in records}


async def insert_result(db: Database, run_id: int, question: GoldenQuestionRow, verdict: dict[str, Any]) -> None:
    """Keep one question's result; a repeat (a retried run) keeps the first."""
    await execute(
        db,
        """
        WITH kept AS (
            INSERT INTO golden_results (run_id, question_id, question, must_contain, must_not_contain, passed, missing,
                                        forbidden, answer, sources, engine, model, degraded_reason, timings_ms)
            VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14)
            ON CONFLICT (run_id, question_id) DO NOTHING
            RETURNING run_id
        )
        UPDATE golden_runs SET answered = answered + 1 WHERE id IN (SELECT run_id FROM kept)
        """,
        run_id,
        question.id,
        question.question,
        question.must_contain,
        question.must_not_contain,
        verdict["passed"],
        verdict["missing"],
        verdict["forbidden"],
        verdict["answer"],
        verdict["sources"],
        verdict["engine"],
        verdict["model"],
        verdict["degraded_reason"],
        verdict["timings_ms"],
    )


FINISH_RUN = """
WITH flagged AS (
    UPDATE golden_results x SET regression = true
    WHERE x.run_id = $1 AND NOT x.passed AND EXISTS (
        -- The same question, with the same checks, passed in an earlier finished run.
        SELECT FROM golden_results p JOIN golden_runs r ON r.id = p.run_id
        WHERE p.question_id = x.question_id AND p.run_id < $1 AND r.status = 'done' AND p.passed
          AND p.must_contain = x.must_contain AND p.must_not_contain = x.must_not_contain
    )
    RETURNING x.question_id
)
UPDATE golden_runs SET status = 'done', finished_at = now(), error = NULL,
       total = (SELECT count(*) FROM golden_results WHERE run_id = $1),
       answered = (SELECT count(*) FROM golden_results WHERE run_id = $1),
       passed = (SELECT count(*) FROM golden_results WHERE run_id = $1 AND passed),
       regressions = (SELECT count(*) FROM flagged)
WHERE id = $1
RETURNING total, passed AS succeeded, regressions  -- "passed" would be redacted in the log (a password-like key)
"""


async def finish_run(db: Database, run_id: int) -> dict[str, int] | None:
    """Count the results and flag the regressions: failing questions that passed before (so a question stays
    flagged, run after run, until it passes again). The counts, or None when the run is gone."""
    counts = await fetchrow(db, FINISH_RUN, run_id)
    return dict(counts) if counts is not None else None


async def prune_runs(db: Database, assistant_id: int, keep: int) -> int:
    """Delete the assistant's finished runs older than its `keep` newest; how many."""
    return await fetchval(
        db,
        """
        WITH old AS (
            DELETE FROM golden_runs WHERE assistant_id = $1 AND status IN ('done', 'failed') AND id < (
                SELECT id FROM golden_runs WHERE assistant_id = $1 ORDER BY id DESC OFFSET $2 - 1 LIMIT 1
            )
            RETURNING id
        )
        SELECT count(*) FROM old
        """,
        assistant_id,
        keep,
    )


async def fail_run(db: Database, run_id: int, error: str) -> None:
    await execute(
        db, "UPDATE golden_runs SET status = 'failed', error = $2, finished_at = now() WHERE id = $1", run_id, error[:2000]
    )


async def run_results(db: Database, run_id: int) -> list[GoldenResultRow]:
    records = await fetch(
        db, f"SELECT {RESULT_COLUMNS} FROM golden_results WHERE run_id = $1 ORDER BY regression DESC, passed, question", run_id
    )
    return [GoldenResultRow(**r) for r in records]


# Each assistant's latest finished run, as `r` (what is flagged now).
LATEST_RUNS = """
FROM assistants a
JOIN LATERAL (SELECT * FROM golden_runs WHERE assistant_id = a.id AND status = 'done' ORDER BY id DESC LIMIT 1) r ON true
"""


async def latest_runs_with_regressions(db: Database) -> list[dict[str, Any]]:
    """Per assistant whose latest finished run has regressions: that run, with the assistant's name."""
    records = await fetch(
        db,
        f"""
        SELECT a.name AS assistant_name, {", ".join(f"r.{c}" for c in RUN_COLUMNS.split(", "))}
        {LATEST_RUNS}
        WHERE r.regressions > 0
        ORDER BY r.finished_at DESC
        """,
    )
    return [dict(r) for r in records]


async def regressed_question_count(db: Database) -> int:
    """Regressions summed over each assistant's latest finished run."""
    return await fetchval(
        db,
        f"SELECT coalesce(sum(r.regressions), 0) {LATEST_RUNS}",
    )
