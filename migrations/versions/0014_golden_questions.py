"""Golden questions per assistant, and their runs: each run keeps every question's answer and verdict.

Revision ID: 0014
Revises: 0013
"""

from alembic import op

revision = "0014"
down_revision = "0013"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE golden_questions (
            id bigserial PRIMARY KEY,
            assistant_id bigint NOT NULL REFERENCES assistants (id) ON DELETE CASCADE,
            question text NOT NULL,
            must_contain text[] NOT NULL DEFAULT '{}',
            must_not_contain text[] NOT NULL DEFAULT '{}',
            -- The bot reply it was saved from ("this answer was right/wrong"), if any.
            reply_id bigint REFERENCES messages (id) ON DELETE SET NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    op.execute("CREATE UNIQUE INDEX golden_questions_question ON golden_questions (assistant_id, lower(question))")
    op.execute(
        """
        CREATE TABLE golden_runs (
            id bigserial PRIMARY KEY,
            assistant_id bigint NOT NULL REFERENCES assistants (id) ON DELETE CASCADE,
            reasons text[] NOT NULL,
            status text NOT NULL DEFAULT 'queued' CHECK (status IN ('queued', 'running', 'done', 'failed')),
            error text,
            total int NOT NULL DEFAULT 0,
            answered int NOT NULL DEFAULT 0,
            passed int NOT NULL DEFAULT 0,
            regressions int NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL DEFAULT now(),
            started_at timestamptz,
            finished_at timestamptz
        )
        """
    )
    # At most one queued run per assistant: changes that arrive while it waits join it.
    op.execute("CREATE UNIQUE INDEX golden_runs_queued ON golden_runs (assistant_id) WHERE status = 'queued'")
    op.execute("CREATE INDEX golden_runs_assistant ON golden_runs (assistant_id, id DESC)")
    op.execute(
        """
        CREATE TABLE golden_results (
            run_id bigint NOT NULL REFERENCES golden_runs (id) ON DELETE CASCADE,
            question_id bigint REFERENCES golden_questions (id) ON DELETE SET NULL,
            question text NOT NULL,
            must_contain text[] NOT NULL,
            must_not_contain text[] NOT NULL,
            passed boolean NOT NULL,
            missing text[] NOT NULL,
            forbidden text[] NOT NULL,
            regression boolean NOT NULL DEFAULT false,
            answer text NOT NULL,
            sources jsonb NOT NULL,
            engine text,
            model text,
            degraded_reason text,
            timings_ms jsonb NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (run_id, question_id)
        )
        """
    )
    op.execute("CREATE INDEX golden_results_question ON golden_results (question_id, run_id DESC)")


def downgrade() -> None:
    op.execute("DROP TABLE golden_results")
    op.execute("DROP TABLE golden_runs")
    op.execute("DROP TABLE golden_questions")
