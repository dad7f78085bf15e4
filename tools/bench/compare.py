#!/usr/bin/env python3
"""Runs `hearth bench` and `llama-bench` side by side on the same GGUF files and
prints hearth's throughput, llama.cpp's and their ratio for every test.

Both tools are run with the same tests, thread count and repetitions, one after
the other for each file and test group (interleaved, alternating which goes
first), so that a change in machine load hits both. Both print llama-bench's
JSON keys (`n_prompt`, `n_gen`, `n_depth`, `avg_ts`, `stddev_ts`, ...), which is
all this script reads.

    tools/bench/compare.py --hearth target/release/hearth \\
        --llama-bench /path/to/llama-bench -t 2 -r 3 \\
        --groups "-p 512 -n 128" "-p 0 -n 128 -d 4096" \\
        --out /tmp/bench-run model-F16.gguf model-Q4_0.gguf ...

The raw JSON of every run and the machine load before it are written under
--out; the table goes to stdout as Markdown, a row as soon as both tools have
run a test, with the 1-minute load average before each tool's run.
"""

import argparse
import json
import os
import shlex
import subprocess
import sys
import time


def load_average():
    """The 1-minute load average (Linux), or None."""
    try:
        with open("/proc/loadavg") as f:
            return float(f.read().split()[0])
    except OSError:
        return None


def run_json(cmd):
    """Runs `cmd` and parses the JSON array it prints on stdout."""
    proc = subprocess.run(cmd, capture_output=True, text=True)
    if proc.returncode != 0:
        sys.stderr.write(proc.stderr[-4000:])
        raise SystemExit(f"failed ({proc.returncode}): {shlex.join(cmd)}")
    return json.loads(proc.stdout)


def test_name(r):
    """llama-bench's test name: pp512, tg128, tg128 @ d4096."""
    base = f"pp{r['n_prompt']}" if r["n_prompt"] > 0 else f"tg{r['n_gen']}"
    return f"{base} @ d{r['n_depth']}" if r.get("n_depth", 0) > 0 else base


def key(r):
    return (r["n_prompt"], r["n_gen"], r.get("n_depth", 0), r["n_threads"])


def main():
    ap = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    ap.add_argument("models", nargs="+", help="GGUF files")
    ap.add_argument("--hearth", required=True, help="the hearth binary")
    ap.add_argument("--llama-bench", required=True, help="the llama-bench binary")
    ap.add_argument("-t", "--threads", type=int, default=2)
    ap.add_argument("-r", "--repetitions", type=int, default=3)
    ap.add_argument(
        "--groups",
        nargs="+",
        default=["-p 512 -n 128"],
        help="test options passed to both tools, one run per group",
    )
    ap.add_argument("--out", default="bench-run", help="directory for raw results")
    args = ap.parse_args()
    os.makedirs(args.out, exist_ok=True)

    print("| model | test | hearth t/s | llama.cpp t/s | hearth / llama.cpp | load |")
    print("| --- | --- | ---: | ---: | ---: | ---: |", flush=True)
    log = []
    step = 0
    for model in args.models:
        name = os.path.basename(model)
        for group in args.groups:
            common = shlex.split(group) + ["-t", str(args.threads), "-r", str(args.repetitions)]
            hearth = [args.hearth, "bench", model, *common, "--json"]
            llama = [args.llama_bench, "-m", model, *common, "-o", "json"]
            order = [("hearth", hearth), ("llama.cpp", llama)]
            if step % 2:
                order.reverse()
            step += 1
            results = {}
            loads = []
            for tool, cmd in order:
                load = load_average()
                loads.append(load)
                start = time.time()
                out = run_json(cmd)
                log.append(
                    {
                        "tool": tool,
                        "model": name,
                        "group": group,
                        "load_before": load,
                        "seconds": round(time.time() - start, 1),
                        "results": out,
                    }
                )
                results[tool] = {key(r): r for r in out}
                print(f"{name} [{group}] {tool}: load {load}, {time.time() - start:.0f} s", file=sys.stderr)
            load = "/".join(f"{x:.1f}" for x in loads if x is not None)
            for k, h in results["hearth"].items():
                l = results["llama.cpp"].get(k)
                if l is None:
                    continue
                ratio = h["avg_ts"] / l["avg_ts"] if l["avg_ts"] else float("nan")
                print(
                    f"| {name} | {test_name(h)} | {h['avg_ts']:.2f} ± {h['stddev_ts']:.2f} "
                    f"| {l['avg_ts']:.2f} ± {l['stddev_ts']:.2f} | {ratio:.2f} | {load} |",
                    flush=True,
                )
            with open(os.path.join(args.out, "runs.json"), "w") as f:
                json.dump(log, f, indent=1)


if __name__ == "__main__":
    main()
