"""Meta's Cloud API as a provider, and a channel's provider settings (its number id, token, app secret and verify token).

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
    op.execute("ALTER TABLE channels DROP CONSTRAINT channels_provider_check")
    op.execute(
        "ALTER TABLE channels ADD CONSTRAINT channels_provider_check "
        "CHECK (provider IN ('sandbox', 'waha', 'evolution', 'cloud'))"
    )


def downgrade() -> None:
    op.execute("DELETE FROM channels WHERE provider = 'cloud'")
    op.execute("ALTER TABLE channels DROP CONSTRAINT channels_provider_check")
    op.execute("ALTER TABLE channels ADD CONSTRAINT channels_provider_check CHECK (provider IN ('sandbox', 'waha', 'evolution'))")
    op.execute("ALTER TABLE channels DROP COLUMN config")
