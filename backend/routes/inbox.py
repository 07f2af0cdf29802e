"""The "Needs a person" inbox: customers waiting for a person, the longest waiting first."""

from __future__ import annotations

from sanic import Blueprint, Request

from backend.http import ok, parse_query
from backend.openapi import doc
from backend.routes.deps import db_of
from backend.services import inbox as service
from backend.services.inbox import Inbox, InboxQuery

bp = Blueprint("inbox", url_prefix="/api/inbox")


@bp.get("")
@doc(
    "Customers waiting for a person (asked for one, got the fallback answer, or a message failed), longest waiting first",
    query=InboxQuery,
    response=Inbox,
)
async def get_inbox(request: Request):
    return ok(await service.inbox(db_of(request), parse_query(request, InboxQuery)))
