"""SQL for operators and login attempts."""

from __future__ import annotations

from databases import Database


async def find_operator_by_email(db: Database, email: str) -> dict | None:
    row = await db.fetch_one(
        "SELECT id, email, role, password_hash, created_at FROM operators WHERE lower(email) = lower(:email)", {"email": email}
    )
    return dict(row._mapping) if row else None


async def insert_operator_if_absent(db: Database, email: str, password_hash: str, role: str) -> bool:
    inserted = await db.fetch_val(
        """
        INSERT INTO operators (email, password_hash, role) VALUES (:email, :hash, :role)
        ON CONFLICT ((lower(email))) DO NOTHING RETURNING id
        """,
        {"email": email, "hash": password_hash, "role": role},
    )
    return inserted is not None


async def count_recent_failures(db: Database, email: str, ip: str, window_seconds: int) -> int:
    return await db.fetch_val(
        """
        SELECT count(*) FROM login_attempts
        WHERE lower(email) = lower(:email) AND ip = :ip AND NOT succeeded
          AND at > now() - make_interval(secs => :window)
        """,
        {"email": email, "ip": ip, "window": window_seconds},
    )


async def record_login_attempt(db: Database, email: str, ip: str, succeeded: bool) -> None:
    await db.execute(
        "INSERT INTO login_attempts (email, ip, succeeded) VALUES (:email, :ip, :ok)",
        {"email": email, "ip": ip, "ok": succeeded},
    )


async def list_operators(db: Database) -> list[dict]:
    from backend.database import rows

    return rows(await db.fetch_all("SELECT id, email, role, created_at FROM operators ORDER BY id"))


async def delete_operator(db: Database, operator_id: int) -> bool:
    return await db.fetch_val("DELETE FROM operators WHERE id = :id RETURNING id", {"id": operator_id}) is not None
