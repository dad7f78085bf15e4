#!/usr/bin/env python3
"""Concurrent streaming clients against a running `hearth serve` (or any server
speaking Ollama's /api/generate): for each client count, that many requests at
once, each a distinct raw prompt of --words words (a per-run nonce first, so no
run reuses another's cached prefix) and --gen greedy tokens. Prints one JSON
line per count: wall time, generated tokens, aggregate tokens/s, time to first
token (p50, max) and each request's evaluated prompt tokens. Standard library
only.

    tools/bench/serve_clients.py --host 127.0.0.1:11434 --model bench \\
        --clients 1,4,8 --words 8 --gen 64

An interim load generator until `hearth bench serve` exists (issue 17).
"""

import argparse
import json
import threading
import time
import urllib.request


def one(args, nonce, i, out):
    words = " ".join(f"w{(i * 7 + j) % 50}" for j in range(args.words))
    body = json.dumps({
        "model": args.model,
        "prompt": f"run {nonce} client {i}: {words}",
        "raw": True,
        "stream": True,
        "options": {"num_predict": args.gen, "temperature": 0, "seed": 1},
    }).encode()
    request = urllib.request.Request(
        f"http://{args.host}/api/generate", data=body,
        headers={"Content-Type": "application/json"})
    start = time.time()
    first = None
    last = None
    with urllib.request.urlopen(request, timeout=3600) as response:
        for line in response:
            event = json.loads(line)
            if first is None and not event.get("done"):
                first = time.time() - start
            if event.get("done"):
                last = event
    out[i] = (first if first is not None else time.time() - start,
              last["eval_count"], last["prompt_eval_count"])


def main():
    p = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    p.add_argument("--host", default="127.0.0.1:11434")
    p.add_argument("--model", required=True)
    p.add_argument("--clients", default="1,4,8")
    p.add_argument("--words", type=int, default=8)
    p.add_argument("--gen", type=int, default=64)
    args = p.parse_args()
    for n in [int(c) for c in args.clients.split(",")]:
        nonce = time.time_ns() % 1_000_003
        out = [None] * n
        start = time.time()
        threads = [threading.Thread(target=one, args=(args, nonce, i, out)) for i in range(n)]
        for t in threads:
            t.start()
        for t in threads:
            t.join()
        wall = time.time() - start
        generated = sum(o[1] for o in out)
        ttft = sorted(o[0] for o in out)
        print(json.dumps({
            "clients": n,
            "wall_s": round(wall, 2),
            "generated": generated,
            "aggregate_tok_s": round(generated / wall, 2),
            "ttft_p50_s": round(ttft[len(ttft) // 2], 2),
            "ttft_max_s": round(ttft[-1], 2),
            "prompt_eval": [o[2] for o in out],
        }), flush=True)


if __name__ == "__main__":
    main()
