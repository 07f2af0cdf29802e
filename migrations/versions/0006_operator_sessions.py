"""Operators' tokens can be revoked; login attempts are pruned and throttled per client.

Revision ID: 0006
Revises: 0005
"""

from alembic import op

revision = "0006"
down_revision = "0005"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # A token names the version it was issued at; logging out or changing the password bumps it.
    op.execute("ALTER TABLE operators ADD COLUMN token_version integer NOT NULL DEFAULT 0")
    op.execute("CREATE INDEX login_attempts_ip ON login_attempts (ip, at)")
    op.execute("CREATE INDEX login_attempts_at ON login_attempts (at)")


def downgrade() -> None:
    op.execute("DROP INDEX login_attempts_at")
    op.execute("DROP INDEX login_attempts_ip")
    op.execute("ALTER TABLE operators DROP COLUMN token_version")
