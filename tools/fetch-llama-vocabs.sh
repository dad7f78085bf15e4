#!/usr/bin/env bash
# Fetch llama.cpp's real vocabulary files (models/ggml-vocab-*.gguf with their
# .inp/.out test cases) and chat templates from the llama-cpp-python source
# package on PyPI, unpack them into a cache directory, and print that directory.
# Nothing is built or installed: the package (~77 MB) is downloaded with the
# standard library of python3 and its SHA-256 checked against PyPI's. Re-runs
# reuse the cache.
set -euo pipefail
V=0.3.36
TOOLS=$(cd "$(dirname "$0")" && pwd)
CACHE=${HEARTH_CACHE:-${XDG_CACHE_HOME:-$HOME/.cache}/hearth}/llama-cpp-python-$V
if [ ! -f "$CACHE/models/.complete" ]; then
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  echo "fetching llama.cpp's vocabularies (llama-cpp-python $V source package, ~77 MB) from PyPI" >&2
  sdist=$(python3 "$TOOLS/py/pypi_fetch.py" llama-cpp-python "$V" .tar.gz "$tmp")
  tar xzf "$sdist" -C "$tmp" "llama_cpp_python-$V/vendor/llama.cpp/models"
  mkdir -p "$CACHE"
  rm -rf "$CACHE/models"
  mv "$tmp/llama_cpp_python-$V/vendor/llama.cpp/models" "$CACHE/models"
  touch "$CACHE/models/.complete"
fi
echo "$CACHE/models"
