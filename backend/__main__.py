"""`python -m backend`: serve the API and webhooks (and, by default, run the workers)."""

from __future__ import annotations

from backend.app import create_app
from backend.settings import Settings


def main() -> None:
    settings = Settings()
    app = create_app(settings)
    app.run(host=settings.host, port=settings.port, single_process=True, access_log=False, motd=False)


if __name__ == "__main__":
    main()
