"""The "Needs a person" inbox: contacts remember when a person gave the thread back to the bot,
and the inbox reads small partial indexes of the messages that make a customer wait for a person.

Revision ID: 0008
Revises: 0007
"""

from alembic import op

revision = "0008"
down_revision = "0007"
branch_labels = None
depends_on = None


def upgrade() -> None:
    # An operator's Resume (or the owner's resume command) answers whoever waited for a person:
    # a console resume leaves no message behind, so the moment is kept here.
    op.execute("ALTER TABLE contacts ADD COLUMN handed_back_at timestamptz")
    # What makes a customer wait: a handoff request, a failed message, a fallback answer.
    op.execute(
        """
        CREATE INDEX messages_needs_person ON messages (contact_id, id)
        WHERE (direction = 'in' AND reason = 'handoff_request') OR status = 'failed'
           OR (direction = 'out' AND author = 'bot' AND (trace->>'used_fallback') = 'true')
        """
    )
    # What ends the wait: a person's message (operator in the console, or the owner's phone).
    op.execute("CREATE INDEX messages_by_a_person ON messages (contact_id, created_at) WHERE author IN ('operator', 'owner')")


def downgrade() -> None:
    op.execute("DROP INDEX IF EXISTS messages_by_a_person")
    op.execute("DROP INDEX IF EXISTS messages_needs_person")
    op.execute("ALTER TABLE contacts DROP COLUMN handed_back_at")
