#!/usr/bin/env python3
"""hearth estimate's predictions against hearth bench on the same files.

For each GGUF file: `hearth estimate FILE --ctx 512 --json` (predicted memory,
pp512 and tg128 speed), then `hearth bench FILE -p 512 -n 128 -r R --json`
under /usr/bin/time -v (measured speeds and the peak resident set). Prints a
Markdown table with the ratios. A benchmark, not a test: run it on a quiet
machine and note the load.

    python3 tools/bench/estimate_vs_bench.py [--hearth target/release/hearth] [-r 3] FILE...
"""

import argparse
import json
import os
import re
import subprocess


def main():
    ap = argparse.ArgumentParser()
    ap.add_argument("--hearth", default="target/release/hearth")
    ap.add_argument("-r", type=int, default=3)
    ap.add_argument("--recalibrate", action="store_true")
    ap.add_argument("files", nargs="+")
    a = ap.parse_args()
    print(f"load average before: {os.getloadavg()}")
    print("| file | memory est. | peak RSS | est./RSS | pp512 est. | pp512 bench | est./bench "
          "| tg128 est. | tg128 bench | est./bench |")
    print("| --- | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: | ---: |")
    for i, f in enumerate(a.files):
        cmd = [a.hearth, "estimate", f, "--ctx", "512", "--json"]
        if a.recalibrate and i == 0:
            cmd.append("--recalibrate")
        est = json.loads(subprocess.run(cmd, check=True, capture_output=True, text=True).stdout)
        p = subprocess.run(["/usr/bin/time", "-v", a.hearth, "bench", f, "-p", "512", "-n", "128",
                            "-r", str(a.r), "--json"], check=True, capture_output=True, text=True)
        bench = json.loads(p.stdout)
        rss = int(re.search(r"Maximum resident set size \(kbytes\): (\d+)", p.stderr).group(1)) * 1024
        pp = next(b["avg_ts"] for b in bench if b["n_prompt"] > 0)
        tg = next(b["avg_ts"] for b in bench if b["n_gen"] > 0)
        mib = lambda b: f"{b / 2**20:.0f} MiB"
        print(f"| {os.path.basename(f)} | {mib(est['memory_bytes'])} | {mib(rss)} "
              f"| {est['memory_bytes'] / rss:.2f} | {est['prefill_tokens_per_s']:.1f} | {pp:.1f} "
              f"| {est['prefill_tokens_per_s'] / pp:.2f} | {est['decode_tokens_per_s']:.2f} "
              f"| {tg:.2f} | {est['decode_tokens_per_s'] / tg:.2f} |", flush=True)
    print(f"load average after: {os.getloadavg()}")


if __name__ == "__main__":
    main()
