"""Conversations: contacts and messages (inbound unique per channel, outbound idempotent).

Revision ID: 0004
Revises: 0003
"""

from alembic import op

from backend.database import split_sql

revision = "0004"
down_revision = "0003"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in split_sql(
        """
        CREATE TABLE contacts (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            channel_id bigint NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
            chat_id text NOT NULL,
            phone_number text,
            name text,
            paused_until timestamptz,
            paused_by text,
            opted_out_at timestamptz,
            last_message_at timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            UNIQUE (channel_id, chat_id)
        );

        CREATE TABLE messages (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            channel_id bigint NOT NULL REFERENCES channels (id) ON DELETE CASCADE,
            contact_id bigint NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
            direction text NOT NULL CHECK (direction IN ('in', 'out')),
            author text NOT NULL CHECK (author IN ('customer', 'bot', 'operator', 'owner')),
            provider_message_id text,
            idempotency_key text UNIQUE,
            text text NOT NULL DEFAULT '',
            status text NOT NULL,
            reason text,
            error text,
            sources jsonb,
            trace jsonb,
            degraded boolean NOT NULL DEFAULT false,
            reply_to_id bigint REFERENCES messages (id) ON DELETE SET NULL,
            provider_timestamp timestamptz,
            created_at timestamptz NOT NULL DEFAULT now(),
            sent_at timestamptz,
            UNIQUE (channel_id, provider_message_id)
        );
        CREATE INDEX messages_contact ON messages (contact_id, id);
        CREATE INDEX messages_created ON messages (created_at);
        """
    ):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE messages, contacts")
