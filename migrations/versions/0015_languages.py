"""Languages: each contact's language (and who set it), and the languages each assistant serves.

`contacts.language` is an ISO 639-1 code, NULL until a confident detection or an operator sets it;
`language_source` says which ('operator' is never overwritten by detection; NULL gives it back to detection).
`assistants.languages` lists the codes it serves, its main language first; empty means automatic (its documents'
languages, then English). `assistants.language` stays the full-text configuration old API clients set.

Revision ID: 0015
Revises: 0014
"""

from alembic import op

from backend.database import split_sql

revision = "0015"
down_revision = "0014"
branch_labels = None
depends_on = None


def upgrade() -> None:
    for statement in split_sql(
        """
        ALTER TABLE contacts
            ADD COLUMN language text,
            ADD COLUMN language_source text CHECK (language_source IN ('detected', 'operator')),
            ADD COLUMN language_set_at timestamptz,
            ADD CONSTRAINT contacts_language_code CHECK (language ~ '^[a-z]{2}$'),
            ADD CONSTRAINT contacts_language_source CHECK ((language IS NULL) = (language_source IS NULL));

        ALTER TABLE assistants ADD COLUMN languages text[] NOT NULL DEFAULT '{}';
        """
    ):
        op.execute(statement)


def downgrade() -> None:
    for statement in split_sql(
        """
        ALTER TABLE assistants DROP COLUMN languages;
        ALTER TABLE contacts DROP COLUMN language_set_at, DROP COLUMN language_source, DROP COLUMN language;
        """
    ):
        op.execute(statement)
