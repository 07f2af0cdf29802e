"""`python -m backend`: serve the API and webhooks (and, by default, run the workers)."""

from __future__ import annotations

import sys

from backend.app import create_app
from backend.security import PASSWORD_MIN_LENGTH
from backend.services.operators import default_password_exposed, first_admin_password_problem
from backend.settings import Settings


def main() -> None:
    settings = Settings()
    if weak := first_admin_password_problem(settings):
        sys.exit(f"ADMIN_PASSWORD {weak}: set one of your own (at least {PASSWORD_MIN_LENGTH} characters).")
    if default_password_exposed(settings):
        sys.exit(
            f"Refusing to listen on {settings.host} with the documented default ADMIN_PASSWORD: anyone who can "
            "reach this address could sign in as admin. Set ADMIN_PASSWORD to a password of your own (or HOST=127.0.0.1)."
        )
    app = create_app(settings)
    app.run(host=settings.host, port=settings.port, single_process=True, access_log=False, motd=False)


if __name__ == "__main__":
    main()
