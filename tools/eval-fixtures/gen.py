#!/usr/bin/env python3
"""Generate the fixtures of `hearth eval perplexity` and `hearth eval kld`
against llama.cpp's llama-perplexity.

Writes, under crates/hearth/tests/fixtures/eval/:
  hearth-tiny.txt   a text in the style of hearth-tiny's training data
  synthetic.txt     words of the synthetic models' vocabulary ("t259 t300 ...")
  perplexity.json   llama-perplexity's final estimate for each model × text × ctx,
                    and its --kl-divergence statistics for tiny-llama Q4_0
                    against tiny-llama F16.

The random-weight models are written by `cargo run -p model --example synth`
(tiny-llama, the logits fixtures' model) and rebuilt by the Rust test
(crates/hearth/tests/eval_cli.rs) from the same seed; hearth-tiny is the file in
models/. llama-perplexity runs with `-fa off` (the non-flash attention path,
whose orders hearth follows), 2 threads, one chunk per batch (`-b` = `-c`).

Needs a llama.cpp build with llama-perplexity (LLAMA_CPP, default
~/.cache/hearth-reference/llama.cpp; tools/reference or
/work/shared/tools/build-reference.sh make one). Never run in CI; the outputs
are committed.

    python3 tools/eval-fixtures/gen.py
"""

import json
import os
import random
import re
import subprocess
import tempfile
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
LLAMA_CPP = Path(os.environ.get("LLAMA_CPP", Path.home() / ".cache/hearth-reference/llama.cpp"))
PERPLEXITY = LLAMA_CPP / "build" / "bin" / "llama-perplexity"
OUT = ROOT / "crates" / "hearth" / "tests" / "fixtures" / "eval"


def hearth_tiny_text():
    """Questions and answers like hearth-tiny's (sums, products, capitals)."""
    r = random.Random(7)
    caps = [("France", "Paris"), ("Japan", "Tokyo"), ("Italy", "Rome"),
            ("Spain", "Madrid"), ("Egypt", "Cairo"), ("Canada", "Ottawa")]
    out = []
    for _ in range(200):
        k = r.randrange(4)
        if k == 0:
            a, b = r.randrange(50), r.randrange(50)
            out.append(f"What is {a} plus {b}? {a} plus {b} is {a + b}.")
        elif k == 1:
            a, b = r.randrange(13), r.randrange(13)
            out.append(f"What is {a} times {b}? {a} times {b} is {a * b}.")
        elif k == 2:
            c, p = r.choice(caps)
            out.append(f"What is the capital of {c}? The capital of {c} is {p}.")
        else:
            a = r.randrange(10)
            out.append(f"How many minutes are in {a} hours? {a} hours is {a * 60} minutes.")
    return "\n".join(out) + "\n"


def synthetic_text():
    """Words like "t259 t300": the synthetic SPM vocabulary has no "▁t" piece, so
    each is spelled in byte tokens (about 7 per word)."""
    r = random.Random(11)
    words = [f"t{259 + min(int(r.expovariate(0.15)), 60)}" for _ in range(500)]
    return " ".join(words) + "\n"


def run(cmd, want=None):
    """Runs cmd and returns its output. llama.cpp's log thread now and then
    loses the end of the output (the final estimate) at exit, with status 0:
    up to 10 runs until `want` is in it."""
    for _ in range(10):
        text = run_once(cmd)
        if want is None or want in text:
            return text
    raise SystemExit(f"no '{want}' in 10 runs of {' '.join(map(str, cmd))}:\n{text[-3000:]}")


def run_once(cmd):
    with tempfile.TemporaryFile("w+") as log:
        p = subprocess.run(cmd, stdout=log, stderr=subprocess.STDOUT, text=True)
        log.seek(0)
        text = log.read()
    if p.returncode != 0:
        raise SystemExit(f"{' '.join(map(str, cmd))} failed:\n{text[-3000:]}")
    return text


def llama_perplexity(model, text, ctx, *extra):
    # -b ctx: one chunk per batch (either way gives the same numbers).
    return run([PERPLEXITY, "-m", model, "-f", text, "-c", str(ctx), "-b", str(ctx),
                "-fa", "off", "-t", "2", *extra], want="Final estimate")


