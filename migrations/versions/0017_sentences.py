"""Sentences: each chunk's sentences with their own vectors, embedded at indexing time.

A quoted answer is one to three sentences of the retrieved chunks, chosen by their similarity to the question: with
the vectors stored here the choice is one SQL query at question time, and no sentence is embedded while a customer
waits. Each row records the model that embedded it, so a re-embedding with another model can add its rows beside the
old ones and a search only ever compares vectors of one model.

Revision ID: 0017
Revises: 0016
"""

from alembic import op

from backend.database import split_sql

revision = "0017"
down_revision = "0016"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in split_sql(
        """
        CREATE TABLE chunk_sentences (
            chunk_id bigint NOT NULL REFERENCES chunks (id) ON DELETE CASCADE,
            position integer NOT NULL,
            text text NOT NULL,
            embedding vector(384) NOT NULL,
            embedding_model text NOT NULL,
            PRIMARY KEY (chunk_id, embedding_model, position)
        );
        """
    ):
        op.execute(statement)


def downgrade() -> None:
    op.execute("DROP TABLE chunk_sentences")
