"""OpenAPI 3.1 document built from the pydantic models that the routes declare with `@doc`.

We keep this small builder instead of sanic-ext: the routes already validate with pydantic,
and all we need is a document generated from those same models.
"""

from __future__ import annotations

import re
from collections.abc import Callable
from typing import Any

from pydantic import BaseModel
from sanic import Sanic

ERROR_SCHEMA = {
    "type": "object",
    "required": ["error"],
    "properties": {
        "error": {
            "type": "object",
            "required": ["code", "message"],
            "properties": {"code": {"type": "string"}, "message": {"type": "string"}, "details": {}},
        }
    },
}


def doc(
    summary: str,
    *,
    body: type[BaseModel] | None = None,
    query: type[BaseModel] | None = None,
    response: type[BaseModel] | None = None,
    multipart: dict[str, Any] | None = None,
    status: int = 200,
    public: bool = False,
    admin: bool = False,
) -> Callable:
    """Attach what the OpenAPI document says about a handler, and who may call it: anyone
    (`public`), any operator (the default) or an admin only (`admin`, enforced by the app)."""

    def mark(handler: Callable) -> Callable:
        handler.__openapi__ = {
            "summary": summary,
            "body": body,
            "query": query,
            "response": response,
            "multipart": multipart,
            "status": status,
            "public": public,
            "admin": admin,
        }
        return handler

    return mark


def needs_admin(handler: Callable | None) -> bool:
    return bool(getattr(handler, "__openapi__", {}).get("admin"))


def _schema(model: type[BaseModel], components: dict[str, Any]) -> dict[str, Any]:
    schema = model.model_json_schema(ref_template="#/components/schemas/{model}")
    for name, sub in schema.pop("$defs", {}).items():
        components[name] = sub
    components[model.__name__] = schema
    return {"$ref": f"#/components/schemas/{model.__name__}"}


def build_openapi(app: Sanic) -> dict[str, Any]:
    paths: dict[str, Any] = {}
    components: dict[str, Any] = {"Error": ERROR_SCHEMA}
    for route in app.router.routes:
        meta = getattr(route.handler, "__openapi__", None)
        if meta is None:
            continue
        path = "/" + re.sub(r"<(\w+)(?::[^>]*)?>", r"{\1}", route.path).lstrip("/")
        params = [
            {
                "name": p.name,
                "in": "path",
                "required": True,
                "schema": {"type": "integer"} if p.cast is int else {"type": "string"},
            }
            for p in route.params.values()
        ]
        if meta["query"] is not None:
            for name, field in meta["query"].model_fields.items():
                prop = meta["query"].model_json_schema()["properties"][name]
                params.append({"name": name, "in": "query", "required": field.is_required(), "schema": prop})
        errors = {
            "default": {
                "description": "Error",
                "content": {"application/json": {"schema": {"$ref": "#/components/schemas/Error"}}},
            }
        }
        ok: dict[str, Any] = {"description": "OK"}
        if meta["response"] is not None:
            ok["content"] = {"application/json": {"schema": _schema(meta["response"], components)}}
        operation: dict[str, Any] = {
            "summary": meta["summary"],
            "operationId": route.name.split(".")[-1],
            "parameters": params,
            "responses": {str(meta["status"]): ok, **errors},
        }
        if not meta["public"]:
            operation["security"] = [{"bearer": []}]
            operation["x-required-role"] = "admin" if meta["admin"] else "operator"
        if meta["body"] is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"application/json": {"schema": _schema(meta["body"], components)}},
            }
        elif meta["multipart"] is not None:
            operation["requestBody"] = {
                "required": True,
                "content": {"multipart/form-data": {"schema": meta["multipart"]}},
            }
        for method in route.methods:
            if method in {"HEAD", "OPTIONS"}:
                continue
            paths.setdefault(path, {})[method.lower()] = operation
    return {
        "openapi": "3.1.0",
        "info": {"title": "WhatsApp assistant backend", "version": "1.0.0"},
        "paths": paths,
        "components": {
            "schemas": components,
            "securitySchemes": {"bearer": {"type": "http", "scheme": "bearer", "bearerFormat": "JWT"}},
        },
    }
