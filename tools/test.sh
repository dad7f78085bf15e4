#!/usr/bin/env bash
# The project's test command: formatting, lints, the whole test suite and the
# end-to-end tests against the real server. Safe on a fresh clone: what the
# tests need is fetched into the project (.venv) or the user's cache (llama.cpp's
# vocabularies), never installed system-wide.
#
# Each step prints a header with the time so far. At the end, every check that
# could not run on this machine (a test compiled as ignored because the CPU
# lacks the level it checks, a lint without its cross compiler, a skipped
# end-to-end test) is listed, the last line saying what was not checked here.
set -euo pipefail
cd "$(dirname "$0")/.."

start=$SECONDS
n_steps=9
step=0
logs=$(mktemp -d)
trap 'rm -rf "$logs"' EXIT
not_checked=()

step() {
  step=$((step + 1))
  printf '\n==> [%d/%d] %s (%dm%02ds so far)\n' "$step" "$n_steps" "$1" \
    $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60)) >&2
}

# The CPU level kernels::cpu_level will pick (HEARTH_CPU may force a lower one).
cpu_level() {
  local flags
  flags=$(grep -m1 '^flags' /proc/cpuinfo 2>/dev/null || true)
  local has_avx2=0 has_avx512=0
  if [[ $flags == *" avx2 "* && $flags == *" fma "* && $flags == *" f16c "* ]]; then has_avx2=1; fi
  if [[ $has_avx2 == 1 && $flags == *" avx512f "* && $flags == *" avx512bw "* && $flags == *" avx512vl "* ]]; then
    has_avx512=1
  fi
  case "$(uname -m)" in
    aarch64 | arm64) echo neon ;;
    *) if [[ $has_avx512 == 1 ]]; then echo avx512; elif [[ $has_avx2 == 1 ]]; then echo avx2; else echo scalar; fi ;;
  esac
}
level=${HEARTH_CPU:-$(cpu_level)}

step "Python environment (.venv) and llama.cpp's vocabularies"
tools/venv.sh
HEARTH_LLAMA_VOCAB_DIR=$(tools/fetch-llama-vocabs.sh)
export HEARTH_LLAMA_VOCAB_DIR

step "cargo fmt --check"
cargo fmt --all --check

step "cargo clippy (this machine's target)"
cargo clippy --workspace --all-targets --locked -- -D warnings

step "cargo clippy for aarch64 (the NEON kernels)"
rustup target add aarch64-unknown-linux-gnu >&2
if command -v aarch64-linux-gnu-gcc >/dev/null; then
  cargo clippy -p kernels --target aarch64-unknown-linux-gnu --all-targets --locked -- -D warnings
else
  # The dev-dependencies (criterion) build C code, which needs a cross compiler;
  # the library itself, where the NEON kernels live, does not.
  cargo clippy -p kernels --target aarch64-unknown-linux-gnu --lib --locked -- -D warnings
  not_checked+=("aarch64 lints of kernels' tests and benches — no aarch64-linux-gnu-gcc (Debian: gcc-aarch64-linux-gnu)")
fi

# The NEON kernels run under qemu-aarch64 (Debian's qemu-user), cross-linked with
# aarch64-linux-gnu-gcc. qemu's `-cpu max` has `dotprod`, and
# HEARTH_CPU=neon-dotprod says so to the build (crates/kernels/build/cpu_cfg.rs
# compiles the dotprod tests) and makes it the level the kernels pick: the
# kernel tests compare both NEON levels with the scalar reference, and the
# logits fixtures run every model once on each level (the plain-NEON run sets
# HEARTH_CPU=neon inside the emulated process only, so nothing is rebuilt).
# Emulated, the NEON tests check correctness only; qemu says nothing of speed.
step "NEON kernels under qemu-aarch64: kernel and logits-fixture tests"
if ! command -v aarch64-linux-gnu-gcc >/dev/null; then
  not_checked+=("the NEON kernels' tests — no aarch64-linux-gnu-gcc to link them (Debian: gcc-aarch64-linux-gnu)")
