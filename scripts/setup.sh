#!/usr/bin/env bash
# Create .venv and install everything (idempotent). Used by `make run`, `make test` and CI.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(cat requirements.txt requirements-dev.txt | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  # torch alone first, so a CPU build is chosen before anything else asks for torch.
  .venv/bin/pip install -q "$(grep '^torch==' requirements.txt)"
  .venv/bin/pip install -q -r requirements-dev.txt
  rm -f .venv/.installed-*
  touch "$stamp"
fi
