"""Operator accounts (admins manage them)."""

from __future__ import annotations

from datetime import datetime
from typing import Literal

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, Request
from sanic.response import empty

from backend.errors import Conflict, Invalid, NotFound
from backend.http import ok, parse_body, require_admin
from backend.openapi import doc
from backend.routes.deps import db_of
from backend.services import operators as service
from backend.store import operators as store

bp = Blueprint("operators", url_prefix="/api/operators")


class OperatorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    password: str = Field(min_length=8, max_length=1024)
    role: Literal["admin", "operator"] = "operator"


class Operator(BaseModel):
    id: int
    email: str
    role: str
    created_at: datetime


class OperatorList(BaseModel):
    items: list[Operator]


@bp.get("")
@doc("List operator accounts (admin)", response=OperatorList)
async def list_operators(request: Request):
    require_admin(request)
    return ok({"items": [Operator(**r) for r in await store.list_operators(db_of(request))]})


@bp.post("")
@doc("Create an operator account (admin)", body=OperatorIn, response=Operator, status=201)
async def create_operator(request: Request):
    require_admin(request)
    body = parse_body(request, OperatorIn)
    db = db_of(request)
    if not await service.create_operator(db, body.email, body.password, body.role):
        raise Conflict(f"An operator with email {body.email} already exists.", code="operator_exists")
    created = await store.find_operator_by_email(db, body.email)
    return ok(Operator(**{k: v for k, v in created.items() if k != "password_hash"}), 201)


@bp.delete("/<operator_id:int>")
@doc("Delete an operator account (admin)", status=204)
async def delete_operator(request: Request, operator_id: int):
    require_admin(request)
    if operator_id == request.ctx.operator["id"]:
        raise Invalid("You cannot delete your own account.", code="cannot_delete_self")
    if not await store.delete_operator(db_of(request), operator_id):
        raise NotFound(f"Operator {operator_id} does not exist.", code="operator_not_found")
    return empty()
