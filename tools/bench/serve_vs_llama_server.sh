#!/usr/bin/env bash
# hearth serve against llama-server on one GGUF, on the same machine and threads,
# measured by hearth bench serve; prints the table BENCHMARKS.md shows and
# writes OUT/bench-serve.svg (tokens/s by concurrency, both servers).
# Usage: tools/bench/serve_vs_llama_server.sh MODEL.gguf [bench serve flags...]
# Default flags: -c 1,4,8,16 -p 128 -n 128 --requests 16 (issue 17's protocol);
# add --shared-prefix 1536 or --long-prompt 4096 for those workloads.
# NP: llama-server's slots and hearth's HEARTH_NUM_PARALLEL (default 8);
# CTX: llama-server's -c, shared by its slots (default 4096 per slot).
set -euo pipefail
H=${HEARTH:-target/release/hearth}
L=${LLAMA_SERVER:-$HOME/.cache/hearth-reference/llama.cpp/build/bin/llama-server}
M=${1:?usage: serve_vs_llama_server.sh MODEL.gguf [bench serve flags]}
shift
NP=${NP:-8}
CTX=${CTX:-$((4096 * NP))}
OUT=${OUT:-/tmp/hearth-serve-bench}
mkdir -p "$OUT"
if [ $# -gt 0 ]; then ARGS=("$@"); else ARGS=(-c 1,4,8,16 -p 128 -n 128 --requests 16); fi
# llama-server: NP slots, 2 threads, the non-flash path
$L -m "$M" -t 2 -tb 2 -np "$NP" -c "$CTX" -fa off --port 18601 > "$OUT/llama-server.log" 2>&1 &
LP=$!
for _ in $(seq 1 120); do curl -sf http://127.0.0.1:18601/health >/dev/null && break; sleep 1; done
$H bench serve l1b --url http://127.0.0.1:18601 "${ARGS[@]}" --json > "$OUT/llama-server.json"
kill $LP 2>/dev/null || true
wait $LP 2>/dev/null || true
# hearth serve: NP sequences, 2 threads
rm -rf "$OUT/store"
mkdir -p "$OUT/store"
printf 'FROM %s\n' "$M" > "$OUT/Modelfile"
export HEARTH_MODELS=$OUT/store HEARTH_HOST=127.0.0.1:18600 HEARTH_NUM_PARALLEL=$NP HEARTH_NUM_THREAD=2
$H create l1b -f "$OUT/Modelfile" >/dev/null 2>&1
$H serve > "$OUT/hearth-serve.log" 2>&1 &
HP=$!
sleep 2
$H bench serve l1b --url http://127.0.0.1:18600 "${ARGS[@]}" --json --plot "$OUT/bench-serve.svg" \
  --compare "$OUT/llama-server.json" --label hearth > "$OUT/hearth.json"
kill $HP 2>/dev/null || true
wait $HP 2>/dev/null || true
python3 - "$OUT" <<'TABLE'
import json, sys
out = sys.argv[1]
h = json.load(open(out + "/hearth.json"))
l = json.load(open(out + "/llama-server.json"))
ms = lambda s: "-" if s is None else f"{s * 1e3:.0f} ms"
print("| clients | hearth tok/s | llama-server tok/s | ratio | TTFT p50 (h / l) | ITL p50 (h / l) "
      "| ITL p99 (h / l) | ITL max (h / l) | first, rest TTFT hearth | first, rest TTFT llama-server "
      "| long-prompt TTFT (h / l) |")
print("| ---: " * 11 + "|")
for a, b in zip(h, l):
    pair = lambda k: f"{ms(a[k])} / {ms(b[k])}"
    print(f"| {a['concurrency']} | {a['tokens_per_s']:.2f} | {b['tokens_per_s']:.2f} "
          f"| {a['tokens_per_s'] / b['tokens_per_s']:.2f} | {pair('ttft_p50_s')} "
          f"| {pair('inter_token_p50_s')} | {pair('inter_token_p99_s')} | {pair('inter_token_max_s')} "
          f"| {ms(a['ttft_first_s'])}, {ms(a['ttft_rest_p50_s'])} "
          f"| {ms(b['ttft_first_s'])}, {ms(b['ttft_rest_p50_s'])} | {pair('long_ttft_s')} |")
TABLE
