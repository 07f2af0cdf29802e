#!/usr/bin/env bash
# Set up, then run the whole product locally (backend + workers + console) on embedded defaults.
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PATH="$PWD/.venv/bin:$PATH"
exec .venv/bin/honcho -f Procfile start web console
