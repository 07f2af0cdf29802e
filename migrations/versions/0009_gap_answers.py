"""A weak bot reply remembers the FAQ saved for its question on the knowledge-gaps page.

Revision ID: 0009
Revises: 0008
"""

from alembic import op

revision = "0009"
down_revision = "0008"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Deleting that FAQ empties the column, and the question is a gap again.
    op.execute("ALTER TABLE messages ADD COLUMN gap_filled_by bigint REFERENCES documents (id) ON DELETE SET NULL")
    op.execute("CREATE INDEX messages_gap_filled_by ON messages (gap_filled_by) WHERE gap_filled_by IS NOT NULL")


def downgrade() -> None:
    op.execute("ALTER TABLE messages DROP COLUMN gap_filled_by")
