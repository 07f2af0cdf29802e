"""Operators: the bootstrapped admin, logging in and out, passwords, who may do what."""

from __future__ import annotations

import ipaddress

import structlog
from databases import Database

from backend.errors import Conflict, Invalid, NotFound, TooManyRequests, Unauthorized
from backend.security import DEFAULT_ADMIN_PASSWORD, PASSWORD_MIN_LENGTH, Passwords, issue_token, read_token
from backend.settings import Settings
from backend.store import operators as store
from backend.store.operators import OperatorRow

log = structlog.get_logger(__name__)


def default_password_exposed(settings: Settings) -> bool:
    """The documented default admin password on an address other machines can reach."""
    if settings.admin_password.get_secret_value() != DEFAULT_ADMIN_PASSWORD:
        return False
    try:
        return not ipaddress.ip_address(settings.host).is_loopback
    except ValueError:
        return settings.host != "localhost"


# Passwords every guesser tries first; the documented default stays allowed on loopback (the quick start), never elsewhere.
KNOWN_PASSWORDS = frozenset(
    {"password", "password1", "12345678", "123456789", "1234567890", "qwertyui", "admin123", "administrator"}
)


def password_problem(password: str) -> str | None:
    """What is wrong with a password (any operator's, the first admin's included), or None."""
    if len(password) < PASSWORD_MIN_LENGTH:
        return f"is shorter than {PASSWORD_MIN_LENGTH} characters"
    if password.casefold() in KNOWN_PASSWORDS:
        return "is one of the passwords every guesser tries first"
    return None


def first_admin_password_problem(settings: Settings) -> str | None:
    return password_problem(settings.admin_password.get_secret_value())


def _check_password(password: str) -> None:
    if problem := password_problem(password):
        raise Invalid(f"This password {problem}; choose another.", code="weak_password")


async def bootstrap_admin(db: Database, passwords: Passwords, settings: Settings) -> None:
    """Create the first admin from ADMIN_EMAIL/ADMIN_PASSWORD unless that account exists."""
    if await store.find_operator_by_email(db, settings.admin_email):
        return
    created = await store.insert_operator_if_absent(
        db, settings.admin_email, await passwords.hash(settings.admin_password.get_secret_value()), "admin"
    )
    if created:
        log.info("operators.admin_created", email=settings.admin_email)


async def list_operators(db: Database) -> list[OperatorRow]:
    return await store.list_operators(db)


async def create_operator(db: Database, passwords: Passwords, email: str, password: str, role: str) -> OperatorRow:
    _check_password(password)
    created = await store.insert_operator_if_absent(db, email, await passwords.hash(password), role)
    if created is None:
        raise Conflict(f"An operator with email {email} already exists.", code="operator_exists")
    log.info("operators.created", operator=created.id, role=role)
    return created


def _token(settings: Settings, operator: OperatorRow) -> str:
    return issue_token(
        settings.secret_key.get_secret_value(),
        operator_id=operator.id,
        version=operator.token_version,
        ttl_seconds=settings.token_ttl_minutes * 60,
    )


def client_key(ip: str) -> str:
    """Whom the per-client limit counts: an IPv4 address, or an IPv6 address's /64 (one customer line holds a whole
    /64, so counting single IPv6 addresses would let one machine rotate through limitless fresh ones)."""
    try:
        address = ipaddress.ip_address(ip.removeprefix("[").removesuffix("]"))  # Sanic writes a forwarded IPv6 in brackets
    except ValueError:
        return ip
    if address.version == 4:
        return str(address)
    if address.ipv4_mapped is not None:
        return str(address.ipv4_mapped)
    return str(ipaddress.ip_network(f"{address}/64", strict=False))


async def _checked(
    db: Database, passwords: Passwords, settings: Settings, operator: OperatorRow | None, *, email: str, password: str, ip: str
) -> bool:
    """Check a password under the login throttle: the attempt counts as a failure before the
    (costly) check runs, so parallel guesses cannot outrun the limit."""
    client = client_key(ip)
    attempt = await store.reserve_login_attempt(
        db,
        email,
        client,
        window_seconds=settings.login_window_seconds,
        max_per_account=settings.login_max_failures,
        max_per_client=settings.login_max_failures_per_client,
        max_per_account_anywhere=settings.login_max_failures_per_account,
    )
    if attempt is None:
        log.info("auth.login_throttled", email=email, ip=ip)
        raise TooManyRequests(
            "Too many failed logins; wait a few minutes and try again.",
            details={"retry_after_seconds": settings.login_window_seconds},
        )
    if not await passwords.verify(operator.password_hash if operator else None, password):
        log.info("auth.login_failed", email=email, ip=ip)
        return False
    await store.login_succeeded(db, attempt, email, client)
    return True


