#!/usr/bin/env bash
# hearth serve against llama-server on one GGUF, on the same machine and threads,
# measured by hearth bench serve; prints the table BENCHMARKS.md shows and
# writes OUT/bench-serve.svg (tokens/s by concurrency, both servers).
# Usage: tools/bench/serve_vs_llama_server.sh MODEL.gguf
set -euo pipefail
H=${HEARTH:-target/release/hearth}
L=${LLAMA_SERVER:-$HOME/.cache/hearth-reference/llama.cpp/build/bin/llama-server}
M=${1:?usage: serve_vs_llama_server.sh MODEL.gguf}
OUT=${OUT:-/tmp/hearth-serve-bench}; mkdir -p $OUT
ARGS="-c 1,2,4 --requests 8 -p 128 -n 32"
# llama-server: 4 slots of 1024 positions each, 2 threads, the non-flash path
$L -m $M -t 2 -tb 2 -np 4 -c 4096 -fa off --port 18601 > $OUT/llama-server.log 2>&1 & LP=$!
for i in $(seq 1 120); do curl -sf http://127.0.0.1:18601/health >/dev/null && break; sleep 1; done
$H bench serve l1b --url http://127.0.0.1:18601 $ARGS --json > $OUT/llama-server.json
kill $LP 2>/dev/null || true; wait $LP 2>/dev/null || true
# hearth serve: 4 sequences, 2 threads
rm -rf $OUT/store; mkdir -p $OUT/store
printf 'FROM %s\n' "$M" > $OUT/Modelfile
export HEARTH_MODELS=$OUT/store HEARTH_HOST=127.0.0.1:18600 HEARTH_NUM_PARALLEL=4 HEARTH_NUM_THREAD=2
$H create l1b -f $OUT/Modelfile >/dev/null 2>&1
$H serve > $OUT/hearth-serve.log 2>&1 & HP=$!
sleep 2
$H bench serve l1b --url http://127.0.0.1:18600 $ARGS --json --plot $OUT/bench-serve.svg \
  --compare $OUT/llama-server.json --label hearth > $OUT/hearth.json
kill $HP 2>/dev/null || true; wait $HP 2>/dev/null || true
python3 - "$OUT" <<'PY'
import json, sys
out = sys.argv[1]
h = json.load(open(out + '/hearth.json'))
l = json.load(open(out + '/llama-server.json'))
print("| clients | hearth tok/s | llama-server tok/s | ratio | hearth TTFT p50 | llama-server TTFT p50 | hearth ITL | llama-server ITL |")
print("| ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
for a,b in zip(h,l):
    print(f"| {a['concurrency']} | {a['tokens_per_s']:.2f} | {b['tokens_per_s']:.2f} | {a['tokens_per_s']/b['tokens_per_s']:.2f} | {a['ttft_p50_s']*1e3:.0f} ms | {b['ttft_p50_s']*1e3:.0f} ms | {a['inter_token_mean_s']*1e3:.0f} ms | {b['inter_token_mean_s']*1e3:.0f} ms |")
PY
