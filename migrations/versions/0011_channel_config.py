"""A channel's provider settings (the Cloud API's number id, token, app secret and verify token).

Revision ID: 0011
Revises: 0010
"""

from alembic import op

revision = "0011"
down_revision = "0010"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # Never returned by the API: the routes show only what is not secret (see services.channels.public_channel).
    op.execute("ALTER TABLE channels ADD COLUMN config jsonb NOT NULL DEFAULT '{}'::jsonb")


def downgrade() -> None:
    op.execute("ALTER TABLE channels DROP COLUMN config")
