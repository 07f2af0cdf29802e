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

        -- Inbound: pending (waiting for its reply: the burst buffer) -> answered | ignored | failed.
        -- Outbound: pending -> sending (committed before the gateway call) -> sent -> delivered/read,
        -- or failed, or stale (a newer customer message made the draft obsolete).
        CREATE TABLE messages (
            id bigint GENERATED ALWAYS AS IDENTITY PRIMARY KEY,
            -- The contact's channel, copied: no foreign key (the contact's cascades), since checking it
            -- key-share-locked the one channel row from every concurrent webhook's insert.
            channel_id bigint NOT NULL,
            contact_id bigint NOT NULL REFERENCES contacts (id) ON DELETE CASCADE,
            direction text NOT NULL CHECK (direction IN ('in', 'out')),
            author text NOT NULL CHECK (author IN ('customer', 'bot', 'operator', 'owner')),
            provider_message_id text,
            idempotency_key text,  -- outbound only: unique among those that have one (index below)
            text text NOT NULL DEFAULT '',
            status text NOT NULL CHECK (status IN (
                'pending', 'answered', 'ignored', 'sending', 'sent', 'delivered', 'read', 'played', 'failed', 'stale')),
            reason text,
            error text,
            sources jsonb,
            trace jsonb,
            degraded boolean NOT NULL DEFAULT false,
            reply_to_id bigint REFERENCES messages (id) ON DELETE SET NULL,
            provider_timestamp timestamptz,
            latency_ms integer,
            attempts integer NOT NULL DEFAULT 0,
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now(),
            sent_at timestamptz,
            UNIQUE (channel_id, provider_message_id)
        );
        CREATE UNIQUE INDEX messages_idempotency_key ON messages (idempotency_key) WHERE idempotency_key IS NOT NULL;
        CREATE INDEX messages_contact ON messages (contact_id, id);
        CREATE INDEX messages_created ON messages (created_at);
        -- Rate limits count recent bot replies per channel and per contact.
        CREATE INDEX messages_recent_out ON messages (channel_id, created_at) WHERE direction = 'out';
        CREATE INDEX messages_waiting ON messages (contact_id, id) WHERE status IN ('pending', 'sending');
        -- Ingest asks "is a reply job for this contact already queued?" on every message.
        CREATE INDEX jobs_serial_queued ON jobs (serial_key) WHERE status = 'queued';
        """
    ):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS jobs_serial_queued")
    op.execute("DROP TABLE messages, contacts")
