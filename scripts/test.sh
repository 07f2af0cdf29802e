#!/usr/bin/env bash
# Set up, then run the whole test suite (real PostgreSQL, fakes of external services).
set -euo pipefail
cd "$(dirname "$0")/.."
scripts/setup.sh
# Debian packages the tests drive: Chromium (the browser test) and espeak-ng (the speech of the voice-note
# tests). Installed when we can (root or sudo), with one `apt-get update` for both.
missing=""
command -v chromium >/dev/null 2>&1 || missing="$missing chromium"
command -v espeak-ng >/dev/null 2>&1 || missing="$missing espeak-ng"
if [ -n "$missing" ]; then
  as_root=""
  [ "$(id -u)" = 0 ] || as_root="sudo"
  if [ -z "$as_root" ] || command -v sudo >/dev/null 2>&1; then
    # shellcheck disable=SC2086 # word splitting of the package list is wanted
    ($as_root apt-get update -qq && $as_root apt-get install -y -qq $missing >/dev/null) || echo "warning: could not install$missing"
  else
    echo "warning: not root and no sudo: install$missing yourself"
  fi
fi
export HF_HUB_OFFLINE=1 TRANSFORMERS_OFFLINE=1 PATH="$PWD/.venv/bin:$PATH"
exec .venv/bin/python -m pytest "$@"
