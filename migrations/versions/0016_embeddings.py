"""Embeddings: re-embedding documents with another model while the old vectors still answer; chunk languages.

A change of embedding model fills `embedding_next` (with the model named in `embedding_next_model`) chunk by
chunk in background jobs; searches keep using `embedding` and the old model until every chunk of the assistant
has its new vector, then one transaction swaps them in. Each chunk's `language` (its full-text configuration)
comes from its own text; the index on it lets the lexical search find an assistant's languages in a few probes.

Revision ID: 0016
Revises: 0015
"""

from alembic import op

from backend.database import split_sql

revision = "0016"
down_revision = "0015"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in split_sql(
        """
        ALTER TABLE chunks ADD COLUMN embedding_next vector(384), ADD COLUMN embedding_next_model text;
        CREATE INDEX chunks_assistant_language ON chunks (assistant_id, language);
        """
    ):
        op.execute(statement)


def downgrade() -> None:
    for statement in split_sql(
        """
        DROP INDEX chunks_assistant_language;
        ALTER TABLE chunks DROP COLUMN embedding_next, DROP COLUMN embedding_next_model;
        """
    ):
        op.execute(statement)