def final_estimate(log):
    m = re.search(r"Final estimate: PPL = ([0-9.]+) \+/- ([0-9.]+)", log)
    chunks = re.search(r"calculating perplexity over (\d+) chunks", log)
    if not m or not chunks:
        raise SystemExit(f"no final estimate in:\n{log[-3000:]}")
    return {"ppl": float(m.group(1)), "ppl_uncertainty": float(m.group(2)),
            "n_chunks": int(chunks.group(1))}


def kld_stats(log):
    num = r"(-?[0-9.]+)"
    fields = {
        "ppl": rf"Mean PPL\(Q\)\s+:\s*{num}",
        "ppl_base": rf"Mean PPL\(base\)\s+:\s*{num}",
        "ln_ppl_ratio": rf"Mean ln\(PPL\(Q\)/PPL\(base\)\)\s+:\s*{num}",
        "ppl_diff": rf"Mean PPL\(Q\)-PPL\(base\)\s+:\s*{num}",
        "kld_mean": rf"Mean    KLD: \s*{num}",
        "kld_max": rf"Maximum KLD: \s*{num}",
        "kld_p99": rf"99.0%   KLD: \s*{num}",
        "kld_median": rf"Median  KLD: \s*{num}",
        "kld_p10": rf"10.0%   KLD: \s*{num}",
        "p_diff_mean_pct": rf"Mean    Δp: \s*{num}",
        "p_diff_median_pct": rf"Median  Δp: \s*{num}",
        "p_diff_rms_pct": rf"RMS Δp    : \s*{num}",
        "same_top_pct": rf"Same top p: \s*{num}",
    }
    out = {}
    for key, pattern in fields.items():
        m = re.search(pattern, log)
        if not m:
            raise SystemExit(f"no {key} in:\n{log[-4000:]}")
        out[key] = float(m.group(1))
    return out


def main():
    OUT.mkdir(parents=True, exist_ok=True)
    tiny_txt = OUT / "hearth-tiny.txt"
    synth_txt = OUT / "synthetic.txt"
    tiny_txt.write_text(hearth_tiny_text())
    synth_txt.write_text(synthetic_text())

    work = Path(tempfile.mkdtemp(prefix="hearth-eval-"))
    models = {"hearth-tiny": ROOT / "models" / "hearth-tiny" / "hearth-tiny.gguf"}
    for ty in ["F16", "Q4_0", "Q8_0"]:
        path = work / f"tiny-llama-{ty}.gguf"
        subprocess.run(["cargo", "run", "-q", "-p", "model", "--example", "synth", "--",
                        "tiny-llama", str(path), ty], cwd=ROOT, check=True)
        models[f"tiny-llama-{ty}"] = path

    cases = [("hearth-tiny", "hearth-tiny.txt", 128), ("hearth-tiny", "hearth-tiny.txt", 256),
             ("tiny-llama-F16", "synthetic.txt", 128), ("tiny-llama-Q4_0", "synthetic.txt", 128),
             ("tiny-llama-Q8_0", "synthetic.txt", 64)]
    fixtures = {"llama_cpp": "llama-cpp-python 0.3.36 (vendored llama.cpp)",
                "flash_attention": "off", "perplexity": []}
    for name, text, ctx in cases:
        est = final_estimate(llama_perplexity(models[name], OUT / text, ctx))
        print(name, text, ctx, est)
        fixtures["perplexity"].append({"model": name, "text": text, "ctx": ctx, **est})

    base = work / "base.kld"
    llama_perplexity(models["tiny-llama-F16"], synth_txt, 128, "--kl-divergence-base", base)
    log = run([PERPLEXITY, "-m", models["tiny-llama-Q4_0"], "-fa", "off", "-t", "2",
               "-c", "128", "-b", "128", "--kl-divergence-base", base, "--kl-divergence"],
              want="Same top p")
    fixtures["kld"] = {"model": "tiny-llama-Q4_0", "base": "tiny-llama-F16",
                       "text": "synthetic.txt", "ctx": 128, **kld_stats(log)}
    print(fixtures["kld"])
    (OUT / "perplexity.json").write_text(json.dumps(fixtures, indent=2) + "\n")


if __name__ == "__main__":
    main()
