"""Routes: status (to be filled in)."""

from __future__ import annotations

from sanic import Blueprint

bp = Blueprint("status")
