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
cargo test --workspace --locked
