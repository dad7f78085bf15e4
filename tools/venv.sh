#!/usr/bin/env bash
# Creates the project's own Python environment, .venv, and installs the
# packages the tests use (tests/e2e/requirements.txt, pinned). Nothing is
# installed outside the repository. Works with Debian's python3 as it comes:
# where `python3 -m venv` cannot provide pip (Debian's python3-venv package is
# not installed), the environment is made without pip and pip is bootstrapped
# from its wheel on PyPI (checked against PyPI's SHA-256).
set -euo pipefail
cd "$(dirname "$0")/.."
PY=${PYTHON:-python3}
PIP_VERSION=24.3.1

if ! command -v "$PY" >/dev/null; then
  echo "tools/venv.sh: no $PY on PATH; install Python 3.9 or newer" >&2
  exit 1
fi
if [ ! -x .venv/bin/python ] || ! .venv/bin/python -c '' 2>/dev/null; then
  rm -rf .venv
  if ! "$PY" -m venv .venv >/dev/null 2>&1; then
    rm -rf .venv
    "$PY" -m venv --without-pip .venv
  fi
fi
if ! .venv/bin/python -m pip --version >/dev/null 2>&1; then
  echo "tools/venv.sh: bootstrapping pip $PIP_VERSION into .venv from PyPI" >&2
  tmp=$(mktemp -d)
  trap 'rm -rf "$tmp"' EXIT
  wheel=$("$PY" tools/py/pypi_fetch.py pip "$PIP_VERSION" py3-none-any.whl "$tmp")
  # A pip wheel runs from the archive itself.
  .venv/bin/python "$wheel/pip" install --quiet --no-index "$wheel"
fi
.venv/bin/python -m pip install --quiet --disable-pip-version-check -r tests/e2e/requirements.txt
