"""How a bot reply's answer went — the fallback text, stopped as ungrounded, its best retrieval score — is
in columns that the knowledge gaps, the inbox and the outcome counts read, not in keys of the debug trace.

Revision ID: 0010
Revises: 0009
"""

from alembic import op

revision = "0010"
down_revision = "0009"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE messages ADD COLUMN used_fallback boolean NOT NULL DEFAULT false, "
        "ADD COLUMN ungrounded boolean NOT NULL DEFAULT false, ADD COLUMN top_score double precision"
    )
    op.execute(
        """
        UPDATE messages SET
            used_fallback = coalesce(trace->>'used_fallback' = 'true', false),
            ungrounded = coalesce(trace->>'ungrounded' = 'true', false),
            top_score = CASE WHEN jsonb_typeof(trace->'top_score') = 'number' THEN (trace->>'top_score')::double precision END
        WHERE direction = 'out' AND author = 'bot' AND trace IS NOT NULL
        """
    )


def downgrade() -> None:
    op.execute("ALTER TABLE messages DROP COLUMN used_fallback, DROP COLUMN ungrounded, DROP COLUMN top_score")
