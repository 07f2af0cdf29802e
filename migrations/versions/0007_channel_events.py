"""Channels remember when their status last changed (stale gateway events are refused); the job
queue's gauges and pruning read small partial indexes instead of the whole table.

Revision ID: 0007
Revises: 0006
"""

from alembic import op

revision = "0007"
down_revision = "0006"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # The newest status event applied (the gateway's own timestamp) or operator action (when it
    # began): a signed event older than this is a replay or a late retry and changes nothing.
    op.execute("ALTER TABLE channels ADD COLUMN status_event_at timestamptz")
    # Queued and running jobs already have partial indexes (jobs_ready, jobs_leases).
    op.execute("CREATE INDEX jobs_failed ON jobs (updated_at) WHERE status = 'failed'")
    op.execute("CREATE INDEX jobs_finished ON jobs (updated_at) WHERE status IN ('done', 'cancelled')")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS jobs_finished")
    op.execute("DROP INDEX IF EXISTS jobs_failed")
    op.execute("ALTER TABLE channels DROP COLUMN status_event_at")
