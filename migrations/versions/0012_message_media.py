"""A customer's media (voice notes, images, files): what it is, how to fetch it, its bytes, and how a voice note was heard.

Revision ID: 0012
Revises: 0011
"""

from alembic import op

revision = "0012"
down_revision = "0011"
branch_labels = None
depends_on = None


def upgrade() -> None:
    op.execute(
        """
        CREATE TABLE message_media (
            message_id bigint PRIMARY KEY REFERENCES messages (id) ON DELETE CASCADE,
            kind text NOT NULL,
            mimetype text,
            filename text,
            size_bytes bigint,
            handle text NOT NULL DEFAULT '',  -- what the gateway needs to download it (a URL, an id)
            data bytea,                       -- the file, once downloaded (or as the webhook carried it)
            transcript_model text,            -- a voice note's transcript is the message's text
            audio_seconds double precision,
            transcribe_seconds double precision,
            error text,                       -- why it could not be fetched or heard
            created_at timestamptz NOT NULL DEFAULT now(),
            updated_at timestamptz NOT NULL DEFAULT now()
        )
        """
    )
    # Retention finds the old files still held without reading the rest.
    op.execute("CREATE INDEX message_media_kept ON message_media (created_at) WHERE data IS NOT NULL")


def downgrade() -> None:
    op.execute("DROP TABLE message_media")
