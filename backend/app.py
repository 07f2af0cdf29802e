"""The app factory: `create_app(settings)` builds the whole backend."""

from __future__ import annotations

import time

import asyncpg
import structlog
from pydantic import ValidationError
from sanic import Request, Sanic
from sanic.exceptions import SanicException
from sanic.response import HTTPResponse
from sanic.response import json as json_response

from backend import lifecycle
from backend.database import is_connection_error
from backend.errors import AppError, Forbidden, NotFound, Unauthorized
from backend.http import MAX_ID, request_id
from backend.logging import configure_logging
from backend.openapi import needs_admin
from backend.routes import blueprints
from backend.routes.deps import db_of
from backend.security import Passwords
from backend.services import operators
from backend.settings import Settings

log = structlog.get_logger(__name__)

# Routes anyone may call; every other /api route needs an operator token.
PUBLIC_API_PATHS = {"/api/auth/login"}


def create_app(settings: Settings | None = None, *, name: str = "backend") -> Sanic:
    settings = settings or Settings()
    configure_logging(settings.log_level, settings.log_format)
    app = Sanic(name, configure_logging=False)
    # Sanic reads a body before any middleware runs, so this limit is what an anonymous caller
    # can make us hold. Uploads and webhooks are streamed and read only after their caller is
    # known, each against its own limit.
    app.config.REQUEST_MAX_SIZE = settings.max_request_kb * 1024
    # Which address a request comes from, behind proxies (the login throttle counts per address).
    app.config.PROXIES_COUNT = settings.proxies_count
    app.config.FORWARDED_SECRET = settings.forwarded_secret.get_secret_value() or None
    app.config.FALLBACK_ERROR_FORMAT = "json"
    app.config.KEEP_ALIVE_TIMEOUT = 30
    # `request.id`: the caller's X-Request-ID, or a new one; logs, jobs and the response carry it.
    app.config.REQUEST_ID_HEADER = "X-Request-ID"
    app.ctx.settings = settings
    app.ctx.db = None
    app.ctx.not_ready_reason = "starting"
    app.ctx.started_at = time.time()
    app.ctx.passwords = Passwords()

    for bp in blueprints():
        app.blueprint(bp)

    app.register_middleware(_bind_request_id, "request")
    app.register_middleware(_authenticate, "request")
    app.register_middleware(_check_path_ids, "request")
    app.register_middleware(_add_request_id_header, "response")
    for exception, respond in ERROR_RESPONSES:
        app.error_handler.add(exception, respond)

    app.register_listener(lifecycle.before_start, "before_server_start")
    app.register_listener(lifecycle.after_stop, "after_server_stop")
    return app


async def _bind_request_id(request: Request) -> None:
    structlog.contextvars.clear_contextvars()
    structlog.contextvars.bind_contextvars(request_id=request_id(request))


async def _authenticate(request: Request) -> None:
    """Who calls, looked up on every request (a deleted operator or a revoked token stops at once),
    and whether their role may call this route (`@doc(admin=True)` marks what needs an admin)."""
    request.ctx.operator = None
    if not request.path.startswith("/api/") or request.path in PUBLIC_API_PATHS:
        return
    if request.method == "OPTIONS":
        return
    header = request.headers.get("authorization", "")
    scheme, _, token = header.partition(" ")
    if scheme.lower() != "bearer" or not token.strip():
        raise Unauthorized("Log in first: send 'Authorization: Bearer <token>'.", code="missing_token")
    operator = await operators.authenticate(db_of(request), request.app.ctx.settings, token.strip())
    request.ctx.operator = operator
    if operator.role != "admin" and needs_admin(request.route.handler if request.route else None):
        raise Forbidden("This action needs an admin.")


async def _check_path_ids(request: Request) -> None:
    # A path id beyond bigint can name nothing we store: answer 404 before any query.
    for name, value in (request.match_info or {}).items():
        if isinstance(value, int) and not 0 <= value <= MAX_ID:
            raise NotFound(f"No such {name.removesuffix('_id')}: {value}.", code="not_found")


async def _add_request_id_header(request: Request, response: HTTPResponse) -> None:
    response.headers["x-request-id"] = request_id(request)


# -- Errors: one JSON shape, `{"error": {"code", "message", "details"}}`, registered per exception type
# (Sanic picks the handler of the nearest class in the exception's MRO).


def _error(code: str, message: str, status: int, details: object = None) -> HTTPResponse:
    return json_response({"error": {"code": code, "message": message, "details": details}}, status=status, default=str)


def _app_error(request: Request, exc: AppError) -> HTTPResponse:
    if exc.status >= 500:
        log.warning("request.failed", path=request.path, code=exc.code, error=exc.message)
    return json_response(exc.body(), status=exc.status)


def _invalid(request: Request, exc: ValidationError) -> HTTPResponse:
    return _error("invalid", "Invalid input.", 400, exc.errors(include_url=False, include_input=False))


SANIC_CODES = {404: "not_found", 405: "method_not_allowed", 413: "too_large"}


def _sanic_error(request: Request, exc: SanicException) -> HTTPResponse:
    if exc.status_code >= 500:
        return _unexpected(request, exc)
    message = {404: f"No route for {request.method} {request.path}.", 413: "The request body is too large."}
    return _error(
        SANIC_CODES.get(exc.status_code, "bad_request"),
        message.get(exc.status_code, str(exc) or "Bad request."),
        exc.status_code,
    )


def _unstorable(request: Request, exc: Exception) -> HTTPResponse:
    # Values the database cannot hold (out-of-range numbers, bad characters) that slipped past validation.
    log.warning("request.bad_value", path=request.path, error=type(exc).__name__)
    return _error("invalid", "A value in the request cannot be stored.", 400)


def _unavailable(request: Request, exc: Exception) -> HTTPResponse:
    log.warning("request.unavailable", path=request.path, error=type(exc).__name__)
    return _error("unavailable", "A dependency is unavailable; try again shortly.", 503)


def _unexpected(request: Request, exc: Exception) -> HTTPResponse:
    if is_connection_error(exc):  # many classes (see backend.database), one meaning
        return _unavailable(request, exc)
    log.exception("request.crashed", path=request.path)
    return _error("internal", "Something went wrong on our side.", 500)


ERROR_RESPONSES = (
    (AppError, _app_error),
    (ValidationError, _invalid),
    (SanicException, _sanic_error),
    (asyncpg.DataError, _unstorable),
    (OverflowError, _unstorable),
    (TimeoutError, _unavailable),
    (Exception, _unexpected),
)
