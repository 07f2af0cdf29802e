"""SQL for operators and login attempts."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import datetime

from databases import Database

_COLUMNS = "id, email, role, password_hash, token_version, created_at"


@dataclass(frozen=True)
class OperatorRow:
    id: int
    email: str
    role: str
    password_hash: str
    token_version: int
    created_at: datetime


def _operator(record) -> OperatorRow | None:  # noqa: ANN001 - databases record
    return OperatorRow(**dict(record._mapping)) if record else None


async def find_operator_by_email(db: Database, email: str) -> OperatorRow | None:
    return _operator(await db.fetch_one(f"SELECT {_COLUMNS} FROM operators WHERE lower(email) = lower(:email)", {"email": email}))


async def find_operator(db: Database, operator_id: int) -> OperatorRow | None:
    return _operator(await db.fetch_one(f"SELECT {_COLUMNS} FROM operators WHERE id = :id", {"id": operator_id}))


async def insert_operator_if_absent(db: Database, email: str, password_hash: str, role: str) -> OperatorRow | None:
    return _operator(
        await db.fetch_one(
            f"""
            INSERT INTO operators (email, password_hash, role) VALUES (:email, :hash, :role)
            ON CONFLICT ((lower(email))) DO NOTHING RETURNING {_COLUMNS}
            """,
            {"email": email, "hash": password_hash, "role": role},
        )
    )


async def list_operators(db: Database) -> list[OperatorRow]:
    return [_operator(r) for r in await db.fetch_all(f"SELECT {_COLUMNS} FROM operators ORDER BY id")]


async def update_operator(
    db: Database, operator_id: int, *, password_hash: str | None = None, role: str | None = None, revoke: bool = False
) -> OperatorRow | None:
    """Change the password and/or role; `revoke` (implied by a new password) ends every token issued so far."""
    return _operator(
        await db.fetch_one(
            f"""
            UPDATE operators SET
                password_hash = coalesce(:hash, password_hash),
                role = coalesce(:role, role),
                token_version = token_version + CASE WHEN :revoke OR :hash IS NOT NULL THEN 1 ELSE 0 END
            WHERE id = :id RETURNING {_COLUMNS}
            """,
            {"id": operator_id, "hash": password_hash, "role": role, "revoke": revoke},
        )
    )


async def delete_operator(db: Database, operator_id: int) -> bool:
    return await db.fetch_val("DELETE FROM operators WHERE id = :id RETURNING id", {"id": operator_id}) is not None


async def count_admins(db: Database) -> int:
    return await db.fetch_val("SELECT count(*) FROM operators WHERE role = 'admin'")


async def reserve_login_attempt(
    db: Database, email: str, ip: str, *, window_seconds: int, max_per_account: int, max_per_client: int
) -> int | None:
    """Count this attempt as a failure before the password is checked, unless a limit is reached (None).

    Serialised per client address, so parallel guesses cannot all pass the check before any is
    recorded. A success (`login_succeeded`) turns it around and clears that account's failures.
    Attempts older than the window are deleted here: nothing else needs them.
    """
    async with db.transaction():
        await db.execute("SELECT pg_advisory_xact_lock(hashtextextended('login:' || :ip, 0))", {"ip": ip})
        await db.execute(
            "DELETE FROM login_attempts WHERE at < now() - make_interval(secs => :window)", {"window": window_seconds}
        )
        counts = await db.fetch_one(
            """
            SELECT count(*) FILTER (WHERE lower(email) = lower(:email)) AS account, count(*) AS client
            FROM login_attempts WHERE ip = :ip AND NOT succeeded
            """,
            {"email": email, "ip": ip},
        )
        if counts._mapping["account"] >= max_per_account or counts._mapping["client"] >= max_per_client:
            return None
        return await db.fetch_val(
            "INSERT INTO login_attempts (email, ip, succeeded) VALUES (:email, :ip, false) RETURNING id",
            {"email": email, "ip": ip},
        )


async def login_succeeded(db: Database, attempt_id: int, email: str, ip: str) -> None:
    async with db.transaction():
        await db.execute("UPDATE login_attempts SET succeeded = true WHERE id = :id", {"id": attempt_id})
        await db.execute(
            "DELETE FROM login_attempts WHERE lower(email) = lower(:email) AND ip = :ip AND NOT succeeded",
            {"email": email, "ip": ip},
        )