async def login(db: Database, passwords: Passwords, settings: Settings, *, email: str, password: str, ip: str) -> str:
    operator = await store.find_operator_by_email(db, email)
    if not await _checked(db, passwords, settings, operator, email=email, password=password, ip=ip):
        raise Unauthorized("Wrong email or password.", code="bad_credentials")
    log.info("auth.login", operator=operator.id)
    return _token(settings, operator)


async def authenticate(db: Database, settings: Settings, token: str) -> OperatorRow:
    """The operator a bearer token belongs to, as stored now: deleted accounts and revoked tokens fail."""
    claims = read_token(settings.secret_key.get_secret_value(), token)
    operator = await store.find_operator(db, claims.operator_id)
    if operator is None or operator.token_version != claims.version:
        raise Unauthorized("This session has ended; log in again.", code="token_revoked")
    return operator


async def logout(db: Database, operator: OperatorRow) -> None:
    """End every session of this operator, in every browser."""
    await store.update_operator(db, operator.id, revoke=True)
    log.info("auth.logout", operator=operator.id)


async def change_own_password(
    db: Database, passwords: Passwords, settings: Settings, operator: OperatorRow, *, current: str, new: str, ip: str
) -> str:
    """Change the password (the current one is asked again); other sessions end, this one gets a new token."""
    if not await _checked(db, passwords, settings, operator, email=operator.email, password=current, ip=ip):
        raise Invalid("The current password is wrong.", code="wrong_password")
    if new == current:
        raise Invalid("The new password is the same as the current one.", code="same_password")
    _check_password(new)
    changed = await store.update_operator(db, operator.id, password_hash=await passwords.hash(new))
    log.info("auth.password_changed", operator=operator.id)
    return _token(settings, changed)


async def set_password(db: Database, passwords: Passwords, email: str, password: str) -> OperatorRow:
    """An administrator's reset (console or command line); the operator's sessions end."""
    _check_password(password)
    operator = await store.find_operator_by_email(db, email)
    if operator is None:
        raise NotFound(f"No operator with email {email}.", code="operator_not_found")
    changed = await store.update_operator(db, operator.id, password_hash=await passwords.hash(password))
    log.info("operators.password_reset", operator=operator.id)
    return changed


async def update_operator(
    db: Database, passwords: Passwords, actor: OperatorRow, operator_id: int, *, role: str | None, password: str | None
) -> OperatorRow:
    target = await store.find_operator(db, operator_id)
    if target is None:
        raise NotFound(f"Operator {operator_id} does not exist.", code="operator_not_found")
    if role is not None and role != "admin" and target.role == "admin":
        await _keep_an_admin(db, target, "demote")
    changed = await store.update_operator(
        db,
        operator_id,
        role=role,
        password_hash=await passwords.hash(password) if password else None,
        # A changed role takes effect at once anyway (roles are read per request), but a demoted
        # admin's open console should start again from the login page.
        revoke=role is not None and role != target.role,
    )
    log.info("operators.updated", operator=operator_id, by=actor.id, role=role, password=bool(password))
    return changed


async def delete_operator(db: Database, actor: OperatorRow, operator_id: int) -> None:
    if operator_id == actor.id:
        raise Invalid("You cannot delete your own account.", code="cannot_delete_self")
    target = await store.find_operator(db, operator_id)
    if target is None:
        raise NotFound(f"Operator {operator_id} does not exist.", code="operator_not_found")
    if target.role == "admin":
        await _keep_an_admin(db, target, "delete")
    await store.delete_operator(db, operator_id)
    log.info("operators.deleted", operator=operator_id, by=actor.id)


async def _keep_an_admin(db: Database, target: OperatorRow, action: str) -> None:
    if await store.count_admins(db) <= 1:
        raise Invalid(f"You cannot {action} the only admin; make another admin first.", code="last_admin")
