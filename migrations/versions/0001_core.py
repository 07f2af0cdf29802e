"""Core: pgvector, operators, login attempts, assistants, jobs.

Revision ID: 0001
Revises:
"""

from alembic import op

from backend.database import split_sql

revision = "0001"
down_revision = None
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute("CREATE EXTENSION IF NOT EXISTS vector")
    for statement in split_sql(
        """
        CREATE TABLE operators (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            email text NOT NULL,
            password_hash text NOT NULL,
            role text NOT NULL DEFAULT 'operator' CHECK (role IN ('admin', 'operator')),
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE UNIQUE INDEX operators_email_key ON operators (lower(email));

        CREATE TABLE login_attempts (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            email text NOT NULL,
            ip text NOT NULL,
            succeeded boolean NOT NULL,
            at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX login_attempts_lookup ON login_attempts (lower(email), ip, at);

        CREATE TABLE assistants (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            name text NOT NULL,
            instructions text NOT NULL DEFAULT '',
            model text NOT NULL,
            temperature double precision NOT NULL DEFAULT 0.2,
            fallback_message text NOT NULL DEFAULT '',
            language text NOT NULL DEFAULT 'english',
            settings jsonb NOT NULL DEFAULT '{}'::jsonb,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );

        -- One queue for all background work (replies, indexing). Claimed with
        -- FOR UPDATE SKIP LOCKED; a lease lets another worker reclaim a job whose worker died.
        CREATE TABLE jobs (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            kind text NOT NULL,
            payload jsonb NOT NULL DEFAULT '{}'::jsonb,
            status text NOT NULL DEFAULT 'queued'
                CHECK (status IN ('queued', 'running', 'done', 'failed', 'cancelled')),
            dedup_key text,
            serial_key text,
            attempts integer NOT NULL DEFAULT 0,
            max_attempts integer NOT NULL DEFAULT 5,
            run_at timestamptz NOT NULL DEFAULT now(),
            locked_by text,
            locked_until timestamptz,
            last_error text,
            progress double precision,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        );
        -- At most one queued job per dedup key (a second enqueue is a no-op) ...
        CREATE UNIQUE INDEX jobs_dedup_key ON jobs (dedup_key) WHERE status = 'queued';
        -- ... and at most one running job per serial key (e.g. one contact's replies in order).
        CREATE UNIQUE INDEX jobs_serial_running ON jobs (serial_key) WHERE status = 'running';
        CREATE INDEX jobs_ready ON jobs (run_at) WHERE status = 'queued';
        CREATE INDEX jobs_leases ON jobs (locked_until) WHERE status = 'running';
        """
    ):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE jobs, assistants, login_attempts, operators")
    op.execute("DROP EXTENSION IF EXISTS vector")
