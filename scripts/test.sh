#!/usr/bin/env bash
# Set up, then run the whole test suite (real PostgreSQL, fakes of external services).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
if ! command -v chromium >/dev/null 2>&1; then
  # The browser test drives Debian's Chromium; install it when we can (root or sudo).
  if [ "$(id -u)" = 0 ]; then
    (apt-get update -qq && apt-get install -y -qq chromium >/dev/null) || echo "warning: could not install chromium"
  elif command -v sudo >/dev/null 2>&1; then
    (sudo apt-get update -qq && sudo apt-get install -y -qq chromium >/dev/null) || echo "warning: could not install chromium"
  fi
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PATH="$PWD/.venv/bin:$PATH"
exec .venv/bin/python -m pytest "$@"
