"""SQL for message_reactions: one reaction per customer and message (WhatsApp keeps only the latest)."""

from __future__ import annotations

from databases import Database

from backend.database import execute, fetchval


async def set_reaction(
    db: Database, channel_id: int, provider_message_id: str, chat_id: str, sender_id: str, emoji: str, sentiment: str | None
) -> int | None:
    """Put (or, with emoji "", take back) a reaction on one of our outbound messages; its id, or None when
    the message reacted to is not ours (a customer's own message, or one we never stored) or was sent to
    another chat (only the contact a reply went to judges it)."""
    message_id = await fetchval(
        db,
        """
        SELECT m.id FROM messages m JOIN contacts c ON c.id = m.contact_id
        WHERE m.channel_id = $1 AND m.provider_message_id = $2 AND m.direction = 'out' AND c.chat_id = $3
        """,
        channel_id,
        provider_message_id,
        chat_id,
    )
    if message_id is None:
        return None
    if emoji:
        await execute(
            db,
            """
            INSERT INTO message_reactions (message_id, sender_id, emoji, sentiment) VALUES ($1, $2, $3, $4)
            ON CONFLICT (message_id, sender_id) DO UPDATE
                SET emoji = EXCLUDED.emoji, sentiment = EXCLUDED.sentiment, created_at = now()
            """,
            message_id,
            sender_id,
            emoji,
            sentiment,
        )
    else:
        await execute(db, "DELETE FROM message_reactions WHERE message_id = $1 AND sender_id = $2", message_id, sender_id)
    return message_id
