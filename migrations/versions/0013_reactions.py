"""Customers' reactions to the bot's replies (feedback: 👍 and ❤️ positive, 👎 negative).

Revision ID: 0013
Revises: 0012
"""

from alembic import op

revision = "0013"
down_revision = "0012"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE message_reactions (
            message_id bigint NOT NULL REFERENCES messages (id) ON DELETE CASCADE,
            sender_id text NOT NULL,
            emoji text NOT NULL,
            sentiment text CHECK (sentiment IN ('positive', 'negative')),
            created_at timestamptz NOT NULL DEFAULT now(),
            PRIMARY KEY (message_id, sender_id)
        )
        """
    )
    op.execute("CREATE INDEX message_reactions_negative ON message_reactions (message_id) WHERE sentiment = 'negative'")


def downgrade() -> None:
    op.execute("DROP TABLE message_reactions")
