#!/usr/bin/env bash
# Fetch llama.cpp's real vocabulary files (models/ggml-vocab-*.gguf with their
# .inp/.out test cases) and chat templates from the llama-cpp-python source
# package on PyPI, unpack them into a cache directory, and print that directory.
# Nothing is built; the package is ~77 MB. Re-runs reuse the cache.
set -euo pipefail
V=0.3.36
CACHE=${HEARTH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hearth}/llama-cpp-python-$V
if [ ! -f "$CACHE/models/.complete" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  python3 -m pip install -q cmake scikit-build-core >&2
  python3 -m pip download -q --no-deps --no-build-isolation -d "$tmp" "llama-cpp-python==$V" >&2
  tar xzf "$tmp/llama_cpp_python-$V.tar.gz" -C "$tmp" "llama_cpp_python-$V/vendor/llama.cpp/models"
  mkdir -p "$CACHE"
  rm -rf "$CACHE/models"
  mv "$tmp/llama_cpp_python-$V/vendor/llama.cpp/models" "$CACHE/models"
  touch "$CACHE/models/.complete"
fi
echo "$CACHE/models"
