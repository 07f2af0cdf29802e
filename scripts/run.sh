#!/usr/bin/env bash
# Set up, then run the whole product locally (backend + workers + console) on embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PATH="$PWD/.venv/bin:$PATH"
cat <<EOF
Starting the backend and the console (Ctrl-C stops both):
  console      http://${CONSOLE_HOST:-127.0.0.1}:${CONSOLE_PORT:-8501}  (log in with ADMIN_EMAIL / ADMIN_PASSWORD; default admin@example.com / admin-password)
  backend API  http://${HOST:-127.0.0.1}:${PORT:-8000}  (/openapi.json, /readyz, /metrics)
EOF
# honcho hands each process a PORT counting up from -p (its own default is 5000): the backend,
# first in the Procfile, gets the port the console expects (BACKEND_URL).
exec .venv/bin/honcho -f Procfile start -p "${PORT:-8000}" web console