elif ! command -v qemu-aarch64 >/dev/null; then
  not_checked+=("the NEON kernels' tests — no qemu-aarch64 to run them (Debian: qemu-user)")
else
  (
    export CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_LINKER=aarch64-linux-gnu-gcc
    qemu="qemu-aarch64 -L /usr/aarch64-linux-gnu -cpu max"
    export HEARTH_CPU=neon-dotprod CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER=$qemu
    aarch64=(--target aarch64-unknown-linux-gnu --locked)
    cargo test -p kernels "${aarch64[@]}"
    cargo test -p model --test llama_fixtures "${aarch64[@]}"
    CARGO_TARGET_AARCH64_UNKNOWN_LINUX_GNU_RUNNER="$qemu -E HEARTH_CPU=neon" \
      cargo test -p model --test llama_fixtures "${aarch64[@]}"
  ) 2>&1 | tee "$logs/aarch64.log"
fi

# On a machine above AVX2, the AVX2 kernels are also run through the kernel and
# model tests (HEARTH_CPU=avx2): most users' CPUs take that path.
step "AVX2 path: kernel and model tests with HEARTH_CPU=avx2"
if [[ $level == avx512 ]]; then
  HEARTH_CPU=avx2 cargo test -p kernels -p model --locked 2>&1 | tee "$logs/avx2.log"
elif [[ $level == avx2 ]]; then
  echo "this CPU's own level is AVX2: the main run covers it" >&2
else
  echo "no AVX2 on this CPU ($level)" >&2
  not_checked+=("the AVX2 kernels — the CPU has no AVX2")
fi

# `cargo test` also builds the hearth binary and the examples (the `synth`
# model writer) that the end-to-end tests use, with the same features: a
# separate `cargo build` would compile them a second time.
step "cargo test --workspace"
cargo test --workspace --locked 2>&1 | tee "$logs/test.log"

step "end to end: the official clients against hearth serve"
.venv/bin/python -m pytest -q -rs tests/e2e 2>&1 | tee "$logs/e2e.log"

step "summary"
# Tests compiled as ignored, grouped by the reason they give (cargo prints
# "test NAME ... ignored, REASON"), less those that passed under qemu-aarch64
# (the NEON ones). The HEARTH_CPU=avx2 run ignores the AVX-512 tests by design;
# the main run has checked those.
touch "$logs/aarch64.log"
while IFS= read -r line; do
  [[ -n $line ]] && not_checked+=("$line")
done < <(sed -n 's/^test \(.*\) \.\.\. ignored, \(.*\)$/\2\t\1/p' "$logs/test.log" | sort |
  awk -F'\t' -v passed="$logs/aarch64.log" '
    BEGIN { while ((getline l < passed) > 0) if (l ~ /^test .* \.\.\. ok$/) ok[substr(l, 6, length(l) - 12)] = 1 }
    $2 in ok { next }
    { n[$1]++; if (n[$1] <= 3) names[$1] = names[$1] ((n[$1] > 1) ? ", " : "") $2 }
    END { for (r in n) printf("%s — %d test%s: %s%s\n", r, n[r], ((n[r] > 1) ? "s" : ""), names[r], ((n[r] > 3) ? ", ..." : "")) }')
while IFS= read -r line; do
  [[ -n $line ]] && not_checked+=("end-to-end test skipped — $line")
done < <(sed -n 's/^SKIPPED \[[0-9]*\] //p' "$logs/e2e.log")

printf 'done in %dm%02ds\n' $(((SECONDS - start) / 60)) $(((SECONDS - start) % 60))
if [[ ${#not_checked[@]} -eq 0 ]]; then
  echo "Not checked on this machine ($level): nothing; every check ran."
else
  echo "Checks that could not run on this machine ($level):"
  for item in "${not_checked[@]}"; do echo "  - $item"; done
  printf 'Not checked on this machine (%s): ' "$level"
  printf '%s; ' "${not_checked[@]%% — *}" | sed 's/; $/\n/'
fi
