"""`python -m backend`: serve the API and webhooks (and, by default, run the workers)."""

from __future__ import annotations

import sys

from backend.app import create_app
from backend.services.operators import default_password_exposed
from backend.settings import Settings


def main() -> None:
    settings = Settings()
    if default_password_exposed(settings):
        sys.exit(
            f"Refusing to listen on {settings.host} with the documented default ADMIN_PASSWORD: anyone who can "
            "reach this address could sign in as admin. Set ADMIN_PASSWORD to a password of your own (or HOST=127.0.0.1)."
        )
    app = create_app(settings)
    app.run(host=settings.host, port=settings.port, single_process=True, access_log=False, motd=False)


if __name__ == "__main__":
    main()
