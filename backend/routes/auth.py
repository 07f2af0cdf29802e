"""Operator login."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, Request

from backend.http import ok, parse_body
from backend.openapi import doc
from backend.routes.deps import db_of, settings_of
from backend.services import operators

bp = Blueprint("auth", url_prefix="/api/auth")


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class TokenOut(BaseModel):
    token: str
    token_type: str = "bearer"


@bp.post("/login")
@doc("Log in with email and password; returns a bearer token", body=LoginBody, response=TokenOut, public=True)
async def login(request: Request):
    body = parse_body(request, LoginBody)
    token = await operators.login(
        db_of(request),
        settings_of(request),
        email=body.email,
        password=body.password,
        ip=request.remote_addr or request.ip,
    )
    return ok(TokenOut(token=token))


@bp.get("/me")
@doc("The operator the token belongs to")
async def me(request: Request):
    return ok(request.ctx.operator)
