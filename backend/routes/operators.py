"""Operator accounts (admins manage them)."""

from __future__ import annotations

from datetime import datetime
from typing import Annotated, Literal

from pydantic import BaseModel, ConfigDict, Field, model_validator
from sanic import Blueprint, Request
from sanic.response import empty

from backend.errors import Invalid
from backend.http import ok, parse_body
from backend.openapi import doc
from backend.routes.deps import db_of, passwords_of
from backend.security import PASSWORD_MIN_LENGTH
from backend.services import operators as service
from backend.store.operators import OperatorRow

bp = Blueprint("operators", url_prefix="/api/operators")

Password = Annotated[str, Field(min_length=PASSWORD_MIN_LENGTH, max_length=1024)]


class OperatorIn(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=320, pattern=r"^[^@\s]+@[^@\s]+$")
    password: Password
    role: Literal["admin", "operator"] = "operator"


class OperatorPatch(BaseModel):
    model_config = ConfigDict(extra="forbid")
    role: Literal["admin", "operator"] | None = None
    password: Password | None = None

    @model_validator(mode="after")
    def _something(self) -> OperatorPatch:
        if self.role is None and self.password is None:
            raise ValueError("give a role or a password")
        return self


class Operator(BaseModel):
    id: int
    email: str
    role: str
    created_at: datetime

    @classmethod
    def of(cls, row: OperatorRow) -> Operator:
        return cls(id=row.id, email=row.email, role=row.role, created_at=row.created_at)


class OperatorList(BaseModel):
    items: list[Operator]


@bp.get("")
@doc("List operator accounts", response=OperatorList, admin=True)
async def list_operators(request: Request):
    return ok({"items": [Operator.of(r) for r in await service.list_operators(db_of(request))]})


@bp.post("")
@doc("Create an operator account", body=OperatorIn, response=Operator, status=201, admin=True)
async def create_operator(request: Request):
    body = parse_body(request, OperatorIn)
    created = await service.create_operator(db_of(request), passwords_of(request), body.email, body.password, body.role)
    return ok(Operator.of(created), 201)


@bp.patch("/<operator_id:int>")
@doc("Change an operator's role or reset their password (their sessions end)", body=OperatorPatch, response=Operator,
     admin=True)  # fmt: skip
async def update_operator(request: Request, operator_id: int):
    body = parse_body(request, OperatorPatch)
    if operator_id == request.ctx.operator.id and body.role is not None and body.role != request.ctx.operator.role:
        raise Invalid("You cannot change your own role; ask another admin.", code="cannot_change_own_role")
    changed = await service.update_operator(
        db_of(request), passwords_of(request), request.ctx.operator, operator_id, role=body.role, password=body.password
    )
    return ok(Operator.of(changed))


@bp.delete("/<operator_id:int>")
@doc("Delete an operator account", status=204, admin=True)
async def delete_operator(request: Request, operator_id: int):
    await service.delete_operator(db_of(request), request.ctx.operator, operator_id)
    return empty()
