#!/usr/bin/env bash
# The project's test command: formatting, lints, and the whole test suite.
# It installs what the tests need (the real vocabularies from llama.cpp's source
# package on PyPI) and nothing else; safe to run on a fresh clone.
set -euo pipefail
cd "$(dirname "$0")/.."

HEARTH_LLAMA_VOCAB_DIR=$(tools/fetch-llama-vocabs.sh)
export HEARTH_LLAMA_VOCAB_DIR

cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The NEON kernels are compiled and linted for aarch64 even on x86 machines.
rustup target add aarch64-unknown-linux-gnu >&2
cargo clippy -p kernels --target aarch64-unknown-linux-gnu --all-targets --locked -- -D warnings
cargo test --workspace --locked

# End to end: the official `openai` and `ollama` Python clients (pinned in
# tests/e2e/requirements.txt, installed from PyPI into .venv) against the real
# `hearth serve`, with the debug binary and the `synth` example cargo built.
cargo build --locked -p hearth --bin hearth
cargo build --locked -p model --example synth
python3 -m venv .venv
.venv/bin/pip install --quiet --disable-pip-version-check -r tests/e2e/requirements.txt
.venv/bin/python -m pytest -q tests/e2e
