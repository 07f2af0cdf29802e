"""`python -m backend.admin reset-password EMAIL`: set a forgotten password from the server's shell.

Reads the new password from the terminal (or from stdin when piped); the operator's sessions end.
Uses the same settings as the backend (DATABASE_URL, or the embedded database under DATA_DIR).
"""

from __future__ import annotations

import argparse
import asyncio
import getpass
import sys

from backend.errors import AppError
from backend.lifecycle import connect_with_backoff, resolve_database_url
from backend.security import Passwords
from backend.services.operators import password_problem, set_password
from backend.settings import Settings


def _read_password() -> str:
    if not sys.stdin.isatty():
        return sys.stdin.readline().rstrip("\n")
    first = getpass.getpass("New password: ")
    if getpass.getpass("Again: ") != first:
        sys.exit("The two passwords differ; nothing changed.")
    return first


async def _reset(email: str, password: str) -> None:
    settings = Settings()
    db = await connect_with_backoff(await resolve_database_url(settings), migrate=False, max_size=1)
    passwords = Passwords()
    try:
        operator = await set_password(db, passwords, email, password)
        print(f"Password of {operator.email} ({operator.role}) changed; their sessions have ended.")
    finally:
        passwords.close()
        await db.disconnect()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(prog="python -m backend.admin", description=__doc__.splitlines()[0])
    commands = parser.add_subparsers(dest="command", required=True)
    reset = commands.add_parser("reset-password", help="set a new password for an operator")
    reset.add_argument("email")
    args = parser.parse_args(argv)
    password = _read_password()
    if problem := password_problem(password):
        sys.exit(f"This password {problem}; nothing changed.")
    try:
        asyncio.run(_reset(args.email, password))
    except AppError as exc:
        sys.exit(exc.message)


if __name__ == "__main__":
    main()
