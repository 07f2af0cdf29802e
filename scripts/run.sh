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
exec .venv/bin/honcho -f Procfile start web console
