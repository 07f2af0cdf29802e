"""Assistants choose their language-model engine (or follow LLM_PROVIDER).

Revision ID: 0005
Revises: 0004
"""

from alembic import op

revision = "0005"
down_revision = "0004"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        "ALTER TABLE assistants ADD COLUMN engine text NOT NULL DEFAULT 'default' "
        "CHECK (engine IN ('default', 'auto', 'ollama', 'openai', 'embedded'))"
    )


def downgrade() -> None:
    op.execute("ALTER TABLE assistants DROP COLUMN engine")
