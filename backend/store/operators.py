"""SQL for operators and login attempts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from databases import Database

from backend.database import fetch, fetchrow, fetchval, transaction

_COLUMNS = "id, email, role, password_hash, token_version, created_at"


@dataclass(frozen=True)
class OperatorRow:
    id: int
    email: str
    role: str
    password_hash: str
    token_version: int
    created_at: datetime


def _operator(record) -> OperatorRow | None:  # asyncpg record
    return OperatorRow(**record) if record is not None else None


async def find_operator_by_email(db: Database, email: str) -> OperatorRow | None:
    return _operator(await fetchrow(db, f"SELECT {_COLUMNS} FROM operators WHERE lower(email) = lower($1)", email))


async def find_operator(db: Database, operator_id: int) -> OperatorRow | None:
    return _operator(await fetchrow(db, f"SELECT {_COLUMNS} FROM operators WHERE id = $1", operator_id))


async def insert_operator_if_absent(db: Database, email: str, password_hash: str, role: str) -> OperatorRow | None:
    return _operator(
        await fetchrow(
            db,
            f"""
            INSERT INTO operators (email, password_hash, role) VALUES ($1, $2, $3)
            ON CONFLICT ((lower(email))) DO NOTHING RETURNING {_COLUMNS}
            """,
            email,
            password_hash,
            role,
        )
    )


async def list_operators(db: Database) -> list[OperatorRow]:
    return [_operator(r) for r in await fetch(db, f"SELECT {_COLUMNS} FROM operators ORDER BY id")]


async def update_operator(
    db: Database, operator_id: int, *, password_hash: str | None = None, role: str | None = None, revoke: bool = False
) -> OperatorRow | None:
    """Change the password and/or role; `revoke` (implied by a new password) ends every token issued so far."""
    return _operator(
        await fetchrow(
            db,
            f"""
            UPDATE operators SET
                password_hash = coalesce($2, password_hash),
                role = coalesce($3, role),
                token_version = token_version + CASE WHEN $4 OR $2 IS NOT NULL THEN 1 ELSE 0 END
            WHERE id = $1 RETURNING {_COLUMNS}
            """,
            operator_id,
            password_hash,
            role,
            revoke,
        )
    )


async def delete_operator(db: Database, operator_id: int) -> bool:
    return await fetchval(db, "DELETE FROM operators WHERE id = $1 RETURNING id", operator_id) is not None


async def count_admins(db: Database) -> int:
    return await fetchval(db, "SELECT count(*) FROM operators WHERE role = 'admin'")


async def reserve_login_attempt(
    db: Database,
    email: str,
    ip: str,
    *,
    window_seconds: int,
    max_per_account: int,
    max_per_client: int,
    max_per_account_anywhere: int,
) -> int | None:
    """Count this attempt as a failure before the password is checked, unless a limit is reached (None).

    Serialised per account and per client address, so parallel guesses cannot all pass the check before any is
    recorded. A success (`login_succeeded`) turns it around and clears that account's failures.
    Attempts older than the window are deleted here: nothing else needs them.
    """
    async with transaction(db) as conn:
        # The account's lock first, then the address's: every attempt takes them in this order (no deadlock).
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('login-account:' || lower($1), 0))", email)
        await conn.execute("SELECT pg_advisory_xact_lock(hashtextextended('login:' || $1, 0))", ip)
        await conn.execute("DELETE FROM login_attempts WHERE at < now() - make_interval(secs => $1)", float(window_seconds))
        counts = await conn.fetchrow(
            """
            SELECT count(*) FILTER (WHERE lower(email) = lower($1) AND ip = $2) AS account,
                   count(*) FILTER (WHERE ip = $2) AS client,
                   count(*) FILTER (WHERE lower(email) = lower($1)) AS account_anywhere
            FROM login_attempts WHERE NOT succeeded AND (ip = $2 OR lower(email) = lower($1))
            """,
            email,
            ip,
        )
        if (
            counts["account"] >= max_per_account
            or counts["client"] >= max_per_client
            or counts["account_anywhere"] >= max_per_account_anywhere
        ):
            return None
        return await conn.fetchval(
            "INSERT INTO login_attempts (email, ip, succeeded) VALUES ($1, $2, false) RETURNING id", email, ip
        )


async def login_succeeded(db: Database, attempt_id: int, email: str, ip: str) -> None:
    async with transaction(db) as conn:
        await conn.execute("UPDATE login_attempts SET succeeded = true WHERE id = $1", attempt_id)
        await conn.execute("DELETE FROM login_attempts WHERE lower(email) = lower($1) AND ip = $2 AND NOT succeeded", email, ip)
