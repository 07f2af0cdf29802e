"""WhatsApp connections: channels, the numbers linked to assistants, the sandbox gateway's state.

Revision ID: 0003
Revises: 0002
"""

from alembic import op

from backend.database import split_sql

revision = "0003"
down_revision = "0002"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in split_sql(
        """
        CREATE TABLE channels (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            assistant_id bigint NOT NULL REFERENCES assistants (id) ON DELETE CASCADE,
            provider text NOT NULL CHECK (provider IN ('sandbox', 'waha', 'evolution')),
            session_name text NOT NULL,
            status text NOT NULL DEFAULT 'pending_qr'
                CHECK (status IN ('pending_qr', 'ready', 'disconnected')),
            detail text NOT NULL DEFAULT 'starting',
            qr text,
            qr_updated_at timestamptz,
            phone_number text,
            webhook_secret text NOT NULL,
            last_error text,
            last_event_at timestamptz,
            connected_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (provider, session_name)
        );
        CREATE INDEX channels_assistant ON channels (assistant_id);

        CREATE TABLE assistant_phone_numbers (
            phone_number text PRIMARY KEY,
            assistant_id bigint NOT NULL REFERENCES assistants (id) ON DELETE CASCADE,
            channel_id bigint REFERENCES channels (id) ON DELETE SET NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX assistant_phone_numbers_channel ON assistant_phone_numbers (channel_id);

        -- The built-in sandbox gateway keeps its "phone" in the database, so every backend
        -- instance sees the same session and outbox.
        CREATE TABLE sandbox_sessions (
            channel_id bigint PRIMARY KEY REFERENCES channels (id) ON DELETE CASCADE,
            state text NOT NULL CHECK (state IN ('scan_qr', 'working', 'logged_out', 'stopped')),
            qr text,
            phone_number text,
            updated_at timestamptz NOT NULL DEFAULT now()
        );

        -- Every text the sandbox gateway was asked to send.
        CREATE TABLE sandbox_outbox (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            channel_id bigint NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
            provider_message_id text NOT NULL UNIQUE,
            chat_id text NOT NULL,
            text text NOT NULL,
            created_at timestamptz NOT NULL DEFAULT now()
        );
        CREATE INDEX sandbox_outbox_channel ON sandbox_outbox (channel_id, id);
        """
    ):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE sandbox_outbox, sandbox_sessions, assistant_phone_numbers, channels")
