"""HTTP routes, one blueprint per area. Handlers stay thin: parse, call a service, shape."""

from __future__ import annotations

from sanic import Blueprint


def blueprints() -> list[Blueprint]:
    from backend.routes import (
        answers,
        assistants,
        auth,
        channels,
        contacts,
        documents,
        gaps,
        golden,
        health,
        inbox,
        models,
        operators,
        sandbox,
        stats,
        status,
        webhooks,
    )

    return [
        module.bp
        for module in (
            health,
            auth,
            operators,
            assistants,
            documents,
            answers,
            models,
            channels,
            sandbox,
            webhooks,
            contacts,
            inbox,
            stats,
            gaps,
            golden,
            status,
        )
    ]
