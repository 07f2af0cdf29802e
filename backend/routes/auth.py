"""Logging in and out, the signed-in operator, changing one's password."""

from __future__ import annotations

from pydantic import BaseModel, ConfigDict, Field
from sanic import Blueprint, Request
from sanic.response import empty

from backend.http import ok, parse_body
from backend.openapi import doc
from backend.routes.deps import client_address, db_of, passwords_of, settings_of
from backend.routes.operators import Operator, Password
from backend.services import operators

bp = Blueprint("auth", url_prefix="/api/auth")


class LoginBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    email: str = Field(min_length=3, max_length=320)
    password: str = Field(min_length=1, max_length=1024)


class PasswordChange(BaseModel):
    model_config = ConfigDict(extra="forbid")
    current_password: str = Field(min_length=1, max_length=1024)
    new_password: Password


class TokenOut(BaseModel):
    token: str
    token_type: str = "bearer"
    # How long the token lasts, so the console's cookie that keeps it expires with it.
    expires_in: int = Field(description="Seconds until the token expires")


def _issued(request: Request, token: str) -> TokenOut:
    return TokenOut(token=token, expires_in=settings_of(request).token_ttl_minutes * 60)


@bp.post("/login")
@doc("Log in with email and password; returns a bearer token", body=LoginBody, response=TokenOut, public=True)
async def login(request: Request):
    body = parse_body(request, LoginBody)
    token = await operators.login(
        db_of(request),
        passwords_of(request),
        settings_of(request),
        email=body.email,
        password=body.password,
        ip=client_address(request),
    )
    return ok(_issued(request, token))


@bp.get("/me")
@doc("The operator the token belongs to", response=Operator)
async def me(request: Request):
    return ok(Operator.of(request.ctx.operator))


@bp.post("/logout")
@doc("Log out: every token of this operator stops working, in every browser", status=204)
async def logout(request: Request):
    await operators.logout(db_of(request), request.ctx.operator)
    return empty()


@bp.post("/password")
@doc("Change your password; your other sessions end and this one gets a new token", body=PasswordChange, response=TokenOut)
async def change_password(request: Request):
    body = parse_body(request, PasswordChange)
    token = await operators.change_own_password(
        db_of(request),
        passwords_of(request),
        settings_of(request),
        request.ctx.operator,
        current=body.current_password,
        new=body.new_password,
        ip=client_address(request),
    )
    return ok(_issued(request, token))
